"""Memory per variant and batch size, each measured in a fresh process of its own.

Variants benchmarked side by side share one process, so its peak resident memory says little about any
one of them. Here a variant is rebuilt in a new Python process for one batch size: the runtime is
imported, the resident memory is noted and the peak reset, then the model is loaded and run, and the
peak is read. What the variant adds over the bare runtime is what it costs to deploy: weights, the
runtime's copies and arenas, and the activations of the batch. One process per batch size, because
some runtimes keep one compiled model per input shape (OpenVINO here): in a shared process a larger
batch would be charged for the smaller one's as well. (PyTorch on CUDA or channels_last also holds the
NCHW CPU copy rnopt loaded first: rnopt never changes a caller's model.)

Memory does not depend on timing, so several of these processes run at once, one per core.

    python -m rnopt.memory '{"probe": {...}, "batch_size": 8}'    # the child side; prints one JSON line
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rnopt.backends.base import BackendOptions, ModelInput, TorchModel
from rnopt.errors import RnoptError

PROBE_TIMEOUT_S = 600
# The child imports rnopt from where this process did, installed or a checkout (the GPU check runs uninstalled).
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); from rnopt.memory import main; sys.exit(main(sys.argv[2:]))"
_IMPORT_ROOT = str(Path(__file__).resolve().parents[1])
RUNS_PER_BATCH = 3  # the first run allocates most; a few more catch arenas that grow late


@dataclass
class MemoryProbe:
    """How a fresh process rebuilds one variant: a model file, or a built-in name and its weights."""

    model: str  # a .onnx / .xml path, or a built-in model name
    backend: str
    options: BackendOptions = field(default_factory=BackendOptions)
    weights: str | None = None
    num_classes: int | None = None


@dataclass
class MemoryUse:
    batch_size: int
    peak_rss_mb: float  # the fresh process's peak, runtime included
    added_mb: float  # that peak over the process's memory before the model was loaded
    gpu_mb: float | None = None  # peak GPU memory allocated, where the runtime reports it (PyTorch on CUDA)


def probe_for(model: ModelInput, backend: str, options: BackendOptions) -> MemoryProbe:
    """The probe for a model as a backend ran it: ONNX backends get the exported file they were given."""
    if isinstance(model, TorchModel):
        if backend != "torch" and model.onnx_file is not None:
            return MemoryProbe(str(model.onnx_file.path), backend, options)
        loaded = model.loaded
        weights = loaded.weights_source if loaded.weights_source not in ("bundled", "random") else None
        return MemoryProbe(loaded.name, backend, options, weights, len(loaded.class_names))
    return MemoryProbe(str(model.path), backend, options)


def measure(probe: MemoryProbe, batch_size: int) -> MemoryUse:
    """Run `probe` at `batch_size` in a fresh process; a one-line RnoptError when that fails."""
    what = f"memory of {probe.model} on {probe.backend} at batch {batch_size}"
    payload = json.dumps({"probe": asdict(probe), "batch_size": batch_size})
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, _IMPORT_ROOT, payload], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RnoptError(f"measuring {what} took over {PROBE_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RnoptError(f"measuring {what} failed: {last[:200]}")
    return MemoryUse(**json.loads(proc.stdout.strip().splitlines()[-1]))


def measure_all(requests: dict[Hashable, tuple[MemoryProbe, int]], workers: int | None = None,
                on_done: Callable[[str], None] | None = None) -> dict[Hashable, MemoryUse | RnoptError]:
    """`measure` every (probe, batch size), a few processes at a time; each key maps to a use or an error."""

    def one(key: Hashable) -> MemoryUse | RnoptError:
        probe, batch = requests[key]
        try:
            return measure(probe, batch)
        except RnoptError as exc:
            return exc
        finally:
            if on_done:
                on_done(f"memory of {Path(probe.model).name} on {probe.backend}, batch {batch}")

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return dict(zip(requests, pool.map(one, requests)))


def supported() -> bool:
    """Peak memory that can be reset and read back is a Linux feature (/proc/self/clear_refs, VmHWM)."""
    return Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()


def _status_mb(key: str) -> float:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RnoptError(f"/proc/self/status has no {key}: per-variant memory needs Linux")
    return int(match.group(1)) / 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts from the current RSS


def _probe(probe: MemoryProbe, batch_size: int) -> MemoryUse:
    from rnopt.backends import get_backend, open_model

    backend = get_backend(probe.backend)  # imports the runtime: part of the baseline, not of the model
    _reset_peak()
    baseline = _status_mb("VmRSS")
    model = open_model(probe.model, probe.weights, probe.num_classes)
    session = backend.load(model, probe.options)
    prepared = session.prepare(np.zeros((batch_size, 3, model.input_size, model.input_size), dtype=np.float32))
    for _ in range(RUNS_PER_BATCH):
        session.run(prepared)
    peak, gpu = _status_mb("VmHWM"), session.peak_device_memory_mb()
    return MemoryUse(batch_size, round(peak, 1), round(peak - baseline, 1), gpu and round(gpu, 1))


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    spec = request["probe"]
    probe = MemoryProbe(**{**spec, "options": BackendOptions(**spec["options"])})
    try:
        use = _probe(probe, request["batch_size"])
    except (RnoptError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(asdict(use)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
