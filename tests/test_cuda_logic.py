"""The CUDA paths' CPU-side logic: device selection, dtype handling, clear errors when CUDA is absent.

The paths themselves run on a real GPU through benchmarks/gpu_check.sh.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import bench_rows, settings
from rnopt.artifacts import open_model_file
from rnopt.backends import TorchModel, get_backend
from rnopt.backends.onnxruntime.session import available_providers
from rnopt.environment import snapshot
from rnopt.errors import RnoptError

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
REHEARSAL = ["--device", "cpu", "--model", "resnet20_cifar10", "--batch-sizes", "1", "--warmup", "1",
             "--iterations", "3", "--min-time", "0.02"]

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="these check the behaviour without CUDA")


def test_torch_lists_only_cpu_and_refuses_cuda(resnet20):
    assert get_backend("torch").devices() == ["cpu"]
    with pytest.raises(RnoptError, match="CUDA was asked for but this PyTorch sees no CUDA device"):
        get_backend("torch").load(TorchModel(resnet20), settings("torch", device="cuda", precision="fp16"))


def test_cuda_only_options_say_so(resnet20):
    with pytest.raises(RnoptError, match="CUDA graphs need --device cuda"):
        get_backend("torch").load(TorchModel(resnet20), settings("torch", cuda_graphs=True))
    for precision in ("fp16", "tf32"):
        with pytest.raises(RnoptError, match=f"{precision} runs on CUDA only"):
            get_backend("torch").load(TorchModel(resnet20), settings("torch", precision=precision))
    with pytest.raises(RnoptError, match="does not run precision 'int8'"):
        get_backend("torch").load(TorchModel(resnet20), settings("torch", precision="int8"))


def test_ort_gpu_providers_are_refused_with_the_list_present(fp32_onnx):
    model = open_model_file(fp32_onnx)
    for provider in ("cuda", "tensorrt"):
        if provider in available_providers():
            continue
        with pytest.raises(RnoptError, match=f"no '{provider}' execution provider: it has cpu"):
            get_backend("onnxruntime").load(model, settings("onnxruntime", device="cuda", provider=provider))
    with pytest.raises(RnoptError, match="does not run on device 'cpu'"):
        get_backend("onnxruntime").load(model, settings("onnxruntime", device="cpu", provider="tensorrt"))


def test_environment_has_no_gpu_here():
    assert snapshot().gpu is None


def test_gpu_check_runs_where_only_pytorch_is(tmp_path, run_without):
    """The GPU script, rehearsed on this CPU with OpenVINO and the ONNX stack hidden, as on a bare GPU machine."""
    out = tmp_path / "gpu.json"
    proc = run_without(["openvino", "nncf", "onnx", "onnxruntime", "onnxscript"], str(GPU_CHECK), *REHEARSAL,
                       "--json", out)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "onnxruntime: skipped (onnxruntime is not installed)" in proc.stdout
    assert "### PyTorch" in proc.stdout and "### Numerics against CPU fp32" in proc.stdout
    results = bench_rows(json.loads(out.read_text()))
    assert [r["precision"] for r in results] == ["fp32", "fp32"] + (["bf16", "bf16"] if snapshot().has_bf16 else [])
    assert all(r["memory_mb"] > 0 for r in results)  # each measured in a process of its own


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_check_fails_when_numerics_are_off(capsys, monkeypatch, gpu_check):
    monkeypatch.setitem(gpu_check.TOLERANCE, "fp32", 0.0)  # channels_last changes the summation order
    assert gpu_check.main(REHEARSAL + ["--no-memory"]) == 1
    out = capsys.readouterr().out
    assert "NUMERIC CHECK FAILED: torch fp32 channels_last" in out
    assert gpu_check.main(["--model", "resnet20_cifar10"]) == 2  # asks for CUDA, which is absent here


def test_gpu_check_reports_a_path_that_raises_and_runs_the_others(capsys, monkeypatch, gpu_check):
    from rnopt.backends.torch.backend import TorchBackend

    real_load, real_bench = TorchBackend.load, gpu_check.bench_variants

    def load(self, model, spec):
        if spec.precision == "bf16":
            raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED")  # as a new GPU path might
        return real_load(self, model, spec)

    def bench(variants, config):
        if any(v.spec.config.channels_last for v in variants):
            raise RuntimeError("capture failed")  # breaks the interleaved group and, alone, its own variant
        return real_bench(variants, config)

    monkeypatch.setattr(TorchBackend, "load", load)
    monkeypatch.setattr(gpu_check, "bench_variants", bench)
    assert gpu_check.main(REHEARSAL + ["--no-memory"]) == 1
    out = capsys.readouterr().out
    assert "FAILED torch bf16 channels_last: RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED" in out
    assert "FAILED PyTorch, timed together: RuntimeError: capture failed" in out
    assert "FAILED torch fp32 channels_last, timed alone: RuntimeError: capture failed" in out
    assert "| torch fp32 eager | torch (eager) | cpu | fp32 | 1 |" in out  # the rest was still timed


def test_gpu_cli_check_rehearses_every_step(tmp_path):
    """The user-facing GPU script: the steps that can run on a CPU succeed, the CUDA-only ones stop in one line."""
    script = GPU_CHECK.parent / "gpu_cli_check.sh"
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "LIMIT": "20"}
    done = subprocess.run(["bash", str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    exits = re.findall(r"^\(exit (\d+)\)$", done.stdout, flags=re.M)
    assert exits == ["0", "0", "1", "1", "1"], done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "CUDA graphs need --device cuda" in done.stderr
    assert "PyTorch fp16 runs on CUDA only" in done.stderr
    assert json.loads((tmp_path / "eval_resnet20.json").read_text())["kind"] == "eval"


def test_run_stays_on_the_cpu_without_cuda():
    from rnopt.pipeline import run_devices

    assert run_devices(None, ["torch", "onnxruntime", "openvino"]) == (["cpu"], [])
    assert run_devices(["cpu"], ["torch"]) == (["cpu"], [])


def test_run_evaluates_the_float_reference_first_and_skips_other_pytorch_fp32(fp32_onnx, int8_onnx):
    """A reduced-precision PyTorch variant (fp16 on CUDA in `rnopt run`; bf16 here) is evaluated, PyTorch fp32 is not."""
    from rnopt.artifacts import artifact_for
    from rnopt.plan import eval_order
    from rnopt.spec import VariantSpec

    name, fp32, int8 = (artifact_for(str(a)) for a in ("resnet20_cifar10", fp32_onnx, int8_onnx))
    specs = [VariantSpec(name, "torch", label="torch fp32"), VariantSpec(fp32, "onnxruntime", label="ort fp32"),
             VariantSpec(int8, "onnxruntime", label="ort int8"),
             VariantSpec(name, "torch", precision="bf16", label="torch bf16")]
    assert [s.label for s in eval_order(specs)] == ["ort fp32", "ort int8", "torch bf16"]
    assert [s.label for s in eval_order([specs[0], specs[3]])] == ["torch fp32", "torch bf16"]


def test_run_adds_cuda_where_pytorch_sees_a_gpu(monkeypatch):
    """Only device discovery is stood in for here; the CUDA variants themselves ran on an H100 (benchmarks/README.md)."""
    from rnopt.backends.torch.backend import TorchBackend
    from rnopt.pipeline import run_devices

    monkeypatch.setattr(TorchBackend, "devices", classmethod(lambda cls: ["cpu", "cuda"]))
    everything = ["torch", "onnxruntime", "openvino"]
    devices, warnings = run_devices(None, everything)
    assert devices == ["cpu", "cuda"]
    assert warnings == ["onnxruntime not run on cuda: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"]
    devices, warnings = run_devices(["cuda"], everything)
    assert devices == ["cuda"] and len(warnings) == 2 and "OpenVINO runs on CPUs" in warnings[1]
    with pytest.raises(RnoptError, match="none of onnxruntime, openvino can use a CUDA device"):
        run_devices(["cuda"], ["onnxruntime", "openvino"])


def test_the_prepared_gpu_run_rehearses_on_the_cpu(tmp_path):
    """benchmarks/gpu_all.sh: numerics, harness fidelity against a bare loop, and the offline sweep, each step
    run (small) on the CPU, outputs where the GPU run will put them."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_all.sh"
    proc = subprocess.run(["bash", str(script), str(tmp_path), "--rehearse"], capture_output=True, text=True,
                          timeout=400, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "worst ratio" in (tmp_path / "fidelity.log").read_text()
    check = (tmp_path / "check.log").read_text()
    if snapshot().has_bf16:  # the bf16 rows run where the CPU has native bf16, and say why not elsewhere
        assert "| torch bf16 channels_last,autocast | bf16 |" in check
    else:
        assert "torch bf16 channels_last,autocast: skipped: this CPU has no native bf16" in check
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    batches = [r["batch_size"] for r in sweep["bench"]]
    assert batches[:2] == [1, 2] and sweep["bench_config"]["sweep_limit"] == 64
    assert all(r["settings"].startswith("compile") for r in sweep["bench"])  # the fastest path is the one swept
    # bf16 where this CPU runs it natively, fp32 elsewhere (both kinds of CPU run this rehearsal)
    assert {r["precision"] for r in sweep["bench"]} == {"bf16" if snapshot().has_bf16 else "fp32"}
    assert len(list((tmp_path / "run").glob("*/report.json"))) == 1


def test_cuda_timing_queues_the_end_event_right_behind_the_work(monkeypatch, resnet20):
    """Only CUDA's events and synchronisation are stood in for (they need a GPU); the module runs for real.
    A synchronisation between the work and the end event would add the host's wake-up to every sample."""
    from rnopt.backends.torch.backend import TorchSession
    from rnopt.backends.torch.config import TorchConfig

    log, names = [], iter(["start", "end"])

    class Event:
        def __init__(self, enable_timing: bool) -> None:
            self.name = next(names)
            log.append(f"new {self.name}")

        def record(self) -> None:
            log.append(f"record {self.name}")

        def synchronize(self) -> None:
            log.append(f"wait {self.name}")

        def elapsed_time(self, other: "Event") -> float:
            return 1.5

    module = resnet20.module.eval()
    monkeypatch.setattr(module, "forward", lambda x, f=module.forward: log.append("forward") or f(x))
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: log.append("synchronize device"))
    session = TorchSession(module, "cuda", TorchConfig(), "fp32")
    assert session.timed_run(torch.zeros(1, 3, 32, 32)) == 1.5e-3
    assert log == ["new start", "new end", "record start", "forward", "record end", "wait end"]
    log.clear()
    session.run(torch.zeros(1, 3, 32, 32))  # run() itself still waits for the GPU
    assert log == ["forward", "synchronize device"]


@pytest.mark.parametrize("ov_ran, reference", [("bf16", "torch fp32"), ("fp32", "ov fp32"), ("fp16", "torch fp32")])
def test_the_reference_follows_the_precision_the_runtime_reported(fp32_onnx, int8_onnx, ov_ran, reference):
    """OpenVINO runs an fp32 file in bf16 on a CPU with native bf16 and in fp32 elsewhere: both cases on any CPU."""
    from rnopt.artifacts import artifact_for
    from rnopt.plan import eval_order
    from rnopt.spec import VariantSpec

    name, fp32, int8 = (artifact_for(str(a)) for a in ("resnet20_cifar10", fp32_onnx, int8_onnx))
    specs = [VariantSpec(name, "torch", label="torch fp32"), VariantSpec(fp32, "openvino", label="ov fp32"),
             VariantSpec(int8, "openvino", label="ov int8")]
    ran = {specs[0].id: "fp32", specs[1].id: ov_ran, specs[2].id: "int8"}
    order = [s.label for s in eval_order(specs, ran)]
    assert order[0] == reference
    assert order == (["ov fp32", "ov int8"] if ov_ran == "fp32" else ["torch fp32", "ov fp32", "ov int8"])
