"""Each backend on the bundled ResNet-20: numerics against PyTorch, the precision it reports, JSON fields."""
import json

import numpy as np
import onnx
import pytest

from conftest import bench_rows, eval_section, settings
from rnopt.artifacts import ArtifactStore, artifact_for, open_model_file
from rnopt.backends import BACKEND_NAMES, ModelFile, TorchModel, backend_class, get_backend
from rnopt.environment import snapshot
from rnopt.errors import RnoptError
from rnopt.onnx_model import load_onnx, read_meta
from rnopt.plan import plan, split_list


def _file(path):
    return ModelFile(path, read_meta(load_onnx(path)))


def test_registry_and_comma_list():
    assert set(BACKEND_NAMES) == {"onnxruntime", "openvino", "torch"}
    assert split_list("openvino, torch,openvino") == ["openvino", "torch"]
    with pytest.raises(RnoptError, match="unknown backend 'tvm'"):
        plan([artifact_for("resnet20_cifar10")], split_list("onnxruntime,tvm"))
    for cls in map(backend_class, BACKEND_NAMES):
        assert "cpu" in cls.devices()


def test_onnxruntime_matches_torch(fp32_onnx, batch, reference):
    session = get_backend("onnxruntime").load(_file(fp32_onnx), settings("onnxruntime", opt_level="basic"))
    assert session.precision == "fp32" and session.describe() == "provider=cpu"
    assert np.abs(session.predict(batch) - reference).max() < 1e-4


def test_onnxruntime_inter_op_threads_run_in_parallel_mode(fp32_onnx, batch, reference):
    import onnxruntime as ort

    session = get_backend("onnxruntime").load(_file(fp32_onnx), settings("onnxruntime", threads=1, inter_op=2))
    opts = session.session.get_session_options()
    assert (opts.execution_mode, opts.inter_op_num_threads, opts.intra_op_num_threads) == (
        ort.ExecutionMode.ORT_PARALLEL, 2, 1)
    assert session.describe() == "provider=cpu,inter_op=2"
    assert np.abs(session.predict(batch) - reference).max() < 1e-4


def test_openvino_fp32_forced_matches_torch_and_default_reports_what_ran(fp32_onnx, batch, reference):
    ov = get_backend("openvino")
    forced = ov.load(_file(fp32_onnx), settings("openvino", precision="fp32"))
    assert forced.precision == "fp32"
    assert np.abs(forced.predict(batch) - reference).max() < 1e-3
    default = ov.load(_file(fp32_onnx), settings("openvino"))
    # On a CPU with native bf16 OpenVINO runs an fp32 model in bf16 unless told otherwise.
    assert default.precision == ("bf16" if snapshot().has_bf16 else "fp32")
    assert (default.predict(batch).argmax(1) == reference.argmax(1)).mean() >= 2 / 3


def test_openvino_runs_the_qdq_model_in_int8(int8_onnx, batch, reference):
    session = get_backend("openvino").load(_file(int8_onnx), settings("openvino", precision="int8"))
    assert session.precision == "int8"
    assert np.abs(session.predict(batch) - reference).max() < 2.0


def test_openvino_throughput_mode_runs_several_requests(fp32_onnx, batch):
    session = get_backend("openvino").load(_file(fp32_onnx), settings("openvino", hint="throughput"))
    # OpenVINO's optimal request count for the throughput hint: more than one in flight, as benchmark_app runs
    assert session.streams >= 2 and session.describe() == "hint=throughput"
    prepared = session.prepare(batch)
    assert len(prepared.requests) == session.streams
    session.run(prepared)
    outputs = [np.array(r.get_output_tensor(0).data) for r in prepared.requests]
    assert all(np.allclose(o, outputs[0]) for o in outputs) and outputs[0].shape == (3, 10)
    latency = get_backend("openvino").load(_file(fp32_onnx), settings("openvino"))
    assert latency.streams == 1


class _Logged:
    """OpenVINO's request queue with its starts and waits written down, in order (the queue itself runs)."""

    def __init__(self, queue, log):
        self.queue, self.log = queue, log

    def __len__(self):
        return len(self.queue)

    def __getitem__(self, k):
        return self.queue[k]

    def start_async(self):
        self.log.append("start")
        self.queue.start_async()

    def wait_all(self):
        self.log.append("wait all")
        self.queue.wait_all()


def test_openvino_throughput_blocks_keep_every_request_in_flight(fp32_onnx, batch):
    """As benchmark_app's async mode: a timed block starts every request first; then each call restarts each
    request as soon as it ends (whichever ends first: no core idles until the slowest ends), and only the block's
    end waits for all. Outside a block, a call starts them all and waits for all."""
    from rnopt.bench import BLOCK_WARMUP, _block

    session = get_backend("openvino").load(_file(fp32_onnx), settings("openvino", hint="throughput"))
    prepared, log = session.prepare(batch), []
    n = len(prepared.requests)
    prepared.requests = _Logged(prepared.requests, log)
    calls = len(_block(session, prepared)) + BLOCK_WARMUP  # the block's samples and its warm-up calls
    assert log == ["start"] * n * (1 + calls) + ["wait all"]
    assert not prepared.in_flight
    log.clear()
    session.run(prepared)
    assert log == ["start"] * n + ["wait all"]
    one_by_one = get_backend("openvino").load(_file(fp32_onnx), settings("openvino", hint="throughput"))
    assert np.array_equal(session.to_numpy(prepared), one_by_one.predict(batch))


