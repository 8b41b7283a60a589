"""int8 quantization, one module per toolkit behind one interface (`Quantizer`), and the registry.

Adding a toolkit = one module here and one line in `QUANTIZERS`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnopt.accuracy import MEASURES, AccuracyBound, checked_measure
from rnopt.errors import RnoptError
from rnopt.onnx_model import ModelMeta
from rnopt.options import option
from rnopt.quantization.base import CalibrationData, QuantRecipe, Quantizer
from rnopt.results import QuantizeResult
from rnopt.schema import check_fields


@dataclass(frozen=True)
class Toolkit:
    """A quantizer's registration: where it lives, what it needs, and what the planner reads without importing it."""

    module: str
    cls: str
    packages: str  # the pip packages it needs
    format: str  # the format of the file it writes (what runtimes load: rnopt.spec.ARTIFACT_FORMATS)
    takes_recipes: bool  # whether QuantRecipe options (calibration method, granularity) apply to it


QUANTIZERS: dict[str, Toolkit] = {
    "onnxruntime": Toolkit("rnopt.quantization.onnxruntime", "OrtStaticQuantizer", "onnxruntime", "onnx", True),
    "openvino": Toolkit("rnopt.quantization.openvino", "NncfQuantizer", "nncf openvino", "openvino-ir", False),
}


def get_quantizer(name: str) -> Quantizer:
    if name not in QUANTIZERS:
        raise RnoptError(f"unknown quantizer {name!r}: choose one of {', '.join(QUANTIZERS)}")
    toolkit = QUANTIZERS[name]
    module_name, class_name, packages = toolkit.module, toolkit.cls, toolkit.packages
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RnoptError(f"the {name} quantizer needs {exc.name or packages}, which is not installed: "
                         f"pip install {packages}") from None
    quantizer: Quantizer = getattr(module, class_name)()
    quantizer.require()
    return quantizer


@dataclass(frozen=True)
class AccuracyControl:
    """Accuracy-aware int8: the bound, and the data it is tuned on (never the test set) and reported on."""

    # In the measure's points (absolute) or % of float's score (relative).
    max_drop: float | None = option(None, "--max-drop", "the largest accuracy drop allowed vs float on the validation "
                                    "images, in points of the measure (top-1 %%, or mAP for embedding models)",
                                    metavar="P")
    drop_type: str = option("absolute", "--drop-type", "absolute: points; relative: %% of the float model's score "
                            "(default absolute)", ("absolute", "relative"))
    min_cosine: float | None = option(None, "--min-cosine", "embedding models: the mean cosine to the float model's "
                                      "embeddings must stay >= C", metavar="C")
    measure: str | None = option(None, "--measure", "accuracy measure (default: top-1 for classifiers, mAP for "
                                 "embedding models)", tuple(MEASURES))
    data: str | None = option(None, "--data", "validation images every decision is tuned on (default: the bundled "
                              "cifar10-val, 5,000 CIFAR-10 train images; never the test set)", metavar="DIR|cifar10-val")
    test_data: str | None = option(None, "--test-data", "the untuned final figures (default: the bundled CIFAR-10 "
                                   "test set for CIFAR models)", metavar="DIR|cifar10")
    limit: int | None = option(None, "--limit", "a fixed, seeded subset of N validation images", metavar="N")
    max_steps: int | None = option(None, "--max-steps", "stop after N revert steps (default: none)", metavar="N")

    def __post_init__(self) -> None:
        check_fields(self)

    def bound(self, meta: ModelMeta) -> AccuracyBound:
        if self.min_cosine is not None:
            if self.max_drop is not None:
                raise RnoptError("give --max-drop or --min-cosine, not both")
            if self.measure not in (None, "cosine"):  # it would be silently ignored
                raise RnoptError(f"--min-cosine bounds the mean cosine: --measure {self.measure} does not go with it")
            return AccuracyBound.min_cosine(self.min_cosine)
        if self.max_drop is None:
            raise RnoptError("accuracy-aware int8 needs a bound: --max-drop P (or --min-cosine C for embeddings)")
        return AccuracyBound(checked_measure(self.measure, meta), self.max_drop, self.drop_type)

    def test_set(self, meta: ModelMeta) -> str | None:
        if self.test_data:
            return self.test_data
        return "cifar10" if meta.fits_bundled_cifar else None


def quantize_file(source: str | Path, output: str | Path, toolkit: str = "onnxruntime", calib_data: str | None = None,
                  calib_size: int = 500, recipe: QuantRecipe = QuantRecipe(),
                  on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
    """Plain int8 of one float ONNX file with `toolkit`, calibrating on `calib_data` (default: bundled CIFAR), written
    here and now (`rnopt.quantize` builds it through the artifact store instead, and accuracy-aware int8 too)."""
    from rnopt.onnx_model import model_meta
    from rnopt.quantization.calibration import calibration_data

    quantizer = get_quantizer(toolkit)
    calibration = calibration_data(model_meta(source), calib_data, calib_size, on_batch)
    return quantizer.quantize(source, output, calibration, recipe, on_batch)


__all__ = ["QUANTIZERS", "Toolkit", "AccuracyControl", "CalibrationData", "QuantRecipe", "Quantizer", "get_quantizer",
           "quantize_file"]
