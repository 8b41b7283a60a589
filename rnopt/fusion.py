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

from rnopt.errors import RnoptError
from rnopt.fileio import atomic_path
from rnopt.numerics import compare_onnx_files
from rnopt.onnx_model import load_onnx, op_counts, open_float_model, save_onnx, write_meta
from rnopt.backends.onnxruntime.session import write_optimized
from rnopt.results import OptimizeResult

# Fusion reorders float arithmetic; anything beyond this fraction of the largest |logit| is a wrong rewrite.
RTOL = 1e-4

LEVELS = ("basic", "extended")


def optimize_model(source: str | Path, output: str | Path, level: str = "extended") -> OptimizeResult:
    if level not in LEVELS:
        raise RnoptError(f"unknown optimization level {level!r}: choose {' or '.join(LEVELS)}")
    source, output, original, meta = open_float_model(source, output, "optimize")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "optimized.onnx"
        write_optimized(str(source), str(raw), level)
        optimized = load_onnx(raw)
    meta.variant = "fused" if level == "extended" else meta.variant
    meta.history.append(f"optimize:{level}")
    write_meta(optimized, meta)
    with atomic_path(output) as tmp:
        save_onnx(optimized, tmp)
        diff = compare_onnx_files(str(source), str(tmp), meta.input_size)
        if diff.max_rel_diff > RTOL:
            raise RnoptError(f"optimized model differs from {source} by {diff.max_rel_diff:.3g} of the largest "
                             f"|logit| (> {RTOL:g}): not written")
    return OptimizeResult(str(source), str(output), level, op_counts(original), op_counts(optimized),
                          diff.max_abs_diff, diff.top1_agreement, diff.max_rel_diff)