def test_torch_channels_last_and_bf16(resnet20, batch, reference):
    torch_backend = get_backend("torch")
    cl = torch_backend.load(TorchModel(resnet20), settings("torch", channels_last=True))
    assert cl.describe() == "eager,channels_last"
    assert np.abs(cl.predict(batch) - reference).max() < 1e-4
    if snapshot().has_bf16:
        bf16 = torch_backend.load(TorchModel(resnet20), settings("torch", precision="bf16"))
        assert bf16.precision == "bf16"
        assert np.abs(bf16.predict(batch) - reference).max() < 0.5
    else:
        with pytest.raises(RnoptError, match="no native bf16"):
            torch_backend.load(TorchModel(resnet20), settings("torch", precision="bf16"))


def test_names_are_exported_on_the_fly_and_cached(tmp_path, monkeypatch, batch, reference):
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path))
    artifact = artifact_for("resnet20_cifar10")
    store = ArtifactStore()
    first = store.model_file(artifact)
    assert first.path == tmp_path / "artifacts" / artifact.id / "model.onnx"
    assert first.meta.weights_sha256.startswith("12fca82f")
    assert store.model_file(artifact) is first  # one export per process, however many backends ask
    stamp = first.path.stat().st_mtime_ns
    again = ArtifactStore().model_file(artifact_for("resnet20_cifar10"))  # a later run: the cached file
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"c{i}" for i in range(10)))
    renamed = store.model_file(artifact_for("resnet20_cifar10", labels=str(labels)))
    assert renamed.path != first.path and renamed.meta.class_names[0] == "c0"  # metadata differs: new file
    # Everything that changes the exported bytes is in the recipe's id: the opset, for one.
    older = store.model_file(artifact_for("resnet20_cifar10", opset=17))
    assert older.path != first.path and onnx.load(str(older.path)).opset_import[0].version == 17
    for name in ("onnxruntime", "openvino"):
        backend = get_backend(name)
        model = store.model_for(artifact, backend.formats)
        session = backend.load(model, settings(name, precision="fp32" if name == "openvino" else None))
        assert np.abs(session.predict(batch) - reference).max() < 1e-3


def test_nncf_int8_ir(cli, tmp_path, fp32_onnx):
    xml = tmp_path / "m.int8.xml"
    r = cli("quantize", fp32_onnx, "-o", xml, "--backend", "openvino", "--calib-size", "100")
    assert r.code == 0, r.err
    assert xml.exists() and xml.with_suffix(".bin").exists()
    model = open_model_file(xml)
    assert model.format == "openvino-ir" and model.meta.variant == "int8" and model.meta.model == "resnet20_cifar10"
    r = cli("eval", fp32_onnx, xml, "--backend", "openvino", "--precision", "fp32", "--limit", "300",
            "--json", tmp_path / "e.json")
    # --precision fp32 cannot apply to the int8 IR alone, so OpenVINO's hint is f32 for both models
    assert r.code == 0, r.err
    ev = eval_section(json.loads((tmp_path / "e.json").read_text()))
    assert [x["precision"] for x in ev["results"]] == ["fp32", "int8"]
    assert abs(ev["comparisons"][0]["top1_delta"]) < 0.03


def test_multi_backend_bench_json(cli, tmp_path, fp32_onnx):
    r = cli("bench", "resnet20_cifar10", fp32_onnx, "--backend", "onnxruntime,openvino,torch",
            "--batch-size", "2", "--iterations", "5", "--warmup", "1", "--min-time", "0", "--json", tmp_path / "b.json")
    assert r.code == 0, r.err
    assert "skipped" in r.err  # the .onnx file cannot run on torch
    res = bench_rows(json.loads((tmp_path / "b.json").read_text()))
    pairs = {(x["backend"], x["precision"]) for x in res}
    assert ("torch", "fp32") in pairs and ("onnxruntime", "fp32") in pairs
    assert any(b == "openvino" for b, _ in pairs)
    assert len(res) == 5
    for x in res:
        assert x["load_time_s"] >= 0 and x["first_inference_ms"] > 0 and x["peak_rss_mb"] > 0
        assert x["model_size_bytes"] > 0
        # memory measured per variant in a fresh process: a part of that process's peak
        assert 0 < x["memory_mb"] < x["memory_process_mb"]


