"""Recipe steps: how each is named (from the data it reads, by content) and how it is run (into one file).

A step is part of an artifact's id (`rnopt.spec.Step`), so it holds everything that changes the bytes it writes:
the toolkit and its settings with every machine-dependent default fixed (`Quantizer.resolved`), and the images it
reads by the sha256 of their decoded pixels. Running a step needs those images again: the caller hands over
what it has decoded (`DataSource`), or they are read again from where the step says they came from and
checked against the sha256.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnopt import progress
from rnopt.accuracy import AccuracyBound, ValidationSet, validation_set
from rnopt.backends.base import ModelFile
from rnopt.errors import RnoptError
from rnopt.onnx_model import ModelMeta
from rnopt.options import option, option_like
from rnopt.quantization import QUANTIZERS, AccuracyControl, get_quantizer
from rnopt.quantization.base import CalibrationData, QuantRecipe
from rnopt.quantization.calibration import calibration_data
from rnopt.results import OptimizeResult, QuantizeResult
from rnopt.schema import check_fields
from rnopt.spec import Step

StepResult = OptimizeResult | QuantizeResult
FUSION_LEVELS = ("basic", "extended")  # rnopt.fusion.LEVELS, without importing ONNX Runtime to parse a command line


# ---- what the file verbs take (`rnopt.export`, `optimize`, `quantize`), their flags declared beside each field ----

@dataclass(frozen=True)
class ExportConfig:
    """How `rnopt export` writes and checks the ONNX file (the model itself: `rnopt.artifacts.ModelOptions`)."""

    opset: int | None = option(None, "--opset", "ONNX opset (default: the exporter's, 18+)", metavar="N")
    static_batch: int | None = option(None, "--static-batch", "fix the batch size (default: dynamic)", metavar="N")
    rtol: float | None = option(None, "--rtol", "max |diff| allowed, as a fraction of the largest |logit| (default "
                                "1e-4): fp32 rounding never reaches it, a wrong graph does", metavar="R")
    atol: float | None = option(None, "--atol", "also bound the absolute max |diff| (default: none)", metavar="A")

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def is_recipe(self) -> bool:
        """Whether a recipe names this export (the store builds it): no tolerance of its own, batch dynamic or 1."""
        return self.rtol is None and self.atol is None and self.static_batch in (None, 1)


@dataclass(frozen=True)
class OptimizeConfig:
    level: str = option("extended", "--level", "ONNX Runtime's offline fusion level (default {default})",
                        FUSION_LEVELS)

    def __post_init__(self) -> None:
        if self.level not in FUSION_LEVELS:
            raise RnoptError(f"unknown optimization level {self.level!r}: choose {' or '.join(FUSION_LEVELS)}")


@dataclass(frozen=True)
class QuantizeConfig:
    """int8 by `toolkit`, calibrated on `calib_data`; with `control`, accuracy-aware (layers go back to float until
    its bound holds on the validation data; with `time_reverts`, what the float layers cost in latency is timed)."""

    toolkit: str = option("onnxruntime", "--backend", "the quantizer: " + "; ".join(
        f"{name} writes {t.format}" for name, t in QUANTIZERS.items()) + " (default {default})", tuple(QUANTIZERS))
    calib_data: str | None = option(None, "--calib-data", "calibration images (default: bundled for CIFAR)",
                                    metavar="DIR|cifar10-calib")
    calib_size: int = option(500, "--calib-size", "calibration images used (default {default})", metavar="N")
    recipe: QuantRecipe = field(default_factory=QuantRecipe)
    control: AccuracyControl | None = None
    time_reverts: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.recipe, str):  # a calibration method's name is enough for a recipe
            object.__setattr__(self, "recipe", QuantRecipe(self.recipe))
        check_fields(self)
        if self.toolkit not in QUANTIZERS:
            get_quantizer(self.toolkit)  # the one-line error naming the quantizers
        if self.calib_size <= 0:
            raise RnoptError(f"calib_size must be positive, got {self.calib_size}")


@dataclass(frozen=True)
class SensitivityConfig:
    """`rnopt sensitivity`: the validation images and measure, how many ground truths, and (when no int8 model is
    given) how the int8 model is made."""

    data: str | None = option_like(AccuracyControl, "data")
    limit: int | None = option_like(AccuracyControl, "limit")
    measure: str | None = option_like(AccuracyControl, "measure")
    top: int = option(5, "--top", "ground truth for the K tensors with the lowest SQNR: the accuracy gained by "
                      "keeping only that one in float, on all validation images (default {default}; 0: SQNR only)",
                      metavar="K", parse=int)
    sqnr_images: int = option(200, "--sqnr-images", "validation images the SQNR pass runs on (default {default})",
                              metavar="N")
    calib_data: str | None = option_like(QuantizeConfig, "calib_data")
    calib_size: int = option_like(QuantizeConfig, "calib_size")
    recipe: QuantRecipe = field(default_factory=QuantRecipe)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.top < 0 or self.sqnr_images <= 0:
            raise RnoptError("--top must be zero or more and --sqnr-images positive")


def optimize_step(level: str = "extended") -> Step:
    return Step.make("optimize", level=None if level == "extended" else level)


def quantize_step(toolkit: str, recipe: QuantRecipe, calibration: CalibrationData) -> Step:
    """Plain int8 by `toolkit`, calibrated on `calibration`."""
    quantizer = get_quantizer(toolkit)
    return Step.make("quantize", toolkit=toolkit, format=QUANTIZERS[toolkit].format,
                     recipe=quantizer.resolved(recipe).settings() or None, calibration=calibration.reference())


def quantize_aware_step(toolkit: str, recipe: QuantRecipe, calibration: CalibrationData, bound: AccuracyBound,
                        validation: ValidationSet, max_steps: int | None = None) -> Step:
    """Accuracy-aware int8: layers back to float until `bound` holds on `validation`."""
    quantizer = get_quantizer(toolkit)
    return Step.make("quantize-aware", toolkit=toolkit, format=QUANTIZERS[toolkit].format,
                     recipe=quantizer.resolved(recipe).settings() or None, calibration=calibration.reference(),
                     bound={"measure": bound.measure, "max_drop": bound.max_drop, "drop_type": bound.drop_type},
                     validation=validation.reference(), max_steps=max_steps)


@dataclass
class DataSource:
    """Decoded images by sha256: what this process already has, else read again from the step's reference."""

    known: dict[str, CalibrationData | ValidationSet] = field(default_factory=dict)

    def add(self, *data: CalibrationData | ValidationSet | None) -> None:
        for item in data:
            if item is not None:
                self.known[item.sha256] = item

    def calibration(self, reference: dict[str, Any], meta: ModelMeta) -> CalibrationData:
        found = self.known.get(reference.get("sha256", ""))
        if not isinstance(found, CalibrationData):
            with progress.task("reading calibration images", reference.get("size")) as advance:
                found = calibration_data(meta, reference.get("data"), reference.get("size", 500), advance)
            self._check(found, reference, "calibration")
        return found

    def validation(self, reference: dict[str, Any], meta: ModelMeta) -> ValidationSet:
        found = self.known.get(reference.get("sha256", ""))
        if not isinstance(found, ValidationSet):
            with progress.task("decoding validation images") as advance:
                found = validation_set(meta, reference.get("data"), reference.get("limit"), advance)
            self._check(found, reference, "validation")
        return found

    def _check(self, found: CalibrationData | ValidationSet, reference: dict[str, Any], role: str) -> None:
        if found.sha256 != reference.get("sha256"):
            raise RnoptError(f"the {role} images this recipe was made with (sha256 {str(reference.get('sha256'))[:12]}) "
                             f"are not those {reference.get('data')} gives here (sha256 {found.sha256[:12]}): "
                             f"put the same images there, or plan the variant again")
        self.add(found)


