"""The backend interface: load a model on a runtime, then run prepared batches on it.

A backend turns a model (an ONNX file, or a built-in PyTorch model) into a `Session` for a device,
precision and thread count. `Session.prepare` converts a NumPy batch into whatever the runtime
consumes, once, outside any timed region; `Session.run` is the call that gets timed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnopt.models.registry import LoadedModel
from rnopt.onnx_model import ModelMeta


@dataclass
class OnnxModel:
    """An ONNX file and its rnopt metadata."""

    path: Path
    meta: ModelMeta

    @property
    def label(self) -> str:
        return self.path.name


@dataclass
class TorchModel:
    """A built-in model with its weights, run through PyTorch."""

    loaded: LoadedModel

    @property
    def label(self) -> str:
        return self.loaded.name


ModelInput = OnnxModel | TorchModel


@dataclass
class BackendOptions:
    device: str = "cpu"
    threads: int | None = None  # None: the runtime's default for this machine
    precision: str | None = None  # None: what the model file holds


class Session(ABC):
    backend: str
    device: str
    precision: str  # the precision that actually runs, as far as the runtime reports it
    threads: int
    load_time_s: float = 0.0

    @abstractmethod
    def prepare(self, batch: np.ndarray) -> Any:
        """Convert a float32 NCHW batch into the runtime's input form (done once, untimed)."""

    @abstractmethod
    def run(self, prepared: Any) -> Any:
        """One inference on a prepared input; returns the runtime's raw output."""

    @abstractmethod
    def to_numpy(self, output: Any) -> np.ndarray:
        """The logits of a `run` output as float32 NumPy."""

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.to_numpy(self.run(self.prepare(batch)))


class Backend(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """The devices this backend can use on this machine (empty: not usable)."""

    @abstractmethod
    def load(self, model: ModelInput, options: BackendOptions) -> Session:
        """Load `model` for `options`, raising RnoptError when it cannot run as asked."""


def open_model(arg: str, weights: str | None = None, num_classes: int | None = None,
               labels: str | None = None) -> ModelInput:
    """A command-line model argument: an ONNX file, or a built-in model name (with optional weights)."""
    from rnopt.errors import RnoptError
    from rnopt.models.registry import MODELS, create_model
    from rnopt.onnx_model import load_onnx, read_meta

    path = Path(arg)
    if arg in MODELS:
        return TorchModel(create_model(arg, weights, num_classes, labels))
    if path.suffix == ".onnx" or path.exists():
        if weights:
            raise RnoptError(f"--weights applies to built-in model names, not to the ONNX file {arg}")
        return OnnxModel(path, read_meta(load_onnx(path, load_weights=False), path))
    raise RnoptError(f"{arg!r} is neither an ONNX file nor a built-in model name "
                     f"(`rnopt models` lists them)")
