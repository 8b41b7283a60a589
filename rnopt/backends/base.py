"""The backend interface: load a model on a runtime, then run prepared batches on it.

A backend turns a model (an ONNX or OpenVINO IR file, or a built-in PyTorch model) into a `Session`
for one variant spec (device, precision, threads and the runtime's own typed config). Backends only
load: exporting a built-in model to ONNX happens before, in `rnopt.artifacts`. `Session.prepare`
converts a NumPy batch into whatever the runtime consumes, once, outside any timed region;
`Session.run` is the call that gets timed.
"""
from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from rnopt.errors import RnoptError
from rnopt.options import flag_fields
from rnopt.preprocessing import Preprocessing

if TYPE_CHECKING:  # types only: importing them would pull in onnx or torch, which some runtimes do not need
    from rnopt.models.registry import LoadedModel
    from rnopt.onnx_model import ModelMeta


@dataclass(frozen=True)
class DeployCode:
    """How a runtime's own API loads a model as a variant was measured: what `deploy.py` (written by `rnopt tune`,
    run without rnopt) imports and the body of its `load()`, which returns `infer(batch) -> outputs`."""

    package: str  # what `pip install` needs beside numpy and Pillow
    imports: str
    load: list[str]  # lines of `load()`'s body; MODEL and CROP are defined by the script
    settings: str  # the same settings in words, for deploy.md


@dataclass(frozen=True)
class RuntimeConfig:
    """A runtime's own options, typed; each runtime subclasses it beside its backend and validates itself.

    Frozen and made of plain values, so it hashes into a spec id and round-trips through JSON.
    """

    # Whether precision None means "the model's own" (fp32, or int8 for a quantized file) on this runtime, so that
    # naming that precision is the same variant; OpenVINO's None is its default hint instead (bf16 on some CPUs).
    runs_model_precision: ClassVar[bool] = True
    # What the planner reads: nothing outside a runtime's own modules names a runtime to decide what it runs.
    title: ClassVar[str] = ""  # for people, in labels ("PyTorch"); "": the registry name
    loads: ClassVar[tuple[str, ...]] = ("onnx",)  # the artifact formats it runs (rnopt.spec.ARTIFACT_FORMATS)
    # The variants `rnopt run` and `rnopt tune` time on a CUDA device (a name -> options), on the float model;
    # none: the runtime does not run on NVIDIA GPUs, for the reason `not_on_cuda` gives.
    cuda_variants: ClassVar[dict[str, dict[str, Any]]] = {}
    not_on_cuda: ClassVar[str] = "it does not run on NVIDIA GPUs"

    @classmethod
    def for_objective(cls, objective: str) -> dict[str, Any]:
        """The options that suit a search objective (latency or throughput); {}: the defaults do."""
        return {}

    @classmethod
    def knobs(cls, objective: str, cores: int) -> list[dict[str, Any]]:
        """Other settings worth timing against the objective's (`tune`'s last stage, on the chosen variant): each
        a dict of options; []: none matters. Pruned by what the runtime does, not crossed blindly."""
        return []

    @classmethod
    def flags(cls) -> list[dataclasses.Field]:
        """Its fields that are command-line flags (declared with `rnopt.options.option`)."""
        return flag_fields(cls)

    def deploy_code(self, device: str, precision: str | None, threads: int | None) -> DeployCode | None:
        """The runtime's own code for this variant (None: it cannot run outside rnopt, e.g. a model in PyTorch)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """The options that differ from the defaults: what a spec id hashes."""
        default = type(self)()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(default, f.name)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RuntimeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RnoptError(f"unknown option(s) {', '.join(unknown)} for this runtime: it takes "
                             f"{', '.join(sorted(known)) or 'none'}")
        return cls(**data)

    def describe(self) -> str:
        """The options that differ from the defaults, e.g. "opt_level=basic,spinning=off"."""
        default = type(self)()
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                parts.append(f.name if value is True else f"{f.name}={'off' if value is False else value}")
        return ",".join(parts)


class RunSettings(Protocol):
    """What a backend reads from a `rnopt.spec.VariantSpec` to load a model (the spec satisfies it)."""

    device: str
    precision: str | None
    threads: int | None
    config: RuntimeConfig | None


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
    def head(self) -> str:
        return self.meta.head

    @property
    def size_bytes(self) -> int:
        weights = self.path.with_suffix(".bin") if self.format == "openvino-ir" else None
        return self.path.stat().st_size + (weights.stat().st_size if weights and weights.exists() else 0)


@dataclass
class TorchModel:
    """A built-in model with its weights, in PyTorch."""

    loaded: LoadedModel
    format: ClassVar[str] = "torch"

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
    def head(self) -> str:
        return self.loaded.head

    @property
    def size_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.loaded.module.parameters())


ModelInput = ModelFile | TorchModel


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

    def begin(self, prepared: Any) -> None:
        """Before a timed block: a session that keeps several batches in flight (OpenVINO's throughput mode) starts
        them all here, so that each `run` in the block waits for each and starts it again at once, as a deployed
        queue does (benchmark_app's async mode): the block times the steady state, with no core idle between
        calls. Others run one call at a time and need nothing."""

    def end(self, prepared: Any) -> None:
        """After a timed block: wait for what `begin` left in flight, so the next block starts on quiet cores."""

    def timed_run(self, prepared: Any) -> float:
        """Seconds one `run` takes; a device backend may time with its own clock (CUDA events)."""
        start = time.perf_counter()
        self.run(prepared)
        return time.perf_counter() - start

    def describe(self) -> str:
        """Extra settings worth showing next to the backend name (provider, hint, memory format...)."""
        return ""

    def release(self) -> None:
        """Free what was kept for the input shapes run so far (a batch sweep moves on to larger ones)."""

    def peak_device_memory_mb(self) -> float | None:
        """Peak accelerator memory this process has allocated so far; None on a CPU."""
        return None

    def graph_digest(self) -> str | None:
        """A digest of the computation this session runs, where the runtime can show it: two sessions with the same
        digest and settings give the same outputs bit for bit, whatever their files' bytes. None: only the file's
        bytes identify it."""
        return None


class Backend(ABC):
    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    formats: ClassVar[tuple[str, ...]]  # the model formats it loads: onnx, openvino-ir, torch

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """The devices this backend can use on this machine (empty: not usable)."""

    @abstractmethod
    def load(self, model: ModelInput, spec: RunSettings) -> Session:
        """Load `model` as `spec` says, raising RnoptError when it cannot run as asked."""

    @classmethod
    def notes(cls) -> str:
        """One line for `rnopt backends`: what this runtime offers here beyond its devices and precisions."""
        return ""

    def check_format(self, model: ModelInput) -> None:
        if model.format not in self.formats:
            what = model.path.name if isinstance(model, ModelFile) else "a PyTorch model"
            raise RnoptError(f"{self.name} does not load {what} ({model.format}): it loads "
                             f"{', '.join(self.formats)}")

    def check_device(self, device: str) -> None:
        if device not in self.devices():
            raise RnoptError(f"{self.name} cannot use device {device!r} here: available "
                             f"{', '.join(self.devices()) or 'none'}")

    def check_precision(self, precision: str | None) -> None:
        if precision is not None and precision not in self.precisions:
            raise RnoptError(f"{self.name} does not run precision {precision!r}: choose one of "
                             f"{', '.join(self.precisions)}")
