"""Recipe artifacts: a file rnopt builds is named by its source and the steps that make it (never a path), built
step by step into a content-addressed cache, and rebuilt from a spec's JSON anywhere: the same bytes, or one line
saying why not."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rnopt import notices
from rnopt.accuracy import AccuracyBound, ValidationSet
from rnopt.artifacts import ArtifactStore, artifact_for, file_sha256, made_with
from rnopt.errors import RnoptError
from rnopt.environment import cpu_kernels, snapshot
from rnopt.quantization import QuantRecipe
from rnopt.quantization.base import CalibrationData
from rnopt.recipes import optimize_step, quantize_aware_step, quantize_step
from rnopt.onnx_model import model_meta
from rnopt.spec import ArtifactSpec, Step, VariantSpec

def _images(seed: int, n: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def test_recipe_ids_name_content_and_steps_not_places_or_defaults():
    model = artifact_for("resnet20_cifar10")
    here, there = CalibrationData("cifar10-calib", _images(0)), CalibrationData("/data/elsewhere", _images(0))
    other = CalibrationData("cifar10-calib", _images(1))
    step = quantize_step("onnxruntime", QuantRecipe(), here)
    # the same images read from another place: one id; other images: another id
    assert model.then(step).id == model.then(quantize_step("onnxruntime", QuantRecipe(), there)).id
    assert model.then(step).id != model.then(quantize_step("onnxruntime", QuantRecipe(), other)).id
    # the machine-dependent default is fixed when the recipe is written: the spelled-out value is the same recipe
    reduce = not snapshot().has_int8_acceleration  # 7-bit weights where the CPU lacks VNNI/AMX
    assert step == quantize_step("onnxruntime", QuantRecipe(reduce_range=reduce), here)
    assert step != quantize_step("onnxruntime", QuantRecipe(reduce_range=not reduce), here)
    assert model.then(step).id != model.then(quantize_step("onnxruntime", QuantRecipe(method="entropy"), here)).id
    # defaults left out; what a step changes and the order of steps are in the id
    assert optimize_step() == optimize_step("extended") and optimize_step("basic") != optimize_step()
    fused_then_int8 = model.then(optimize_step()).then(step)
    assert fused_then_int8.id != model.then(step).id != model.id
    assert fused_then_int8.parent() == model.then(optimize_step())
    assert model.then(step).quantized and not model.then(optimize_step()).quantized
    # validation images and the bound are part of an accuracy-aware recipe
    validation = ValidationSet("cifar10-val[8]", _images(2), np.arange(8) % 10, "cifar10-val", 8)
    aware = quantize_aware_step("onnxruntime", QuantRecipe(), here, AccuracyBound(max_drop=1.0), validation)
    looser = quantize_aware_step("onnxruntime", QuantRecipe(), here, AccuracyBound(max_drop=2.0), validation)
    moved = ValidationSet("x", validation.images, validation.labels, "/elsewhere", None)
    assert model.then(aware).id != model.then(looser).id
    assert model.then(aware).id == model.then(quantize_aware_step(
        "onnxruntime", QuantRecipe(), here, AccuracyBound(max_drop=1.0), moved)).id
    # the recipe round-trips through JSON, and the bytes it last gave are recorded but are not its identity
    spec = VariantSpec(model.then(step), "onnxruntime")
    again = VariantSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.id == spec.id and again.artifact.steps == (step,)
    assert ArtifactSpec(**{**spec.to_dict()["artifact"], "steps": (step,), "built_sha256": "ab" * 32}).id == \
        model.then(step).id
    with pytest.raises(RnoptError, match="unknown recipe step 'prune'"):
        VariantSpec.from_dict({**spec.to_dict(), "artifact": {**spec.to_dict()["artifact"], "steps": [{"op": "prune"}]}})


REBUILD = r"""
import json, sys
import numpy as np
from rnopt.data import load_dataset
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.artifacts import ArtifactStore, file_sha256
from rnopt.spec import VariantSpec