def test_precision_list_compares_precisions_side_by_side(cli, tmp_path, fp32_onnx):
    r = cli("bench", fp32_onnx, "--backend", "openvino,onnxruntime", "--precision", "fp32,bf16", "--batch-size", "1",
            "--iterations", "5", "--min-time", "0", "--warmup", "1", "--no-memory", "--json", tmp_path / "p.json")
    assert r.code == 0, r.err
    assert "skipped" in r.err and "[onnxruntime bf16]: onnxruntime does not run precision 'bf16'" in r.err
    payload = json.loads((tmp_path / "p.json").read_text())
    asked = {s["label"]: (s["runtime"], s["precision"]) for s in payload["specs"]}
    ran = [(*asked[x["model"]], x["precision"]) for x in bench_rows(payload)]
    assert ran == [("openvino", "fp32", "fp32"), ("openvino", "bf16", "bf16" if snapshot().has_bf16 else "fp32"),
                   ("onnxruntime", "fp32", "fp32")]
    [failure] = payload["failures"]
    assert failure["stage"] == "load" and "does not run precision 'bf16'" in failure["reason"]


def test_scenarios(cli, tmp_path, fp32_onnx):
    r = cli("bench", fp32_onnx, "--scenario", "single-stream", "--iterations", "5", "--min-time", "0",
            "--warmup", "1", "--no-memory", "--json", tmp_path / "s.json")
    assert r.code == 0 and "single-stream p90 latency" in r.out
    assert [x["batch_size"] for x in bench_rows(json.loads((tmp_path / "s.json").read_text()))] == [1]
    r = cli("bench", fp32_onnx, "--backend", "openvino", "--scenario", "offline", "--batch-size", "4",
            "--iterations", "5", "--min-time", "0", "--warmup", "1", "--no-memory", "--json", tmp_path / "o.json")
    assert r.code == 0 and "offline" in r.out, r.err
    [res] = bench_rows(json.loads((tmp_path / "o.json").read_text()))
    assert res["settings"] == "hint=throughput" and res["memory_mb"] is None
    assert res["throughput_ips"] == pytest.approx(4 * res["streams"] * 1000 / res["latency_ms"]["mean"])


def test_backends_command(cli):
    r = cli("backends")
    assert r.code == 0 and "openvino" in r.out and "providers: cpu" in r.out


@pytest.mark.slow
def test_torch_compile_matches_eager_and_reports_compile_as_load_time(resnet20, batch, reference):
    from rnopt.bench import BenchConfig, Variant, bench_variants

    session = get_backend("torch").load(TorchModel(resnet20), settings("torch", compile=True))
    assert session.describe() == "compile"
    [result] = bench_variants([Variant(settings("torch", compile=True), session, TorchModel(resnet20))],
                              BenchConfig([1], 1, 5, 0.0))
    assert session.load_time_s * 1e3 > 10 * result.latency_ms.p50  # compiled while loading, for the first shape
    assert result.first_inference_ms < session.load_time_s * 1e3
    assert np.abs(session.predict(batch) - reference).max() < 1e-3


def test_a_missing_runtime_is_listed_and_refused_in_one_line(run_without):
    listing = run_without(["openvino", "onnxruntime"], "rnopt", "backends")
    assert listing.returncode == 0, listing.stderr
    assert "not installed: pip install openvino" in listing.stdout
    assert "not installed: pip install onnxruntime" in listing.stdout
    for backend in ("openvino", "onnxruntime"):
        message = f"the {backend} backend needs the Python package '{backend}', which is not installed"
        proc = run_without(["openvino", "onnxruntime"], "rnopt", "bench", "resnet20_cifar10", "--backend", backend)
        assert proc.returncode == 1
        assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


def test_run_skips_a_missing_default_runtime_with_a_warning(run_without, tmp_path):
    proc = run_without(["openvino"], "rnopt", "run", "--output", tmp_path, "--limit", "50", "--batch-size", "1",
                       "--iterations", "3", "--min-time", "0", "--warmup", "1", "--no-memory", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "openvino skipped: the openvino backend needs the Python package 'openvino'" in proc.stderr
    [run] = list(tmp_path.iterdir())
    backends = {r["backend"] for r in bench_rows(json.loads((run / "report.json").read_text()))}
    assert backends == {"torch", "onnxruntime"}


def test_run_without_nncf_skips_only_openvinos_own_int8(run_without, tmp_path):
    proc = run_without(["nncf"], "rnopt", "run", "--output", tmp_path, "--limit", "50", "--batch-size", "1",
                       "--iterations", "3", "--min-time", "0", "--warmup", "1", "--no-memory", "--quiet",
                       "--backend", "openvino")
    assert proc.returncode == 0, proc.stderr
    assert "openvino's int8 (model.int8.xml) skipped: OpenVINO int8 needs NNCF and OpenVINO (nncf is missing)" \
        in proc.stderr
    [run] = list(tmp_path.iterdir())
    payload = json.loads((run / "report.json").read_text())
    labels = {s["id"]: s["label"] for s in payload["specs"]}
    assert {labels[r["spec_id"]] for r in bench_rows(payload)} == {"model.onnx [openvino]", "model.int8.onnx [openvino]"}

