"""Operator fusion with ONNX Runtime's offline graph optimizer.

`basic` applies only semantics-preserving rewrites that stay standard ONNX (constant folding,
Conv+BatchNorm/Add/Mul folding), so any runtime reads the result. `extended` adds ORT's fused kernels
(Conv+Relu and Conv+Add+Relu into com.microsoft FusedConv, Gemm+activation): faster on ONNX Runtime,
readable only by it. ORT's `all` level is not offered: it writes CPU-specific memory layouts (NCHWc)
into the file, which would then be wrong on another machine.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import onnxruntime as ort

from rnopt.backends.onnxruntime import session_options
from rnopt.errors import RnoptError
from rnopt.fileio import atomic_path
from rnopt.numerics import compare_onnx_outputs
from rnopt.onnx_model import load_onnx, op_counts, open_float_model, save_onnx, write_meta
from rnopt.report.results import OptimizeResult

LEVELS = ("basic", "extended")


def optimize_model(source: str | Path, output: str | Path, level: str = "extended") -> OptimizeResult:
    if level not in LEVELS:
        raise RnoptError(f"unknown optimization level {level!r}: choose {' or '.join(LEVELS)}")
    source, output, original, meta = open_float_model(source, output, "optimize")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "optimized.onnx"
        opts = session_options(opt_level=level)
        opts.optimized_model_filepath = str(raw)
        try:
            ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RnoptError(f"onnxruntime cannot optimize {source}: {str(exc).splitlines()[0][:200]}") from None
        optimized = load_onnx(raw)
    meta.variant = "fused" if level == "extended" else meta.variant
    meta.history.append(f"optimize:{level}")
    write_meta(optimized, meta)
    with atomic_path(output) as tmp:
        save_onnx(optimized, tmp)
        max_diff, agreement = compare_onnx_outputs(str(source), str(tmp), meta.input_size)
        if max_diff > 1e-3:
            raise RnoptError(f"optimized model differs from {source} by {max_diff:.3g} (> 1e-3): not written")
    return OptimizeResult(str(source), str(output), level, op_counts(original), op_counts(optimized),
                          max_diff, agreement)
