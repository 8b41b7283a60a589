"""The Python API: every public name stays what it is, whatever was imported before, in one process."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

VERBS = ("artifact", "bench", "embed", "evaluate", "export", "optimize", "plan", "quantize", "run",
         "sensitivity", "tune")

# Calls every verb twice, touching the lazily imported names and importing every submodule in between: a
# submodule named like a verb (rnopt/evaluate.py once) replaced the function on first import.
SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys, tempfile
    from pathlib import Path
    import rnopt

    order = sys.argv[1]
    out = Path(tempfile.mkdtemp())
    def touch_lazy():
        rnopt.AccuracyControl, rnopt.RunOptions, rnopt.TuneOptions
    def import_all():
        for info in pkgutil.walk_packages(rnopt.__path__, "rnopt."):
            if info.name.endswith("__main__") or (".backends." in info.name and not info.name.endswith("config")):
                continue  # a runtime that is not installed need not import
            importlib.import_module(info.name)
    def calls(n):
        rnopt.export("resnet20_cifar10", out / f"m{n}.onnx")
        spec = rnopt.plan([rnopt.artifact(str(out / f"m{n}.onnx"))], ["onnxruntime"])
        rnopt.optimize(out / f"m{n}.onnx", out / f"f{n}.onnx")
        rnopt.quantize(out / f"m{n}.onnx", out / f"q{n}.onnx", rnopt.QuantizeConfig(calib_size=20))
        rnopt.evaluate(spec, rnopt.EvalConfig(limit=20))
        rnopt.bench(spec, rnopt.BenchConfig(batch_sizes=[1], warmup=1, iterations=3, min_time=0, memory=False))
        for verb in %r:
            assert callable(getattr(rnopt, verb)), (verb, getattr(rnopt, verb))
    steps = {"lazy": touch_lazy, "modules": import_all}
    for n, step in enumerate(order.split(",")):
        if step == "call":
            calls(n)
        else:
            steps[step]()
    print("ok")
""" % (VERBS,))


@pytest.mark.parametrize("order", ["call,modules,lazy,call"])
def test_every_verb_stays_callable_after_any_import(order, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, order], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_every_public_name_is_importable_and_listed():
    import rnopt

    for name in rnopt.__all__:
        assert getattr(rnopt, name) is not None
    assert set(VERBS) <= set(rnopt.__all__)
    assert {"RunOptions", "TuneOptions", "AccuracyControl"} <= set(rnopt.__all__)


def test_progress_reaches_an_api_callback_and_the_module_draws_nothing(tmp_path):
    import rnopt
    from rnopt.progress import Update

    heard: list[Update] = []
    options = rnopt.RunOptions(backends=["onnxruntime"], eval_limit=50, output=tmp_path,
                               bench=rnopt.BenchConfig([1], warmup=1, iterations=5, min_time=0, memory=False))
    record = rnopt.run(options, on_progress=heard.append)
    # how long each step took, in the record and the report
    assert set(record.step_times_s) == {"model files: export, fusion, int8", "loading the variants", "timing",
                                        "accuracy"} and all(t >= 0 for t in record.step_times_s.values())
    report = (Path(record.folder) / "report.md").read_text()
    assert "## Time per step" in report and "- timing: " in report
    started = {u.key: u.description for u in heard if not u.finished}
    ended = {u.key for u in heard if u.finished}
    assert {"exporting and checking", "benchmarking", "evaluating on cifar10"} <= set(started.values())
    assert set(started) == ended  # every step that started ended
    evaluating = [u for u in heard if u.description == "evaluating on cifar10" and not u.finished]
    assert evaluating[-1].done == evaluating[-1].total == 50  # every image counted once
    # without a listener nothing is heard, and the progress module pulls in no renderer
    code = "import sys, rnopt.progress as p\nwith p.task('x', 2) as advance: advance()\nprint('rich' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_cli_draws_progress_bars_on_a_terminal_only(fp32_onnx):
    import os
    import pty

    argv = [sys.executable, "-m", "rnopt", "bench", str(fp32_onnx), "--batch-size", "1", "--iterations", "5",
            "--warmup", "1", "--min-time", "0", "--no-memory"]
    leader, follower = pty.openpty()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=follower, timeout=300)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: all read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert proc.returncode == 0 and b"benchmarking" in drawn
    piped = subprocess.run(argv, capture_output=True, timeout=300)
    assert piped.returncode == 0 and b"benchmarking" not in piped.stderr


def test_making_or_loading_a_record_probes_nothing_and_the_verbs_capture_the_machine(monkeypatch, fp32_onnx):
    import rnopt
    import rnopt.results
    from rnopt.environment import snapshot

    def probe():
        raise AssertionError("the machine was probed")

    with monkeypatch.context() as patched:
        patched.setattr(rnopt.results, "snapshot", probe)
        record = rnopt.Record("bench")
        assert record.environment.cpu_model == "not recorded"
        assert rnopt.Record.from_dict(record.to_dict()).environment == record.environment
    timing = rnopt.bench(rnopt.plan([rnopt.artifact(str(fp32_onnx))]),
                         rnopt.BenchConfig([1], warmup=1, iterations=3, min_time=0, memory=False))
    assert timing.environment == snapshot() and timing.environment.cpu_model != "not recorded"


def test_the_librarys_notices_come_back_in_the_record(tmp_path, fp32_onnx):
    import onnx

    import rnopt
    from rnopt import notices

    model = onnx.load(str(fp32_onnx))
    meta = next(p for p in model.metadata_props if p.value.startswith("{"))
    import json

    meta.value = json.dumps({**json.loads(meta.value), "future_key": 1})
    onnx.save(model, str(tmp_path / "newer.onnx"))
    spec = rnopt.plan([rnopt.artifact(str(tmp_path / "newer.onnx"))])
    notices.drain()  # what reading it for the spec said waits for the CLI; the verb's own go into its record
    timing = rnopt.bench(spec, rnopt.BenchConfig([1], warmup=1, iterations=3, min_time=0, memory=False))
    assert any("ignored unknown metadata key(s) future_key" in w for w in timing.warnings)
    assert notices.drain() == []
