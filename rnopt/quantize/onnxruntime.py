"""Static int8 quantization with ONNX Runtime's toolkit: QDQ format, per-channel s8 weights, u8 activations.

The model first goes through ORT's quantization pre-processing (symbolic shape inference and graph
optimization), then is calibrated on real images with the model's own preprocessing (from its
rnopt metadata), so the ranges match what the model sees in deployment.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from rnopt.errors import RnoptError, first_line
from rnopt.fileio import atomic_path
from rnopt.onnx_model import load_onnx, open_float_model, save_onnx, write_meta
from rnopt.quantize.base import CalibrationData, QuantRecipe, Quantizer
from rnopt.results import QuantizeResult

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
CALIB_BATCH = 50


class _ImageReader(CalibrationDataReader):
    """Feeds the calibration batches to the calibrator, reporting progress as it goes."""

    def __init__(self, calibration: CalibrationData, input_name: str, on_batch: Callable[[int], None] | None) -> None:
        self.batches: Iterator[np.ndarray] = iter(calibration.batches(CALIB_BATCH))
        self.input_name = input_name
        self.on_batch = on_batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None:
            return None
        if self.on_batch:
            self.on_batch(len(batch))
        return {self.input_name: batch}


class OrtStaticQuantizer(Quantizer):
    name = "onnxruntime"
    suffix = ".onnx"

    def quantize(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                 recipe: QuantRecipe = QuantRecipe(), on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
        if recipe.method not in METHODS:
            raise RnoptError(f"unknown calibration method {recipe.method!r}: choose one of {', '.join(METHODS)}")
        source, output, model, meta = open_float_model(source, output, "quantize")
        _check_standard_ops(model, source)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            prepped, quantized = Path(scratch) / "prep.onnx", Path(scratch) / "int8.onnx"
            try:
                quant_pre_process(str(source), str(prepped), skip_symbolic_shape=False)
                reader = _ImageReader(calibration, model.graph.input[0].name, on_batch)
                with contextlib.redirect_stdout(io.StringIO()):  # its histogram calibrators print progress
                        quantize_static(str(prepped), str(quantized), reader, quant_format=QuantFormat.QDQ,
                                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                    calibrate_method=METHODS[recipe.method])
            except RnoptError:
                raise
            except Exception as exc:
                raise RnoptError(f"quantization of {source} failed: {first_line(exc)}") from None
            result_model = load_onnx(quantized)
        meta.variant = "int8"
        meta.history.append(f"quantize:ort-static-qdq:{recipe.method}:{calibration.name}:{len(calibration)}")
        write_meta(result_model, meta)
        with atomic_path(output) as tmp:
            save_onnx(result_model, tmp)
            size_after = tmp.stat().st_size
        return QuantizeResult(str(source), str(output), recipe.method, calibration.name, len(calibration), "QDQ",
                              True, "uint8", "int8", source.stat().st_size, size_after, time.perf_counter() - start,
                              self.name)


def _check_standard_ops(model: onnx.ModelProto, source: Path) -> None:
    foreign = sorted({n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise RnoptError(f"{source} holds runtime-specific fused ops ({', '.join(foreign)}): quantize the "
                         f"exported model, or one optimized with --level basic")
