"""Memory per variant and batch size, measured in a fresh process of its own.

Variants benchmarked side by side share one process, so its peak resident memory says little about any
one of them. Here a variant (a `VariantSpec`) is rebuilt in a new Python process for one batch size
(`rnopt.execute.worker`): the runtime is imported and its artifact made ready, the resident memory is
noted and the peak reset, then the model is loaded and run, and the peak is read. What the variant adds
over the bare runtime is what it costs to deploy: weights, the runtime's copies and arenas, and the
activations of the batch. One process per batch size, because some runtimes keep one compiled model per
input shape (OpenVINO here): in a shared process a larger batch would be charged for the smaller one's
as well. (PyTorch on CUDA or channels_last also holds the NCHW CPU copy rnopt loaded first: rnopt never
changes a caller's model.)
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnopt.errors import RnoptError
from rnopt.spec import VariantSpec

RUNS_PER_BATCH = 3  # the first run allocates most; a few more catch arenas that grow late


@dataclass
class MemoryUse:
    batch_size: int
    peak_rss_mb: float  # the fresh process's peak, runtime included
    added_mb: float  # that peak over the process's memory before the model was loaded
    gpu_mb: float | None = None  # peak GPU memory allocated, where the runtime reports it (PyTorch on CUDA)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MemoryUse":
        return cls(**data)


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


def measure_here(spec: VariantSpec, batch_size: int) -> MemoryUse:
    """Load and run `spec` in this (fresh) process and read what it added to the peak resident memory."""
    from rnopt.artifacts import ArtifactStore
    from rnopt.backends import get_backend

    backend = get_backend(spec.runtime)  # imports the runtime: part of the baseline, not of the model
    store = ArtifactStore()
    # A file (or an on-the-fly ONNX export) is made ready before the baseline: the export is not deployed.
    # A PyTorch model is built after it: its weights are what it loads.
    model = None if "torch" in backend.formats else store.model_for(spec.artifact, backend.formats)
    _reset_peak()
    baseline = _status_mb("VmRSS")
    model = model or store.model_for(spec.artifact, backend.formats)
    session = backend.load(model, spec)
    prepared = session.prepare(np.zeros((batch_size, 3, model.input_size, model.input_size), dtype=np.float32))
    for _ in range(RUNS_PER_BATCH):
        session.run(prepared)
    peak, gpu = _status_mb("VmHWM"), session.peak_device_memory_mb()
    return MemoryUse(batch_size, round(peak, 1), round(peak - baseline, 1), gpu and round(gpu, 1))
