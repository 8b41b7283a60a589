"""A variant named completely by a spec: what to build (the artifact) and how to run it (runtime, device,
precision, threads, the runtime's own typed options).

A spec is frozen, made of plain values, and round-trips through JSON (`to_dict` / `from_dict`), so it can
travel to a fresh process or another machine and be rebuilt there. Its `id` hashes what the variant *is*, the
same in any folder, on any machine, on any day: a model file by its bytes (never its path), a built-in model by
its name and the digests of its weights and class names, then the steps of its recipe (`Step`: fusion, int8 with
its calibration images by content hash...) that make the file a runtime loads; then the runtime, device,
precision, threads and the runtime options that differ from their defaults. Defaults are left out and equivalent spellings normalised
(`precision=None` is "fp32" for a float model where the runtime runs a model in its own precision), so adding an
option with a default changes no id. Results are keyed and joined by id. The label is for people; nothing parses it.
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
from rnopt.schema import check_fields

DEVICES = ("cpu", "cuda")
# What an id hashes, versioned: 3 = content, no paths, defaults left out (rnopt 0.1's ids hashed paths);
# 4 = a file rnopt builds is named by its recipe (source + steps), not by the path it was written to.
ID_SCHEME = 4
# The steps that turn a model's ONNX export into the file a runtime loads; each names its settings, defaults left
# out. Data a step reads (calibration, validation images) is a reference {"data", "size", "sha256"}: only the
# sha256 of the decoded images is part of the id; where they were read is a hint for rebuilding.
STEP_OPS = ("optimize", "quantize", "quantize-aware")
# What a runtime loads (`RuntimeConfig.loads`) and an artifact is: a built-in model in PyTorch, ONNX, ONNX holding
# ONNX Runtime's own fused operators (what its offline optimizer writes), an OpenVINO IR.
IN_FRAMEWORK = "torch"  # the format of a built-in model run in the framework it is defined in
ARTIFACT_FORMATS = (IN_FRAMEWORK, "onnx", "onnx-ort", "openvino-ir")
_SUFFIXES = {"openvino-ir": ".xml"}  # every other file format is a .onnx
DATA_KEYS = ("calibration", "validation")


@dataclass(frozen=True)
class Step:
    """One step of a recipe: an operation and its settings, held as canonical JSON (frozen and hashable)."""

    op: str
    options: str = "{}"

    def __post_init__(self) -> None:
        if self.op not in STEP_OPS:
            raise RnoptError(f"unknown recipe step {self.op!r}: choose one of {', '.join(STEP_OPS)}")
        try:
            settings = json.loads(self.options)
        except (TypeError, ValueError):
            raise RnoptError(f"the settings of recipe step {self.op} are not JSON: {self.options!r:.60}") from None
        if not isinstance(settings, dict):
            raise RnoptError(f"the settings of recipe step {self.op} must be an object")
        object.__setattr__(self, "options", json.dumps(settings, sort_keys=True))

    @classmethod
    def make(cls, op: str, **settings: Any) -> "Step":
        """A step from keyword settings; those that are None (the default) are left out."""
        return cls(op, json.dumps({k: v for k, v in settings.items() if v is not None}, sort_keys=True))

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self.options)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **self.settings}

    @classmethod
    def from_dict(cls, data: Any) -> "Step":
        if not isinstance(data, dict) or not isinstance(data.get("op"), str):
            raise RnoptError(f"a recipe step is an object with an \"op\", got {data!r:.60}")
        return cls.make(**data)

    def identity(self) -> dict[str, Any]:
        """The step without the places its data was read from: data by content only."""
        settings = self.settings
        for key in DATA_KEYS:
            if isinstance(settings.get(key), dict):
                settings[key] = settings[key].get("sha256")
        return {"op": self.op, **settings}

    def describe(self) -> str:
        settings = self.settings
        if self.op == "optimize":
            return f"fused ({settings.get('level', 'extended')})"
        method = (settings.get("recipe") or {}).get("method", "minmax")
        aware = " accuracy-aware" if self.op == "quantize-aware" else ""
        return f"int8{aware} ({settings.get('toolkit', 'onnxruntime')}, {method})"


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
    labels_sha256: str | None = None  # of the class names `labels` gives (the path is only where they were read)
    steps: tuple[Step, ...] = ()  # what turns the source's ONNX into this artifact's file (a recipe)
    # the bytes the recipe gave when it was last built (a rebuild says when its bytes differ); not part of the id
    built_sha256: str | None = field(default=None, compare=False)
    built_with: str | None = field(default=None, compare=False)  # the libraries and CPU that gave those bytes

    def __post_init__(self) -> None:
        check_fields(self)
        if not isinstance(self.steps, tuple) or not all(isinstance(step, Step) for step in self.steps):
            raise RnoptError("ArtifactSpec.steps must be a tuple of recipe Steps")
        if self.head not in HEADS:
            raise RnoptError(f"unknown output head {self.head!r}: choose one of {', '.join(HEADS)}")
        if self.normalize and self.head != "features":
            raise RnoptError("--normalize applies to --head features (an L2-normalised embedding)")

    @property
    def is_file(self) -> bool:
        return self.source.endswith((".onnx", ".xml")) or Path(self.source).is_absolute()

    @property
    def name(self) -> str:
        base = Path(self.source).name if self.is_file else self.source
        return " ".join([base] + [step.describe() for step in self.steps])

    @property
    def quantized(self) -> bool:
        return any(step.op.startswith("quantize") for step in self.steps) or "quantize" in (self.recipe or "")

    @property
    def id(self) -> str:
        """The recipe's id (with the id scheme, the recipe's schema version): the name of its store folder."""
        identity = {"scheme": ID_SCHEME, **self.identity()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def formats(self) -> tuple[str, ...]:
        """What this artifact can be loaded as (ARTIFACT_FORMATS): a built-in name in PyTorch or as its ONNX export;
        a recipe's file as its last step writes it; a user's file by its kind."""
        if self.steps:
            last = self.steps[-1]
            return ("onnx-ort",) if last.op == "optimize" else (last.settings.get("format", "onnx"),)
        if not self.is_file:
            return (IN_FRAMEWORK, "onnx")
        if self.source.endswith(".xml"):
            return ("openvino-ir",)
        return ("onnx-ort",) if "optimize" in (self.recipe or "") else ("onnx",)

    @property
    def file_suffix(self) -> str:
        """The suffix of the file this artifact is (a built-in name's: its ONNX export's)."""
        return format_suffix(self.formats[-1])

    def parent(self) -> "ArtifactSpec":
        """The artifact this one's last step starts from."""
        return replace(self, steps=self.steps[:-1], built_sha256=None, built_with=None)

    def then(self, step: Step) -> "ArtifactSpec":
        """This artifact with one more step."""
        return replace(self, steps=(*self.steps, step), built_sha256=None, built_with=None)

    def identity(self) -> dict[str, Any]:
        """What this artifact is, wherever it lies: a file's bytes, or a built-in name with what changes its weights
        and its outputs; then the steps of its recipe. Only what differs from the defaults."""
        steps = {"steps": [step.identity() for step in self.steps]} if self.steps else {}
        if self.is_file:
            return {"file": self.sha256, **steps}
        optional = {"num_classes": self.num_classes, "labels": self.labels_sha256 or _path_digest(self.labels),
                    "head": None if self.head == "logits" else self.head, "normalize": self.normalize or None,
                    "opset": self.opset, "static_batch": None if self.dynamic_batch else True}
        return {"model": self.source, "weights": self.sha256, **{k: v for k, v in optional.items() if v is not None},
                **steps}


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
        return {"artifact": artifact_fields(self.artifact), "runtime": self.runtime, "device": self.device,
                "precision": self.precision, "threads": self.threads, "config": self.config.to_dict(),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VariantSpec":
        try:
            artifact = artifact_from_dict(data["artifact"])
            config = config_class(data["runtime"]).from_dict(data.get("config") or {})
            return cls(artifact, data["runtime"], data.get("device", "cpu"), data.get("precision"),
                       data.get("threads"), config, data.get("label", ""))
        except (KeyError, TypeError) as exc:
            raise RnoptError(f"not a variant spec ({type(exc).__name__}: {exc})") from None

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]

    def identity(self) -> dict[str, Any]:
        """What the id hashes: the artifact's identity and how it runs, defaults left out (module docstring)."""
        assert self.config is not None
        native = "int8" if self.artifact.quantized else "fp32"
        precision = None if self.config.runs_model_precision and self.precision == native else self.precision
        optional = {"device": None if self.device == "cpu" else self.device, "precision": precision,
                    "threads": self.threads, "config": self.config.changed() or None}
        return {"scheme": ID_SCHEME, "artifact": self.artifact.identity(), "runtime": self.runtime,
                **{k: v for k, v in optional.items() if v is not None}}

    def default_label(self) -> str:
        assert self.config is not None
        parts = [self.runtime] + ([self.device] if self.device != "cpu" else []) + \
            ([self.precision] if self.precision else []) + ([self.config.describe()] if self.config.describe() else [])
        return f"{self.artifact.name} [{' '.join(parts)}]"

    def with_label(self, label: str) -> "VariantSpec":
        return replace(self, label=label)


def format_suffix(fmt: str) -> str:
    """The file suffix of an artifact format: .xml for an OpenVINO IR, else .onnx."""
    return _SUFFIXES.get(fmt, ".onnx")


def spec_entries(specs: list[VariantSpec]) -> list[dict[str, Any]]:
    """The specs as a record stores them: each one's dict with its id first (`from_dict` ignores the id)."""
    return [{"id": spec.id, **spec.to_dict()} for spec in specs]


def _path_digest(path: str | None) -> str | None:
    """A file's sha256 where it can be read (specs written before labels_sha256 existed), else its path."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return path


def artifact_from_dict(data: dict[str, Any]) -> ArtifactSpec:
    """An artifact spec from its JSON (`artifact_fields`); TypeError where it is not one."""
    fields = dict(data)
    if not isinstance(fields.get("steps", []), list):
        raise TypeError("artifact.steps must be a list of steps")
    fields["steps"] = tuple(Step.from_dict(step) for step in fields.get("steps", []))
    return ArtifactSpec(**fields)


def artifact_fields(artifact: ArtifactSpec) -> dict[str, Any]:
    fields = {name: getattr(artifact, name) for name in artifact.__dataclass_fields__}
    return {**fields, "steps": [step.to_dict() for step in artifact.steps]}
