"""The CLI end to end, and every kind of bad input: one line, non-zero exit, no traceback, no output."""
import json
import os
import subprocess
import sys

import pytest

from rnopt.models.registry import bundled_weights_path, get_spec


def _one_line_error(result) -> None:
    assert result.code != 0
    lines = [line for line in result.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.err
    assert "Traceback" not in result.err + result.out


def test_models_lists_bundled_weights(cli):
    r = cli("models")
    assert r.code == 0 and "resnet20_cifar10" in r.out and "bundled" in r.out and "resnet152" in r.out


def test_export_optimize_quantize_bench_eval_chain(cli, tmp_path):
    m, fused, q = tmp_path / "m.onnx", tmp_path / "m.fused.onnx", tmp_path / "m.int8.onnx"
    r = cli("export", "resnet20_cifar10", "-o", m, "--json", tmp_path / "export.json")
    assert r.code == 0, r.err
    export = json.loads((tmp_path / "export.json").read_text())
    assert export["schema_version"] == 5 and export["kind"] == "export"
    assert [c["batch_size"] for c in export["exports"][0]["checks"]] == [1, 3]
    env = export["environment"]
    assert isinstance(env["isa"], list) and env["logical_cores"] >= 1
    assert set(env["versions"]) >= {"torch", "onnx", "onnxruntime", "openvino"} and env["python"]
    assert cli("optimize", m, "-o", fused).code == 0
    r = cli("quantize", m, "-o", q, "--calib-size", "100")
    assert r.code == 0 and q.exists(), r.err

    r = cli("bench", m, q, "--batch-size", "1,4", "--warmup", "2", "--iterations", "10", "--min-time", "0.05",
            "--no-memory", "--json", tmp_path / "bench.json")
    assert r.code == 0, r.err
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["kind"] == "bench" and len(bench["bench"]) == 4
    for res in bench["bench"]:
        lat = res["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert res["iterations"] >= 10 and res["threads"] >= 1
        assert res["throughput_ips"] == pytest.approx(res["batch_size"] * 1000 / lat["mean"], rel=1e-6)
        assert res["cv"] == pytest.approx(lat["stdev"] / lat["mean"], rel=1e-6)
        assert set(res) >= {"model", "backend", "device", "precision", "batch_size", "threads", "iterations",
                            "latency_ms", "cv", "throughput_ips"}
    assert {res["precision"] for res in bench["bench"]} == {"fp32", "int8"}
    env = bench["environment"]
    assert env["versions"]["onnxruntime"] and env["cpu_model"] and env["logical_cores"] >= 1

    r = cli("eval", m, q, "resnet20_cifar10", "--limit", "400", "--json", tmp_path / "eval.json")
    assert r.code == 0, r.err
    ev = json.loads((tmp_path / "eval.json").read_text())["evals"][0]
    assert [x["n"] for x in ev["results"]] == [400, 400, 400]
    assert [c["candidate"] for c in ev["comparisons"]] == [q.name, "resnet20_cifar10"]
    assert ev["comparisons"][1]["agreement"] == 1.0
    assert all(0 <= x["top1"] <= x["top5"] <= 1 for x in ev["results"])


def test_torch_backend_bench(cli, tmp_path):
    r = cli("bench", "resnet20_cifar10", "--backend", "torch", "--batch-size", "2", "--iterations", "5",
            "--warmup", "1", "--min-time", "0", "--no-memory", "--json", tmp_path / "b.json")
    assert r.code == 0, r.err
    [res] = json.loads((tmp_path / "b.json").read_text())["bench"]
    assert (res["backend"], res["precision"], res["batch_size"]) == ("torch", "fp32", 2)


def test_run_end_to_end_writes_report(cli, tmp_path):
    r = cli("run", "--output", tmp_path, "--limit", "500", "--batch-size", "1", "--iterations", "10",
            "--min-time", "0.05", "--warmup", "2")
    assert r.code == 0, r.err
    [run] = list(tmp_path.iterdir())
    report = json.loads((run / "report.json").read_text())
    assert report["kind"] == "run" and report["schema_version"] == 5
    assert report["command"].startswith("rnopt run --output")  # the report.json written inside the run says it too
    [export], [ort_int8, nncf_int8] = report["exports"], report["quantizations"]
    assert export["passed"] and ort_int8["calib_data"] == "cifar10-calib"
    models = {b["model"] for b in report["bench"]}
    assert models == {"resnet20_cifar10 (PyTorch)", "model.onnx", "model.fused.onnx", "model.int8.onnx",
                      "model.onnx [openvino]", "model.int8.onnx [openvino]",
                      "model.int8.xml [openvino]"}  # every runtime installed, and NNCF's int8
    fused_cmp, int8_cmp, ov_cmp, ov_int8_cmp, nncf_cmp = report["evals"][0]["comparisons"]
    assert fused_cmp["agreement"] == 1.0 and abs(int8_cmp["top1_delta"]) < 0.03
    assert ov_cmp["agreement"] > 0.98 and abs(ov_int8_cmp["top1_delta"]) < 0.03
    assert abs(nncf_cmp["top1_delta"]) < 0.03 and nncf_int8["method"] == "nncf-default"
    md = (run / "report.md").read_text()
    assert "## Summary" in md and "model.int8.onnx" in md and "JPEG" in md
    assert {p.name for p in run.iterdir()} >= {"report.json", "report.md", "model.onnx", "model.int8.onnx",
                                               "model.int8.xml", "model.int8.bin"}
    assert "nncf-default on 500 images of cifar10-calib" in md  # NNCF's settings beside ORT's


def test_run_compares_the_backends_asked_for(cli, tmp_path):
    r = cli("run", "--output", tmp_path, "--limit", "100", "--batch-size", "1", "--iterations", "5",
            "--min-time", "0", "--warmup", "1", "--no-memory", "--backend", "openvino,torch")
    assert r.code == 0, r.err
    [run] = list(tmp_path.iterdir())
    report = json.loads((run / "report.json").read_text())
    assert {b["model"] for b in report["bench"]} == {
        "resnet20_cifar10 (PyTorch)", "model.onnx [openvino]", "model.int8.onnx [openvino]", "model.int8.xml [openvino]"}
    # No ORT fp32 here. OpenVINO runs model.onnx in bf16 on a CPU with native bf16 (then PyTorch fp32 is the
    # accuracy reference) and in fp32 elsewhere (then it is the reference): read what the runtime reported.
    ov_fp32 = next(b for b in report["bench"] if b["model"] == "model.onnx [openvino]")
    comparisons = report["evals"][0]["comparisons"]
    if ov_fp32["precision"] == "fp32":
        assert {c["reference"] for c in comparisons} == {"model.onnx [openvino]"}
        assert [c["candidate"] for c in comparisons] == ["model.int8.onnx [openvino]", "model.int8.xml [openvino]"]
    else:
        assert ov_fp32["precision"] in ("bf16", "fp16")
        assert {c["reference"] for c in comparisons} == {"resnet20_cifar10 (PyTorch)"}
        assert [c["candidate"] for c in comparisons] == ["model.onnx [openvino]", "model.int8.onnx [openvino]",
                                                         "model.int8.xml [openvino]"]
    r = cli("run", "--output", tmp_path, "--backend", "onnxruntime,tensorflow")
    assert r.code == 1 and "rnopt run compares torch, onnxruntime, openvino, not tensorflow" in r.err
    assert len(list(tmp_path.iterdir())) == 1  # refused before any work: no run folder left


def test_console_script_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnopt", "bench", str(tmp_path / "none.onnx")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


# `python -m rnopt ARGS...` with an object that only the interpreter's teardown frees (its __del__ writes a file).
TEARDOWN_WITNESS = """
import runpy, sys
out = sys.argv[1]
class Witness:
    def __del__(self, out=out):
        with open(out, "w") as f:
            f.write("teardown ran")
sys.modules["_teardown_witness"] = Witness()
sys.argv = ["rnopt", *sys.argv[2:]]
runpy.run_module("rnopt", run_name="__main__", alter_sys=True)
"""

# exit_now(3) with an exit handler that leaves a last line in stdout's buffer (a pipe); with "thread", a thread of
# ours still running too.
EXIT_NOW = """
import atexit, sys, threading, time
from pathlib import Path
folder = Path(sys.argv[1])
# Registered first, so run last (after any library's handler that might flush stdout itself).
atexit.register(lambda: ((folder / "handler").write_text("ran"), sys.stdout.write("last line")))
from rnopt.exiting import exit_now
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.5), (folder / "thread").write_text("finished"))).start()
exit_now(3)
"""


def test_the_program_leaves_without_the_interpreters_teardown(tmp_path):
    witness = tmp_path / "teardown"
    proc = subprocess.run([sys.executable, "-c", TEARDOWN_WITNESS, str(witness), "models"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "resnet20_cifar10" in proc.stdout, proc.stderr
    assert not witness.exists()  # the second of teardown with torch loaded is skipped
    failed = subprocess.run([sys.executable, "-c", TEARDOWN_WITNESS, str(witness), "bench", str(tmp_path / "no.onnx")],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "does not exist" in failed.stderr and not witness.exists()


@pytest.mark.parametrize("thread", ["thread", "no thread"])
def test_leaving_early_still_runs_exit_handlers_waits_for_threads_and_flushes(tmp_path, thread):
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout a buffered pipe
    proc = subprocess.run([sys.executable, "-c", EXIT_NOW, str(tmp_path), thread], capture_output=True, text=True,
                          env=buffered, timeout=60)
    assert proc.returncode == 3 and proc.stdout == "last line", proc.stderr
    assert (tmp_path / "handler").read_text() == "ran"
    assert (tmp_path / "thread").exists() == (thread == "thread")  # a running thread was waited for


# ---- bad input -------------------------------------------------------------------------------------------

@pytest.fixture
def junk(tmp_path):
    (tmp_path / "notes.onnx").write_text("this is not a model\n" * 20)
    data = bundled_weights_path(get_spec("resnet20_cifar10")).read_bytes()
    (tmp_path / "cut.th").write_bytes(data[:5000])
    (tmp_path / "foreign.pt").write_bytes(b"PK\x03\x04 nothing here")
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts" / "a").mkdir(parents=True)
    (tmp_path / "texts" / "a" / "readme.txt").write_text("hi")
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.jpg").write_text("not a jpeg")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["export", "resnet999", "-o", "{out}"], "unknown model 'resnet999'"),
    (["export", "resnet20_cifar10", "--weights", "{tmp}/missing.pt", "-o", "{out}"], "does not exist"),
    (["export", "resnet20_cifar10", "--weights", "{tmp}/cut.th", "-o", "{out}"], "not a readable PyTorch checkpoint"),
    (["export", "resnet20_cifar10", "--weights", "{tmp}/foreign.pt", "-o", "{out}"], "not a readable PyTorch checkpoint"),
    (["export", "resnet20_cifar10", "--weights", str(bundled_weights_path(get_spec("resnet56_cifar10"))), "-o", "{out}"],
     "another architecture"),
    (["export", "resnet20_cifar10", "-o", "{tmp}/nodir/m.onnx"], "does not exist"),
    (["optimize", "{tmp}/notes.onnx", "-o", "{out}"], "not a valid ONNX model"),
    (["quantize", "{tmp}/missing.onnx", "-o", "{out}"], "does not exist"),
    (["quantize", "{tmp}/empty", "-o", "{out}"], "is not a file"),
    (["bench", "{tmp}/notes.onnx", "--json", "{out}"], "not a valid ONNX model"),
    (["bench", "{model}", "--backend", "tensorflow", "--json", "{out}"], "unknown backend 'tensorflow'"),
    (["bench", "{model}", "--batch-size", "0", "--json", "{out}"], "expected a positive integer, got 0"),
    (["bench", "{model}", "--batch-size", "1,x", "--json", "{out}"], "expected a positive integer"),
    (["bench", "{model}", "--device", "cuda", "--json", "{out}"], "no 'cuda' execution provider"),
    (["bench", "resnet20_cifar10", "--backend", "torch", "--device", "cuda", "--json", "{out}"],
     "CUDA was asked for but this PyTorch sees no CUDA device"),
    (["bench", "{model}", "--backend", "openvino", "--precision", "int8", "--json", "{out}"], "is not quantized"),
    (["bench", "{model}", "--backend", "onnxruntime", "--precision", "bf16", "--json", "{out}"],
     "onnxruntime does not run precision 'bf16'"),
    (["bench", "{model}", "--backend", "torch", "--json", "{out}"], "runs built-in model names"),
    (["bench", "{model}", "--ort-provider", "tensorrt", "--device", "cuda", "--json", "{out}"],
     "no 'tensorrt' execution provider"),
    (["bench", "resnet20_cifar10", "--backend", "torch", "--precision", "fp16", "--json", "{out}"],
     "fp16 runs on CUDA only"),
    (["quantize", "{model}", "-o", "{tmp}/x.onnx", "--backend", "openvino"], "must end in .xml"),
    (["eval", "{model}", "--data", "{tmp}/empty", "--json", "{out}"], "no class sub-folders"),
    (["eval", "{model}", "--data", "{tmp}/texts", "--json", "{out}"], "holds no images"),
    (["eval", "{model}", "--data", "{tmp}/broken", "--json", "{out}"], "cannot decode image"),
    (["eval", "{model}", "--data", "{tmp}/nowhere", "--json", "{out}"], "neither a bundled set"),
    (["eval", "{model}", "--batch-size", "0", "--json", "{out}"], "expected a positive integer"),
    (["quantize", "{model}", "-o", "{out}", "--calib-data", "{tmp}/empty"], "holds no images"),
    (["run", "--model", "nope", "--output", "{tmp}/reports"], "unknown model 'nope'"),
    (["run", "--output", "{tmp}/notes.onnx"], "is a file, not a folder"),
    (["run", "--device", "cuda", "--output", "{tmp}/reports"], "can use a CUDA device here"),
    (["run", "--device", "cpu,tpu", "--output", "{tmp}/reports"], "--device takes cpu, cuda, not tpu"),
    (["export", "resnet20_cifar10", "-o", "{tmp}/empty", "--force"], "is a folder: give a file name"),
    (["export", "resnet20_cifar10", "--weights", "{tmp}/notes.onnx", "-o", "{out}"], "not a PyTorch checkpoint"),
])
def test_bad_input_is_one_line_and_leaves_no_output(cli, junk, fp32_onnx, argv, message):
    out = junk / "out.file"
    argv = [a.format(tmp=junk, out=out, model=fp32_onnx) for a in argv]
    r = cli(*argv)
    _one_line_error(r)
    assert message in r.err, r.err
    assert not out.exists()
    assert not [p for p in junk.iterdir() if p.name.startswith(".")], "temporary file left behind"
    assert not (junk / "reports").exists() or not any((junk / "reports").iterdir())


def test_existing_output_is_not_overwritten_without_force(cli, tmp_path, fp32_onnx):
    target = tmp_path / "mine.onnx"
    target.write_text("precious")
    r = cli("quantize", fp32_onnx, "-o", target)
    _one_line_error(r)
    assert "already exists" in r.err and target.read_text() == "precious"
    r = cli("optimize", fp32_onnx, "-o", fp32_onnx, "--force")
    _one_line_error(r)
    assert "same file as the input" in r.err


def test_unreadable_file(cli, tmp_path, fp32_onnx):
    """Root reads files whatever their mode, so the unreadable inputs here are a FIFO and a folder named .onnx."""
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    (tmp_path / "dir.onnx").mkdir()
    for path in (fifo, tmp_path / "dir.onnx"):
        r = cli("bench", path)
        _one_line_error(r)
        assert "is not a file" in r.err
    if os.geteuid() != 0:
        locked = tmp_path / "locked.onnx"
        locked.write_bytes(fp32_onnx.read_bytes())
        locked.chmod(0)
        r = cli("bench", locked)
        _one_line_error(r)
        assert "not readable" in r.err


def test_outputs_get_the_usual_file_mode(tmp_path):
    import stat

    from rnopt.fileio import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "y.md", "hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "y.md").stat().st_mode) == 0o644