specs = [VariantSpec.from_dict(entry) for entry in json.loads(open(sys.argv[1]).read())]
from rnopt.privacy import import_openvino
ov = import_openvino()  # other OpenVINO work first: its process-wide node counter is not where the tune's was
for _ in range(3):
    ov.Core().read_model(sys.argv[3])
store = ArtifactStore()
variants, failures = InProcessExecutor(store).load(specs)
assert not failures, failures
found = {}
for variant in variants:
    built = store.model_file(variant.spec.artifact)
    path = built.path
    [(images, _)] = list(load_dataset("cifar10").subset(100).batches(100, built.meta.preprocessing))
    np.save(sys.argv[2] + "/" + variant.spec.id + ".npy", variant.session.predict(images))
    found[variant.spec.id] = {"sha256": file_sha256(path), "path": str(path)}  # an IR: .xml and .bin
print(json.dumps(found))
"""


def test_a_tunes_choice_rebuilds_in_a_fresh_process_with_an_empty_cache(tuned, tmp_path):
    from rnopt.data import load_dataset
    from rnopt.execute.inprocess import InProcessExecutor
    from rnopt.onnx_model import model_meta

    folder = tuned
    record = json.loads((folder / "report.json").read_text())
    search = record["searches"][0]
    by_id = {entry["id"]: entry for entry in record["specs"]}
    # the chosen variant, and every int8 candidate whatever was chosen (ORT's QDQ file on both runtimes, NNCF's IR)
    wanted = {search["chosen_id"]} | {i for i, e in by_id.items() if any(
        s["op"].startswith("quantize") for s in e["artifact"]["steps"])}
    assert len(wanted) >= 3
    (tmp_path / "specs.json").write_text(json.dumps([by_id[i] for i in sorted(wanted)]))
    fresh = tmp_path / "fresh-cache"
    proc = subprocess.run([sys.executable, "-c", REBUILD, str(tmp_path / "specs.json"), str(tmp_path),
                           str(folder / "model.onnx")],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RNOPT_CACHE_DIR": str(fresh)})
    assert proc.returncode == 0, proc.stderr
    rebuilt = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(Path(r["path"]).is_relative_to(fresh) for r in rebuilt.values())  # built there, not found
    for spec_id in wanted:
        spec = VariantSpec.from_dict(by_id[spec_id])
        assert rebuilt[spec_id]["sha256"] == spec.artifact.built_sha256, (spec.label, spec.artifact.steps)
        assert spec.artifact.built_with == made_with()  # the record says what made its bytes: libraries and CPU
        copy = folder / next(c["label"] for c in search["candidates"] if c["spec_id"] == spec_id).split(" ")[0]
        assert file_sha256(copy) == spec.artifact.built_sha256
        # and the same outputs, bit for bit, as the file the tune wrote, on 100 test images
        [variant], _ = InProcessExecutor().load([VariantSpec(artifact_for(str(copy)), spec.runtime,
                                                             spec.device, spec.precision, spec.threads, spec.config)])
        preprocessing = model_meta(folder / "model.onnx").preprocessing
        [(images, _)] = list(load_dataset("cifar10").subset(100).batches(100, preprocessing))
        assert np.array_equal(np.load(tmp_path / f"{spec_id}.npy"), variant.session.predict(images))
    assert "differ from those recorded" not in proc.stderr


def test_a_rebuild_that_cannot_give_the_same_bytes_says_why(tmp_path, monkeypatch, fp32_onnx):
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path / "cache"))
    model = artifact_for("resnet20_cifar10")
    calibration = CalibrationData("cifar10-calib", _images(0))  # not what cifar10-calib decodes to
    with pytest.raises(RnoptError, match=r"calibration images this recipe was made with \(sha256 [0-9a-f]{12}\) "
                                         r"are not those cifar10-calib gives here"):
        ArtifactStore().model_file(model.then(quantize_step("onnxruntime", QuantRecipe(), calibration)))
    # a user's file that is not on this machine: named by its sha256
    gone = artifact_for(str(fp32_onnx))
    gone = ArtifactSpec(str(tmp_path / "moved" / "resnet20.onnx"), gone.sha256, head=gone.head)
    with pytest.raises(RnoptError, match=f"is not on this machine.*sha256 {gone.sha256[:12]}|sha256 "
                                         f"{gone.sha256[:12]}.*is not on this machine"):
        ArtifactStore().model_file(gone.then(optimize_step()))
    # other bytes than those recorded: built, and said with what made each (libraries and CPU)
    notices.drain()
    elsewhere = "torch 1.0; CPU Another CPU (avx512f, avx512_vnni)"
    fused = ArtifactStore().model_file(ArtifactSpec("resnet20_cifar10", model.sha256, steps=(optimize_step(),),
                                                    built_sha256="0" * 64, built_with=elsewhere))
    assert fused.path.exists()
    [said] = [n for n in notices.drain() if "its bytes differ from those recorded" in n]
    assert f"recorded with {elsewhere}; built here with " in said and f"CPU {cpu_kernels()}" in said
    # the same libraries and CPU, other bytes: the step is not deterministic here, and that is what is said
    ArtifactStore().model_file(ArtifactSpec("resnet20_cifar10", model.sha256, steps=(optimize_step(),),
                                            built_sha256="0" * 64, built_with=made_with()))
    assert any("not deterministic here" in n for n in notices.drain())


def test_an_interrupted_build_leaves_no_cache_entry(tmp_path, monkeypatch):
    import rnopt.recipes

    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path))
    model = artifact_for("resnet20_cifar10")
    store = ArtifactStore()
    store.model_file(model)
    before = sorted(p.name for p in (tmp_path / "artifacts").iterdir())

    def interrupted(step, parent, output, data):
        output.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(rnopt.recipes, "run_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.model_file(model.then(optimize_step()))
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == before  # no entry, no scratch folder
    monkeypatch.undo()
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path))
    fused = ArtifactStore().model_file(model.then(optimize_step()))
    assert fused.meta.variant == "fused" or "optimize" in ";".join(fused.meta.history)


def test_steps_are_checked_when_read():
    with pytest.raises(RnoptError, match="not JSON"):
        Step("optimize", "{")
    with pytest.raises(RnoptError, match="unknown quantization setting 'colour'|unknown quantization setting colour"):
        QuantRecipe.from_settings({"colour": "red"})


def test_build_writes_a_specs_file_into_a_folder_and_refuses_to_replace_it(cli, tmp_path):
    spec = VariantSpec(artifact_for("resnet20_cifar10").then(optimize_step()), "onnxruntime")
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    out = tmp_path / "deploy" / "fused"
    r = cli("build", tmp_path / "spec.json", "-o", out, "--json", tmp_path / "build.json")
    assert r.code == 0, r.err
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "spec.json"]
    assert "optimize:extended" in ";".join(model_meta(out / "model.onnx").history)
    written = json.loads((out / "spec.json").read_text())
    assert written["id"] == spec.id and VariantSpec.from_dict(written) == spec
    record = json.loads((tmp_path / "build.json").read_text())
    assert record["kind"] == "build" and len(record["exports"]) == 1 and len(record["optimizations"]) == 1
    before = (out / "model.onnx").read_bytes()
    r = cli("build", tmp_path / "spec.json", "-o", out)
    assert r.code == 1 and "already exists" in r.err and (out / "model.onnx").read_bytes() == before
    # a record with several specs: one is picked by id, else the command says which there are
    other = VariantSpec(spec.artifact.parent(), "onnxruntime")
    run = {"schema_version": 5, "kind": "bench", "specs": [{"id": spec.id, **spec.to_dict()},
                                                           {"id": other.id, **other.to_dict()}]}
    (tmp_path / "bench.json").write_text(json.dumps(run))
    r = cli("build", tmp_path / "bench.json", "-o", tmp_path / "x")
    assert r.code == 1 and f"several specs in it (its specs: {spec.id}, {other.id}): pick one with --id" in r.err
    assert not (tmp_path / "x").exists()
    assert cli("build", tmp_path / "bench.json", "--id", other.id, "-o", tmp_path / "x", "--quiet").code == 0
    # an entry whose id is not its content's (edited by hand) is refused by name, not silently renamed
    run["specs"][1]["id"] = "other"
    (tmp_path / "edited.json").write_text(json.dumps(run))
    r = cli("build", tmp_path / "edited.json", "--id", "other", "-o", tmp_path / "y")
    assert r.code == 1 and "does not match its content" in r.err and not (tmp_path / "y").exists()
    assert "optimize" not in ";".join(model_meta(tmp_path / "x" / "model.onnx").history)


def test_the_explicit_verbs_build_their_files_through_the_store(cli, tmp_path, monkeypatch, fp32_onnx):
    """export, optimize and quantize (accuracy-aware too) are recipe steps: each file is built once into the store
    and copied out, so a second command with the same recipe copies the same bytes, and the copies name the
    user's files."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(cache))

    def entries() -> set[str]:
        return {p.name for p in (cache / "artifacts").iterdir() if not p.name.startswith(".")}

    assert cli("export", "resnet20_cifar10", "-o", tmp_path / "a.onnx", "--quiet").code == 0
    assert len(entries()) == 1
    r = cli("export", "resnet20_cifar10", "-o", tmp_path / "b.onnx", "--quiet", "--json", tmp_path / "e.json")
    assert r.code == 0, r.err
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() and len(entries()) == 1
    assert json.loads((tmp_path / "e.json").read_text())["exports"][0]["output"] == str(tmp_path / "b.onnx")
    for name in ("f1", "f2"):
        r = cli("optimize", fp32_onnx, "-o", tmp_path / f"{name}.onnx", "--quiet", "--json", tmp_path / f"{name}.json")
        assert r.code == 0, r.err
    assert (tmp_path / "f1.onnx").read_bytes() == (tmp_path / "f2.onnx").read_bytes() and len(entries()) == 2
    fused = json.loads((tmp_path / "f2.json").read_text())["optimizations"][0]
    assert (fused["input"], fused["output"]) == (str(fp32_onnx), str(tmp_path / "f2.onnx"))
    args = ["--calib-size", "64", "--quiet"]
    assert cli("quantize", fp32_onnx, "-o", tmp_path / "q1.onnx", *args).code == 0
    assert cli("quantize", fp32_onnx, "-o", tmp_path / "q2.onnx", *args).code == 0
    assert (tmp_path / "q1.onnx").read_bytes() == (tmp_path / "q2.onnx").read_bytes() and len(entries()) == 3
    # another recipe is another entry (percentile on 64 images: a batch of 50 and one of 14 once broke ORT's
    # histogram collector), and an int8 input is still refused before anything is built
    assert cli("quantize", fp32_onnx, "-o", tmp_path / "q3.onnx", "--method", "percentile", *args).code == 0
    assert len(entries()) == 4
    r = cli("quantize", tmp_path / "q1.onnx", "-o", tmp_path / "qq.onnx", *args)
    assert r.code == 1 and "already quantized" in r.err and not (tmp_path / "qq.onnx").exists() and len(entries()) == 4
    # accuracy-aware int8 too: built once by its recipe (the bound, the validation images by content), its
    # untuned test figures measured on the files afterwards: the second time (the same float and int8 bytes on the
    # same test images) from the prediction cache
    monkeypatch.setenv("RNOPT_PREDICTION_CACHE", "1")
    aware = [*args, "--max-drop", "50", "--limit", "100"]
    for name in ("a1", "a2"):
        r = cli("quantize", fp32_onnx, "-o", tmp_path / f"{name}.onnx", *aware, "--json", tmp_path / f"{name}.json")
        assert r.code == 0, r.err
        assert ("taken from the prediction cache" in r.err) == (name == "a2"), r.err
        assert len(list((cache / "predictions").glob("*.npy"))) == 2  # the float file's outputs and full int8's
    assert (tmp_path / "a1.onnx").read_bytes() == (tmp_path / "a2.onnx").read_bytes() and len(entries()) == 5
    first, report = (json.loads((tmp_path / f"{n}.json").read_text())["quantizations"][0]["accuracy_aware"]
                     for n in ("a1", "a2"))
    assert all(report[k] == first[k] for k in ("test_score", "test_int8_score", "test_float_score"))
    assert report["met"] and report["images"] == 100 and report["test_data"] == "cifar10"
    # nothing reverted: the model written is full int8; ResNet-20 scores 0.81 in float on the JPEG test set
    assert report["test_score"] == report["test_int8_score"] == pytest.approx(report["test_float_score"], abs=0.02)
    assert report["test_float_score"] == pytest.approx(0.81, abs=0.01)


