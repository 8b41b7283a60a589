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
from rnopt.quantization import QUANTIZERS, get_quantizer
from rnopt.quantization.base import CalibrationData, QuantRecipe
from rnopt.quantization.calibration import calibration_data
from rnopt.results import OptimizeResult, QuantizeResult
from rnopt.spec import Step

StepResult = OptimizeResult | QuantizeResult
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
