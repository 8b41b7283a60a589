"""The backend interface: load a model on a runtime, then run prepared batches on it.

A backend turns a model (an ONNX or OpenVINO IR file, or a built-in PyTorch model) into a `Session`
for a device, precision and thread count. `Session.prepare` converts a NumPy batch into whatever the
runtime consumes, once, outside any timed region; `Session.run` is the call that gets timed.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from rnopt.errors import RnoptError
from rnopt.models.registry import LoadedModel, Preprocessing

if TYPE_CHECKING:  # only a type here: importing it would pull in onnx, which the torch backend does not need
    from rnopt.onnx_model import ModelMeta


@dataclass
class ModelFile:
    """An ONNX (.onnx) or OpenVINO IR (.xml) file and its rnopt metadata."""

    path: Path
    meta: ModelMeta

    @property
    def format(self) -> str:
        return "openvino-ir" if self.path.suffix == ".xml" else "onnx"

    @property
    def input_size(self) -> int:
        return self.meta.input_size

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def class_names(self) -> list[str]:
        return self.meta.class_names

    @property
    def size_bytes(self) -> int:
        weights = self.path.with_suffix(".bin") if self.format == "openvino-ir" else None
        return self.path.stat().st_size + (weights.stat().st_size if weights and weights.exists() else 0)


@dataclass
class TorchModel:
    """A built-in model with its weights, in PyTorch."""

    loaded: LoadedModel
    onnx_file: "ModelFile | None" = None  # its ONNX export, once an ONNX-based backend asked for one

    @property
    def input_size(self) -> int:
        return self.loaded.spec.preprocessing.crop

    @property
    def preprocessing(self) -> Preprocessing:
        return self.loaded.spec.preprocessing

    @property
    def class_names(self) -> list[str]:
        return self.loaded.class_names

    @property
    def size_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.loaded.module.parameters())


ModelInput = ModelFile | TorchModel


@dataclass
class BackendOptions:
    device: str = "cpu"
    threads: int | None = None  # None: the runtime's default for this machine
    precision: str | None = None  # None: what the model file holds (fp32 for PyTorch)
    performance_hint: str = "latency"  # OpenVINO: latency or throughput
    ort_opt_level: str = "all"  # ONNX Runtime graph optimization at load time
    ort_provider: str | None = None  # ONNX Runtime execution provider; None: by device
    # ONNX Runtime's idle worker threads spin for a while after each call: that saves wake-up time
    # (ResNet-20 batch 1: 0.46 ms with, 0.83 ms without, on 2 cores). The bench harness pauses between
    # variants so the spinning does not reach the next one.
    ort_spinning: bool = True
    ort_inter_op: int | None = None  # ONNX Runtime: threads for independent branches (parallel execution)
    channels_last: bool = False  # PyTorch memory format
    compile: bool = False  # PyTorch: torch.compile (inductor)
    cuda_graphs: bool = False  # PyTorch on CUDA: replay a captured graph instead of launching kernels


class Session(ABC):
    backend: str
    device: str
    precision: str  # the precision that actually runs, as far as the runtime reports it
    threads: int
    load_time_s: float = 0.0
    streams: int = 1  # batches in flight per `run` (OpenVINO throughput mode runs several at once)

    @abstractmethod
    def prepare(self, batch: np.ndarray) -> Any:
        """Convert a float32 NCHW batch into the runtime's input form (done once, untimed)."""

    @abstractmethod
    def run(self, prepared: Any) -> Any:
        """One inference on a prepared input, finished when it returns (device synchronised)."""

    @abstractmethod
    def to_numpy(self, output: Any) -> np.ndarray:
        """The logits of a `run` output as float32 NumPy."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.to_numpy(self.run(self.prepare(batch)))

    def timed_run(self, prepared: Any) -> float:
        """Seconds one `run` takes; a device backend may time with its own clock (CUDA events)."""
        start = time.perf_counter()
        self.run(prepared)
        return time.perf_counter() - start

    def describe(self) -> str:
        """Extra settings worth showing next to the backend name (provider, hint, memory format...)."""
        return ""

    def peak_device_memory_mb(self) -> float | None:
        """Peak accelerator memory this process has allocated so far; None on a CPU."""
        return None


class Backend(ABC):
    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """The devices this backend can use on this machine (empty: not usable)."""

    @abstractmethod
    def load(self, model: ModelInput, options: BackendOptions) -> Session:
        """Load `model` for `options`, raising RnoptError when it cannot run as asked."""

    @classmethod
    def notes(cls) -> str:
        """One line for `rnopt backends`: what this runtime offers here beyond its devices and precisions."""
        return ""

    def check_device(self, device: str) -> None:
        if device not in self.devices():
            raise RnoptError(f"{self.name} cannot use device {device!r} here: available "
                             f"{', '.join(self.devices()) or 'none'}")

    def check_precision(self, precision: str | None) -> None:
        if precision is not None and precision not in self.precisions:
            raise RnoptError(f"{self.name} does not run precision {precision!r}: choose one of "
                             f"{', '.join(self.precisions)}")


def open_model(arg: str, weights: str | None = None, num_classes: int | None = None,
               labels: str | None = None) -> ModelInput:
    """A command-line model argument: an ONNX/IR file, or a built-in model name (with optional weights)."""
    from rnopt.models.registry import MODELS, create_model
    from rnopt.onnx_model import load_onnx, read_ir_meta, read_meta

    path = Path(arg)
    if arg in MODELS:
        return TorchModel(create_model(arg, weights, num_classes, labels))
    if path.suffix in (".onnx", ".xml") or path.exists():
        if weights:
            raise RnoptError(f"--weights applies to built-in model names, not to the model file {arg}")
        if path.suffix == ".xml":
            return ModelFile(path, read_ir_meta(path))
        return ModelFile(path, read_meta(load_onnx(path, load_weights=False), path))
    raise RnoptError(f"{arg!r} is neither a model file (.onnx, .xml) nor a built-in model name "
                     f"(`rnopt models` lists them)")