def run_step(step: Step, parent: ModelFile, output: Path, data: DataSource) -> StepResult:
    """Write the file `step` makes from `parent` to `output`; the step's own result (checks, recipe, sizes)."""
    settings = step.settings
    if step.op == "optimize":
        from rnopt.fusion import optimize_model  # ONNX Runtime's: imported only where a file is fused

        with progress.task("fusing operators", None):
            return optimize_model(parent.path, output, settings.get("level", "extended"))
    toolkit = settings.get("toolkit", "onnxruntime")
    quantizer = get_quantizer(toolkit)
    recipe = QuantRecipe.from_settings(settings.get("recipe") or {})
    calibration = data.calibration(settings.get("calibration") or {}, parent.meta)
    if step.op == "quantize":
        with progress.task(f"calibrating int8 ({toolkit})", len(calibration)) as advance:
            return quantizer.quantize(parent.path, output, calibration, recipe, advance)
    bound = AccuracyBound(**settings.get("bound", {}))
    validation = data.validation(settings.get("validation") or {}, parent.meta)
    with progress.task(f"accuracy-aware int8 ({toolkit})") as advance:
        on_progress: Callable[[str], None] = lambda note: advance(0, note)  # noqa: E731
        return quantizer.quantize_accuracy_aware(parent.path, output, calibration, recipe, bound, validation,
                                                 max_steps=settings.get("max_steps"), on_progress=on_progress)
