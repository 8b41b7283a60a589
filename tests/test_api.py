"""The Python API: every public name stays what it is, whatever was imported before, in one process."""
import subprocess
import sys
import textwrap

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
        rnopt.quantize(out / f"m{n}.onnx", out / f"q{n}.onnx", calib_size=20, time_reverts=False)
        rnopt.evaluate(spec, limit=20)
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
