"""A variant named completely by a spec: what to build (the artifact) and how to run it (runtime, device,
precision, threads, the runtime's own typed options).

A spec is frozen, made of plain values, and round-trips through JSON (`to_dict` / `from_dict`), so it can
travel to a fresh process or another machine and be rebuilt there. Its `id` is a hash of everything but
the label: results are keyed and joined by id. The label is for people; nothing parses it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnopt.backends import RuntimeConfig, config_class
from rnopt.errors import RnoptError
from rnopt.preprocessing import HEADS
from rnopt.results import check_fields

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class ArtifactSpec:
    """The model a variant runs: a built-in name with its weights, or a model file, and how it was made."""

    source: str  # a built-in model name, or the absolute path of a .onnx / .xml file
    sha256: str | None = None  # of the weights (built-in) or of the file (+ its .bin); None: random weights
    weights: str | None = None  # a checkpoint path for a built-in name; None: bundled, or random
    num_classes: int | None = None
    labels: str | None = None  # a class-names file for a built-in name
    head: str = "logits"
    opset: int | None = None  # ONNX opset of an on-the-fly export; None: the exporter's own
    dynamic_batch: bool = True
    recipe: str | None = None  # how a file was made (its rnopt history, e.g. the quantization recipe)
    normalize: bool = False  # with the features head: L2-normalised embeddings

    def __post_init__(self) -> None:
        check_fields(self)
        if self.head not in HEADS:
            raise RnoptError(f"unknown output head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.normalize and self.head != "features":
            raise RnoptError("--normalize applies to --head features (an L2-normalised embedding)")

    @property
    def is_file(self) -> bool:
        return self.source.endswith((".onnx", ".xml")) or Path(self.source).is_absolute()

    @property
    def name(self) -> str:
        return Path(self.source).name if self.is_file else self.source


@dataclass(frozen=True)
class VariantSpec:
    artifact: ArtifactSpec
    runtime: str
    device: str = "cpu"
    precision: str | None = None  # None: what the model holds (fp32, or int8 for a quantized file)
    threads: int | None = None  # None: the runtime's default for this machine
    config: RuntimeConfig | None = None  # the runtime's typed options; None: its defaults
    label: str = field(default="", compare=False)  # for people: not part of the identity

    def __post_init__(self) -> None:
        check_fields(self)
        cls = config_class(self.runtime)  # also rejects an unknown runtime
        if self.config is None:
            object.__setattr__(self, "config", cls())
        elif not isinstance(self.config, cls):
            raise RnoptError(f"{type(self.config).__name__} is not the config of runtime {self.runtime}")
        if self.device not in DEVICES:
            raise RnoptError(f"unknown device {self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.threads is not None and self.threads <= 0:
            raise RnoptError(f"threads must be positive, got {self.threads}")
        if not self.label:
            object.__setattr__(self, "label", self.default_label())

    @classmethod
    def build(cls, artifact: ArtifactSpec, runtime: str, device: str = "cpu", precision: str | None = None,
              threads: int | None = None, label: str = "", **options: Any) -> "VariantSpec":
        """A spec whose runtime options are given as keywords (validated by the runtime's config)."""
        return cls(artifact, runtime, device, precision, threads, config_class(runtime).from_dict(options), label)

    def to_dict(self) -> dict[str, Any]:
        assert self.config is not None
        return {"artifact": _fields(self.artifact), "runtime": self.runtime, "device": self.device,
                "precision": self.precision, "threads": self.threads, "config": self.config.to_dict(),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VariantSpec":
        try:
            artifact = ArtifactSpec(**data["artifact"])
            config = config_class(data["runtime"]).from_dict(data.get("config") or {})
            return cls(artifact, data["runtime"], data.get("device", "cpu"), data.get("precision"),
                       data.get("threads"), config, data.get("label", ""))
        except (KeyError, TypeError) as exc:
            raise RnoptError(f"not a variant spec ({type(exc).__name__}: {exc})") from None

    @property
    def id(self) -> str:
        identity = {k: v for k, v in self.to_dict().items() if k != "label"}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]

    def default_label(self) -> str:
        assert self.config is not None
        parts = [self.runtime] + ([self.device] if self.device != "cpu" else []) + \
            ([self.precision] if self.precision else []) + ([self.config.describe()] if self.config.describe() else [])
        return f"{self.artifact.name} [{' '.join(parts)}]"

    def with_label(self, label: str) -> "VariantSpec":
        return replace(self, label=label)


def spec_entries(specs: list[VariantSpec]) -> list[dict[str, Any]]:
    """The specs as a record stores them: each one's dict with its id first (`from_dict` ignores the id)."""
    return [{"id": spec.id, **spec.to_dict()} for spec in specs]


def _fields(artifact: ArtifactSpec) -> dict[str, Any]:
    return {name: getattr(artifact, name) for name in artifact.__dataclass_fields__}