def test_an_entry_from_another_store_is_taken_only_with_the_bytes_its_spec_names(tmp_path):
    """What a cluster node does with model files shipped to it: installs them whole when their sha256 is the one
    recorded and the spec's; anything else is refused (the recipe builds it) and leaves nothing behind."""
    model = artifact_for("resnet20_cifar10")
    fused = model.then(optimize_step())
    there = ArtifactStore(tmp_path / "driver")
    there.model_file(fused)
    sha = there.results[fused].sha256
    files = there.entry_files(fused)
    assert files is not None and {"model.onnx", "result.json", "recipe.json"} <= set(files)
    assert there.entry_files(model.then(optimize_step(level="basic"))) is None  # not built there: nothing to ship

    tampered = dict(files, **{"model.onnx": files["model.onnx"] + b"\0"})
    node = ArtifactStore(tmp_path / "node")
    with notices.collecting():
        assert not node.install(fused, tampered)
    assert not node.install(replace(fused, built_sha256="0" * 64), files)
    assert [p.name for p in (tmp_path / "node").iterdir()] == []  # no entry, no scratch folder left
    assert node.install(replace(fused, built_sha256=sha), files)
    assert file_sha256(tmp_path / "node" / fused.id / "model.onnx") == sha
    assert not node.install(fused, files)  # a trusted entry is kept as it is
    assert node.model_file(fused).path == tmp_path / "node" / fused.id / "model.onnx"
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == [fused.id]  # its parent, the export: not made


