"""int8 quantization, one module per toolkit behind one interface (`Quantizer`), and the registry.

Adding a toolkit = one module here and one line in `QUANTIZERS`.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from rnopt.errors import RnoptError
from rnopt.quantize.base import CalibrationData, QuantRecipe, Quantizer
from rnopt.results import QuantizeResult

# toolkit name (= the runtime its output targets) -> (module, class, pip packages it needs)
QUANTIZERS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("rnopt.quantize.onnxruntime", "OrtStaticQuantizer", "onnxruntime"),
    "openvino": ("rnopt.quantize.openvino", "NncfQuantizer", "nncf openvino"),
}


def get_quantizer(name: str) -> Quantizer:
    if name not in QUANTIZERS:
        raise RnoptError(f"unknown quantizer {name!r}: choose one of {', '.join(QUANTIZERS)}")
    module_name, class_name, packages = QUANTIZERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RnoptError(f"the {name} quantizer needs {exc.name or packages}, which is not installed: "
                         f"pip install {packages}") from None
    return getattr(module, class_name)()


def quantize_file(source: str | Path, output: str | Path, toolkit: str = "onnxruntime", calib_data: str | None = None,
                  calib_size: int = 500, recipe: QuantRecipe = QuantRecipe(),
                  on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
    """Quantize one float ONNX file with `toolkit`, calibrating on `calib_data` (default: bundled CIFAR)."""
    from rnopt.artifacts import open_model_file
    from rnopt.quantize.calibration import calibration_data

    quantizer = get_quantizer(toolkit)
    calibration = calibration_data(open_model_file(source).meta, calib_data, calib_size)
    return quantizer.quantize(source, output, calibration, recipe, on_batch)


__all__ = ["QUANTIZERS", "CalibrationData", "QuantRecipe", "Quantizer", "get_quantizer", "quantize_file"]
