"""Variant specs, the planner, the executors and the v2 record: what lets a variant travel and its results join."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnopt.artifacts import artifact_for
from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.execute import InProcessExecutor, SubprocessExecutor
from rnopt.plan import plan
from rnopt.report.loading import load_results
from rnopt.results import Record
from rnopt.spec import ID_SCHEME, ArtifactSpec, VariantSpec

V1_RUN = Path(__file__).parent / "data" / "v1-run.json"  # a `rnopt run` report.json written by rnopt 0.1, schema 1
QUICK = BenchConfig([1], warmup=1, iterations=5, min_time=0)


def test_spec_round_trips_through_json_and_its_id_ignores_the_label(fp32_onnx):
    spec = VariantSpec.build(artifact_for(str(fp32_onnx)), "onnxruntime", threads=1, label="mine",
                             opt_level="basic", spinning=False)
    again = VariantSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.id == spec.id and again.label == "mine"
    assert again.config.opt_level == "basic" and again.artifact.sha256 == spec.artifact.sha256
    assert spec.with_label("other").id == spec.id
    assert VariantSpec.build(spec.artifact, "onnxruntime", threads=1, opt_level="basic").id != spec.id
    # everything that changes the artifact's bytes changes the id: the opset of an export, for one
    name = artifact_for("resnet20_cifar10")
    assert VariantSpec(name, "onnxruntime").id != VariantSpec(artifact_for("resnet20_cifar10", opset=17), "onnxruntime").id
    with pytest.raises(RnoptError, match="unknown option.*cuda_graphs for this runtime"):
        VariantSpec.build(name, "onnxruntime", cuda_graphs=True)
    with pytest.raises(RnoptError, match="performance hint"):
        VariantSpec.build(name, "openvino", hint="fastest")
    with pytest.raises(RnoptError, match="unknown backend 'tvm'"):
        VariantSpec(name, "tvm")


def test_the_default_label_is_derived_never_parsed():
    spec = VariantSpec.build(ArtifactSpec("/models/m.onnx"), "onnxruntime", "cpu", "fp32", spinning=False)
    assert spec.label == "m.onnx [onnxruntime fp32 spinning=off]"


def test_planner_expands_models_runtimes_and_precisions(fp32_onnx):
    specs = plan([artifact_for(str(fp32_onnx)), artifact_for("resnet20_cifar10")], ["onnxruntime", "torch"],
                 ["fp32", "bf16"], options={"torch": {"channels_last": True}})
    assert len(specs) == 8 and len({s.id for s in specs}) == 8
    assert {s.config.channels_last for s in specs if s.runtime == "torch"} == {True}
    assert specs[0].label == "resnet20.onnx [onnxruntime fp32]"


def test_a_spec_rebuilt_in_another_process_gives_the_same_result_fields(fp32_onnx):
    """The subprocess executor sends spec.to_dict() to a fresh process, which rebuilds and times it."""
    specs = [VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime", threads=1),
             VariantSpec(artifact_for("resnet20_cifar10"), "torch", threads=1)]
    here = InProcessExecutor().bench(specs, QUICK)
    there = SubprocessExecutor().bench(specs, QUICK)
    assert not here.failures and not there.failures
    assert [r.spec_id for r in there.results] == [r.spec_id for r in here.results] == [s.id for s in specs]
    for a, b in zip(here.results, there.results):
        assert (a.model, a.backend, a.device, a.precision, a.threads, a.batch_size) == \
               (b.model, b.backend, b.device, b.precision, b.threads, b.batch_size)
        assert b.iterations >= 5 and b.latency_ms.p50 > 0 and len(b.samples_ms) == b.iterations


@pytest.mark.parametrize("executor", [InProcessExecutor, SubprocessExecutor])
def test_a_failing_variant_is_recorded_and_the_others_go_on(executor, fp32_onnx, tmp_path):
    good = VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime")
    on_torch = VariantSpec(artifact_for(str(fp32_onnx)), "torch")  # a file cannot run on torch
    gone = VariantSpec(ArtifactSpec(str(tmp_path / "gone.onnx")), "onnxruntime")
    outcome = executor().bench([on_torch, good, gone], QUICK)
    assert [r.spec_id for r in outcome.results] == [good.id]
    reasons = {f.spec_id: f.reason for f in outcome.failures}
    assert set(reasons) == {on_torch.id, gone.id}
    assert "runs built-in model names" in reasons[on_torch.id] and "does not exist" in reasons[gone.id]
    assert all("\n" not in reason for reason in reasons.values())


def test_a_changed_file_is_not_run_under_an_old_spec(fp32_onnx, int8_onnx, tmp_path):
    copy = tmp_path / "m.onnx"
    copy.write_bytes(fp32_onnx.read_bytes())
    spec = VariantSpec(artifact_for(str(copy)), "onnxruntime")
    copy.write_bytes(int8_onnx.read_bytes())  # a valid model, but not the bytes the spec names
    [failure] = InProcessExecutor().bench([spec], QUICK).failures
    assert "has changed since this variant was specified" in failure.reason


def test_bench_and_eval_join_on_spec_ids_across_commands(cli, tmp_path, fp32_onnx, int8_onnx):
    """bench on two runtimes, eval on one: the accuracy column still reaches the ONNX Runtime rows."""
    assert cli("bench", fp32_onnx, int8_onnx, "--backend", "onnxruntime,openvino", "--batch-size", "1",
               "--iterations", "5", "--warmup", "1", "--min-time", "0", "--no-memory", "--json", tmp_path / "b.json").code == 0
    assert cli("eval", fp32_onnx, int8_onnx, "--limit", "200", "--json", tmp_path / "e.json").code == 0
    bench = json.loads((tmp_path / "b.json").read_text())
    ev = json.loads((tmp_path / "e.json").read_text())
    assert bench["schema_version"] == 5 and {s["id"] for s in ev["specs"]} <= {s["id"] for s in bench["specs"]}
    from rnopt.report.headline import variant_points

    points = variant_points(load_results([tmp_path / "b.json", tmp_path / "e.json"]))
    measured = {(p.result.backend, p.result.precision) for p in points if p.top1 is not None}
    assert measured == {("onnxruntime", "fp32"), ("onnxruntime", "int8")}


def test_version_1_files_still_load_render_and_gate(cli, tmp_path):
    data = load_results([V1_RUN])
    assert len(data.bench) == 14 and data.evals[0].comparisons and data.exports[0].passed
    assert len(data.quantizations) == 2  # ORT's and NNCF's (the old "quantize_openvino" key)
    r = cli("report", V1_RUN, "-o", tmp_path / "old.md")
    assert r.code == 0, r.err
    assert "Recommended:" in (tmp_path / "old.md").read_text()
    assert cli("compare-runs", V1_RUN, V1_RUN).code == 0
    # and a v1 file merged into a v2 one keeps all of it
    assert cli("report", V1_RUN, "-o", tmp_path / "merged.json").code == 0
    merged = Record.from_dict(json.loads((tmp_path / "merged.json").read_text()))
    assert merged.kind == "report" and len(merged.bench) == 14 and merged.merged and merged.merged.models[0].name


def test_export_checks_relative_to_the_largest_logit(cli, tmp_path):
    """A fine-tuned 5-class ResNet-18 with logits near 200: fp32 rounding alone exceeds an absolute 1e-4."""
    from rnopt.models.resnet import imagenet_resnet

    torch.manual_seed(0)
    model = imagenet_resnet(18, 5)
    with torch.no_grad():
        model.fc.weight.mul_(400.0)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ft.pt")
    r = cli("export", "resnet18", "--weights", tmp_path / "ft.pt", "-o", tmp_path / "ft.onnx",
            "--json", tmp_path / "ft.json")
    assert r.code == 0, r.err
    [export] = json.loads((tmp_path / "ft.json").read_text())["exports"]
    worst = max(c["max_abs_diff"] for c in export["checks"])
    assert worst > 1e-4, "not a large-logit case: the test proves nothing"
    assert max(c["max_rel_diff"] for c in export["checks"]) < 1e-5 and export["rtol"] == 1e-4
    r = cli("export", "resnet18", "--weights", tmp_path / "ft.pt", "-o", tmp_path / "abs.onnx", "--atol", "1e-4")
    assert r.code == 1 and "exceeds --atol" in r.err and not (tmp_path / "abs.onnx").exists()


def test_random_deep_models_export_and_bench_with_the_warning(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path / "cache"))
    r = cli("export", "resnet44_cifar10", "-o", tmp_path / "r44.onnx")
    assert r.code == 0 and "random-initialised" in r.err, r.err
    r = cli("bench", "resnet32_cifar10", "--batch-size", "1", "--iterations", "5", "--warmup", "1",
            "--min-time", "0", "--no-memory")
    assert r.code == 0 and "random-initialised" in r.err, r.err


def test_the_readme_example_runs_on_the_public_api_alone():
    """What the README's "Python API" section shows, as a user would paste it."""
    proc = subprocess.run([sys.executable, "-c", README_EXAMPLE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ran"] == 2 and out["evaluated"] == 2 and out["joined"] == 2 and 0.6 < out["top1"] < 1


README_EXAMPLE = (Path(__file__).resolve().parents[1] / "README.md").read_text().split(
    "<!-- api-example -->\n```python\n")[1].split("```")[0] + """
import json
ids = {r.spec_id for r in timing.bench} & {r.spec_id for r in accuracy.evals[0].results}
print(json.dumps({"ran": len(timing.bench), "evaluated": len(accuracy.evals[0].results), "joined": len(ids),
                  "top1": accuracy.evals[0].results[0].top1}))
"""


def test_the_onnx_runtimes_load_without_torch():
    """Backends only load: exporting (torch) happens in the artifact store, so ORT and OpenVINO never pull it in."""
    code = ("import sys, rnopt, rnopt.backends.onnxruntime.backend, rnopt.backends.openvino.backend, rnopt.execute; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_a_built_in_models_cached_export_loads_on_onnx_runtime_without_torch(tmp_path):
    """Once exported, a built-in model's ONNX file is a cache entry: a worker or a memory probe that runs it on ONNX
    Runtime imports no PyTorch (3.5 s here, and part of the memory it would report)."""
    spec = VariantSpec(artifact_for("resnet20_cifar10"), "onnxruntime")
    InProcessExecutor().load([spec])  # exported into the suite's cache
    code = ("import json, sys; from rnopt.spec import VariantSpec; from rnopt.execute import InProcessExecutor; "
            f"InProcessExecutor().load([VariantSpec.from_dict(json.loads({json.dumps(json.dumps(spec.to_dict()))}))]); "
            "print(sorted(m for m in sys.modules if m == 'torch'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ---- stable ids (schema 3): what a variant is, wherever it lies ----------------------------------------------------

def test_the_same_bytes_in_two_folders_or_under_another_name_have_one_id(tmp_path, fp32_onnx):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    copies = [tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx", tmp_path / "renamed.onnx"]
    for copy in copies:
        copy.write_bytes(fp32_onnx.read_bytes())
    ids = {VariantSpec(artifact_for(str(p)), "onnxruntime").id for p in [fp32_onnx, *copies]}
    assert len(ids) == 1
    assert VariantSpec(artifact_for(str(copies[0])), "openvino").id not in ids  # another runtime: another variant


def test_ids_leave_defaults_out_and_normalise_equivalent_spellings(fp32_onnx, int8_onnx):
    fp32, int8 = artifact_for(str(fp32_onnx)), artifact_for(str(int8_onnx))
    assert VariantSpec.build(fp32, "onnxruntime", opt_level="all", spinning=True).id == VariantSpec(fp32, "onnxruntime").id
    assert VariantSpec(fp32, "onnxruntime", precision="fp32").id == VariantSpec(fp32, "onnxruntime").id
    assert VariantSpec(int8, "onnxruntime", precision="int8").id == VariantSpec(int8, "onnxruntime").id
    name = artifact_for("resnet20_cifar10")
    assert VariantSpec(name, "torch", precision="fp32").id == VariantSpec(name, "torch").id
    # OpenVINO's None is its own default (bf16 on some CPUs): forcing fp32 is another variant
    assert VariantSpec(fp32, "openvino", precision="fp32").id != VariantSpec(fp32, "openvino").id
    # what does change a variant changes its id
    assert VariantSpec.build(fp32, "onnxruntime", opt_level="basic").id != VariantSpec(fp32, "onnxruntime").id
    assert VariantSpec(fp32, "onnxruntime", threads=1).id != VariantSpec(fp32, "onnxruntime").id
    identity = VariantSpec(fp32, "onnxruntime").identity()
    assert identity == {"scheme": ID_SCHEME, "artifact": {"file": fp32.sha256}, "runtime": "onnxruntime"}
    assert str(fp32_onnx.parent) not in json.dumps(identity)


def test_built_in_ids_follow_weights_and_class_names_not_their_paths(tmp_path):
    weights = Path(__file__).resolve().parents[1] / "rnopt" / "models" / "weights" / "resnet20-12fca82f.th"
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "w.th").write_bytes(weights.read_bytes())
        (tmp_path / folder / "labels.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    specs = [VariantSpec(artifact_for("resnet20_cifar10", str(tmp_path / f / "w.th"), labels=str(tmp_path / f / "labels.txt")),
                         "torch") for f in ("x", "y")]
    assert specs[0].id == specs[1].id
    (tmp_path / "y" / "labels.txt").write_text("\n".join(f"other{i}" for i in range(10)))
    other = VariantSpec(artifact_for("resnet20_cifar10", str(tmp_path / "y" / "w.th"),
                                     labels=str(tmp_path / "y" / "labels.txt")), "torch")
    assert other.id != specs[0].id


def test_two_runs_of_the_same_plan_join_every_variant_by_id(cli, tmp_path):
    from rnopt.report.compare import compare_runs

    argv = ["run", "--backend", "onnxruntime", "--limit", "50", "--batch-size", "1", "--iterations", "5",
            "--min-time", "0", "--warmup", "1", "--no-memory", "--quiet"]
    for name in ("first", "second"):
        assert cli(*argv, "--output", tmp_path / name).code == 0
    reports = [next((tmp_path / name).glob("*/report.json")) for name in ("first", "second")]
    ids = [{s["id"] for s in json.loads(p.read_text())["specs"]} for p in reports]
    assert ids[0] == ids[1] and len(ids[0]) == 3  # ORT's fp32, fused and int8 files
    baseline, current = load_results([reports[0]]), load_results([reports[1]])
    assert baseline.stable_ids and current.stable_ids
    outcome = compare_runs(baseline, current, latency_tolerance=10.0)  # timing aside: what joined?
    latency = [row for row in outcome.rows if row.metric == "p50 latency ms"]
    assert len(latency) == 3 and not {row.verdict for row in latency} & {"new", "missing"}
    assert len([row for row in outcome.rows if row.metric == "top-1"]) == 3


def test_version_2_files_still_load_render_and_gate(cli, tmp_path):
    v2 = Path(__file__).parent / "data" / "v2-run.json"  # the sample `rnopt run` report of schema 2 (paths in ids)
    data = load_results([v2])
    assert not data.stable_ids and len(data.bench) == 14 and data.evals
    r = cli("report", v2, "-o", tmp_path / "old.html")
    assert r.code == 0 and "Recommended:" in (tmp_path / "old.html").read_text()
    assert cli("compare-runs", v2, v2).code == 0  # joined on labels: its ids hashed paths


def test_a_runtime_added_from_outside_runs_through_the_planner(tmp_path, fp32_onnx, cli):
    """One module (tests/numpy_runtime.py) and one registration: bench and eval take it like a built-in one."""
    import rnopt
    from numpy_runtime import tiny_model
    from rnopt.backends import RUNTIMES, register_runtime

    tiny = tmp_path / "tiny.onnx"
    tiny_model(str(tiny), str(fp32_onnx))
    register_runtime("numpy", "numpy_runtime:NumpyBackend", "numpy_runtime:NumpyConfig", "numpy")
    try:
        specs = rnopt.plan([rnopt.artifact(str(tiny))], ["onnxruntime", "numpy"])
        assert [s.runtime for s in specs] == ["onnxruntime", "numpy"] and specs[0].id != specs[1].id
        timing = rnopt.bench(specs, BenchConfig([1, 4], warmup=1, iterations=5, min_time=0))
        assert {(r.backend, r.batch_size) for r in timing.bench} == {(rt, b) for rt in ("onnxruntime", "numpy")
                                                                     for b in (1, 4)}
        accuracy = rnopt.evaluate(specs, rnopt.EvalConfig(limit=100))
        [ort, mine] = accuracy.evals[0].results
        [comparison] = accuracy.evals[0].comparisons
        assert mine.backend == "numpy" and mine.n == 100 and mine.top1 == ort.top1
        assert comparison.agreement == 1.0 and comparison.max_abs_logit_diff < 1e-4
        assert "numpy" in {entry.name for entry in rnopt.list_runtimes()}
        with pytest.raises(RnoptError, match="dtype must be float32 or float64"):
            VariantSpec.build(specs[1].artifact, "numpy", dtype="int8")
        # its flag comes from its config, on the command line as on a built-in runtime, with nothing added to rnopt
        r = cli("eval", tiny, "--backend", "onnxruntime,numpy", "--numpy-dtype", "float64", "--limit", "20",
                "--json", tmp_path / "e.json")
        assert r.code == 0, r.err
        configs = {s["runtime"]: s["config"] for s in json.loads((tmp_path / "e.json").read_text())["specs"]}
        assert configs["numpy"] == {"dtype": "float64"}
        assert "--numpy-dtype" in cli("eval", "--help").out
        r = cli("eval", tiny, "--backend", "onnxruntime", "--numpy-dtype", "float64", "--limit", "20")
        assert r.code == 1 and "--numpy-dtype applies to numpy, which this command does not run" in r.err
    finally:
        RUNTIMES.pop("numpy", None)


def test_the_default_runtime_follows_what_runtimes_load(fp32_onnx, tmp_path, cli):
    from rnopt.plan import default_runtime
    from rnopt.privacy import import_openvino

    ov = import_openvino()

    name = artifact_for("resnet20_cifar10")
    assert default_runtime(name) == "onnxruntime" and default_runtime(name, prefer_pytorch=True) == "torch"
    assert default_runtime(artifact_for(str(fp32_onnx))) == "onnxruntime"
    ov.save_model(ov.Core().read_model(str(fp32_onnx)), str(tmp_path / "m.xml"))
    assert default_runtime(artifact_for(str(tmp_path / "m.xml"))) == "openvino"  # ONNX Runtime cannot load an IR
    r = cli("bench", tmp_path / "m.xml", "--batch-size", "1", "--iterations", "3", "--warmup", "1", "--min-time", "0",
            "--no-memory", "--json", tmp_path / "b.json")
    assert r.code == 0, r.err
    assert {row["backend"] for row in json.loads((tmp_path / "b.json").read_text())["bench"]} == {"openvino"}


def test_no_runtime_is_named_outside_the_registries_and_its_own_modules():
    """The planner, the pipeline, the search, the CLI and the headline decide from what runtimes declare: a runtime's
    registry name as a string in their code (not in comments or help) would be a decision keyed on its name."""
    import io
    import tokenize

    import rnopt
    from rnopt.backends import runtime_names

    root = Path(rnopt.__file__).parent
    names = {repr(n) for n in runtime_names()} | {f'"{n}"' for n in runtime_names()}
    modules = [p.relative_to(root) for p in sorted((root / "cli").glob("*.py"))]
    for module in [*modules, "plan.py", "pipeline.py", "search.py", "report/headline.py", "report/document.py"]:
        source = (root / module).read_text()
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        for token in tokens:
            assert not (token.type == tokenize.STRING and token.string in names), \
                f"{module}:{token.start[0]} names runtime {token.string}"
