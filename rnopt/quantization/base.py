"""The quantizer interface: one signature for every int8 toolkit, and the calibration data they share.

Calibration images are decoded and preprocessed once (`CalibrationData`), so every toolkit of a run sees
the same inputs and no run decodes them twice.
"""
from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnopt.accuracy import AccuracyBound, ValidationSet, content_sha256
from rnopt.options import names_list, option, tensor_range
from rnopt.results import AccuracyAwareResult, QuantizeResult


INT8_TYPES = ("s8", "u8")


@dataclass(frozen=True)
class QuantRecipe:
    """How to quantize; each toolkit reads the fields it supports and refuses the others."""

    method: str = option("minmax", "--method", "activation ranges: minmax (the whole observed range; default), "
                         "entropy (the range that loses least information; clips rare outliers), percentile (keeps "
                         "--percentile %% of values)", ("minmax", "entropy", "percentile"))
    percentile: float = option(99.999, "--percentile", "with --method percentile: the share of activation values "
                               "kept (default 99.999)", metavar="P")
    per_channel: bool = option(True, "--per-tensor", "one scale per weight tensor instead of per output channel "
                               "(smaller, usually less accurate)", negate=True)
    symmetric_activations: bool = option(False, "--symmetric-activations", "activation ranges centred on zero "
                                         "(some accelerators need it; wastes half the range after a ReLU)")
    weight_type: str = option("s8", "--weight-type", "weights' int8 type (default s8)", INT8_TYPES)
    activation_type: str = option("u8", "--activation-type", "activations' int8 type (default u8: ResNet "
                                  "activations after ReLU are non-negative)", INT8_TYPES)
    # None: on exactly where the CPU has no VNNI/AMX
    reduce_range: bool | None = option(None, "--reduce-range", "7-bit weights, so int8 arithmetic cannot saturate "
                                       "(default: on exactly on CPUs without VNNI/AMX, and said so)")
    exclude: tuple[str, ...] = option((), "--exclude", "keep these nodes in float (names or fnmatch patterns, e.g. "
                                      "'/conv1/*' or '*Gemm*'); repeatable", metavar="NAME|PATTERN[,...]",
                                      parse=names_list)
    # (tensor, min, max): a range set by hand, not calibrated
    ranges: tuple[tuple[str, float, float], ...] = option((), "--range", "set one activation's int8 range by hand "
                                                          "instead of calibrating it (a tensor name from `rnopt "
                                                          "sensitivity`); repeatable", metavar="TENSOR=MIN,MAX",
                                                          parse=tensor_range)

    def __post_init__(self) -> None:
        from rnopt.errors import RnoptError

        if not 0 < self.percentile <= 100:
            raise RnoptError(f"--percentile must be in (0, 100], got {self.percentile}")
        for flag, value in (("--weight-type", self.weight_type), ("--activation-type", self.activation_type)):
            if value not in INT8_TYPES:
                raise RnoptError(f"{flag} must be s8 or u8, got {value!r}")
        for tensor, low, high in self.ranges:
            if not low < high:
                raise RnoptError(f"--range {tensor}: the minimum must be below the maximum, got {low:g}, {high:g}")

    def describe(self) -> str:
        """The recipe in one line, for the file's history and the report."""
        parts = [self.method + (f" {self.percentile:g}%" if self.method == "percentile" else ""),
                 "per-channel" if self.per_channel else "per-tensor",
                 f"weights {self.weight_type}, activations {self.activation_type}"
                 + (" symmetric" if self.symmetric_activations else "")]
        if self.reduce_range:
            parts.append("reduce-range")
        if self.exclude:
            parts.append(f"float: {', '.join(self.exclude)}")
        if self.ranges:
            parts.append("ranges set: " + ", ".join(f"{t}=[{lo:g}, {hi:g}]" for t, lo, hi in self.ranges))
        return "; ".join(parts)


    def settings(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as JSON (a recipe step holds them)."""
        default = QuantRecipe()
        changed = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}
        return json.loads(json.dumps(changed))  # tuples become lists

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "QuantRecipe":
        from rnopt.errors import RnoptError

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise RnoptError(f"unknown quantization setting {', '.join(unknown)}: this rnopt knows {', '.join(known)}")
        given = dict(settings)
        given["exclude"] = tuple(given.get("exclude", ()))
        given["ranges"] = tuple(tuple(r) for r in given.get("ranges", ()))
        return cls(**given)


@dataclass
class CalibrationData:
    name: str  # the dataset it came from (cifar10-calib, a folder)
    images: np.ndarray  # N x 3 x H x W float32, preprocessed as the model expects

    def __len__(self) -> int:
        return len(self.images)

    @functools.cached_property
    def sha256(self) -> str:
        return content_sha256(self.images)

    def reference(self) -> dict[str, Any]:
        """The images as a recipe step names them: by content, with where to read them again."""
        return {"data": self.name, "size": len(self), "sha256": self.sha256}

    def batches(self, size: int) -> list[np.ndarray]:
        return [self.images[i:i + size] for i in range(0, len(self.images), size)]


# A model with some layers in float, timed against the full int8 model: (label, file, its float nodes).
RevertedModel = tuple[str, Path, list[str]]


class Quantizer(ABC):
    name: ClassVar[str]  # the registry name, which is also the runtime it targets
    suffix: ClassVar[str]  # the output file's extension

    def require(self) -> None:
        """Raise RnoptError (saying what to install) when a library this toolkit needs is missing."""

    def resolved(self, recipe: QuantRecipe) -> QuantRecipe:
        """`recipe` with every setting that depends on this machine fixed to its value here, so a recipe step
        names the same bytes on any machine."""
        return recipe

    @abstractmethod
    def quantize(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                 recipe: QuantRecipe = QuantRecipe(), on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
        """Write the int8 model of the float ONNX file `source` to `output`, atomically."""

    @abstractmethod
    def quantize_accuracy_aware(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                                recipe: QuantRecipe, bound: AccuracyBound, validation: ValidationSet,
                                max_steps: int | None = None, on_progress: Callable[[str], None] | None = None
                                ) -> QuantizeResult:
        """Write the int8 model that meets `bound` on `validation` (or the best found), every step in the result's
        `accuracy_aware`: what a recipe step builds (`rnopt.recipes`). The untuned test figures and the latency of
        the reverts are measured afterwards on the files (`untuned_figures`, `reverted_models`)."""

    @abstractmethod
    def outputs(self, model: Path, images: np.ndarray) -> np.ndarray:
        """The first output of a model file (the float ONNX source, or an int8 file this toolkit wrote) on every
        image, run as this toolkit's runtime deploys it."""

    def untuned_figures(self, report: AccuracyAwareResult, bound: AccuracyBound, test: ValidationSet, source: Path,
                        full: Path, final: Path, outputs: Callable[[Path], np.ndarray] | None = None) -> None:
        """Float (`source`), full int8 and the model written, each scored with the bound's measure on `test`, the
        data no decision was tuned on. `outputs`: a file's outputs on the test images (default: computed here;
        rnopt's API takes them from the prediction cache where it can)."""
        outputs = outputs or (lambda model: self.outputs(model, test.images))
        measure = bound.measure_object()
        reference = outputs(source)
        full_score = measure.score(outputs(full), test.labels, reference)
        report.test_data = test.name
        report.test_float_score = measure.score(reference, test.labels, reference)
        report.test_int8_score = full_score
        report.test_score = measure.score(outputs(final), test.labels, reference) if final != full else full_score

    def reverted_models(self, report: AccuracyAwareResult, source: Path, full: Path, final: Path,
                        scratch: Path) -> list[RevertedModel]:
        """The models whose latency against full int8 says what the reverts cost: the model written."""
        return [("final", final, report.kept_float)]