def test_a_built_files_metadata_is_read_without_parsing_its_graph(fp32_onnx, int8_onnx, tmp_path):
    """The store's files carry rnopt's metadata, read from the wire format: the same as onnx's parse, None where
    the file has none (a foreign export, bytes that are not protobuf), and a probe process never imports onnx."""
    import onnx

    from rnopt.onnx_model import load_onnx, read_meta, stored_meta_json

    for path in (fp32_onnx, int8_onnx):
        assert model_meta(path, built=True) == read_meta(load_onnx(path, load_weights=False), path)
    foreign, junk = tmp_path / "foreign.onnx", tmp_path / "junk.onnx"
    model = onnx.load(fp32_onnx)
    del model.metadata_props[:]
    onnx.save(model, foreign)
    junk.write_bytes(b"\xff" * 64)
    assert stored_meta_json(foreign) is None and stored_meta_json(junk) is None
    assert model_meta(foreign, built=True).history == ["foreign model: preprocessing inferred"]
    probe = ("import sys\nfrom rnopt.artifacts import ArtifactStore, artifact_for\n"
             "model = ArtifactStore().model_file(artifact_for('resnet20_cifar10'))\n"
             "print(model.meta.model, 'onnx' in sys.modules)")
    ArtifactStore().model_file(artifact_for("resnet20_cifar10"))  # built here first: the probe finds it
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["resnet20_cifar10", "False"]
