"""PyTorch -> ONNX export, and the numeric check that proves the export right."""
from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch

from rnopt.errors import RnoptError, first_line
from rnopt.fileio import atomic_path
from rnopt.models.registry import LoadedModel
from rnopt.numerics import compare_outputs
from rnopt.onnx_model import ModelMeta, save_onnx, write_meta
from rnopt.backends.onnxruntime.session import create_session, run_once
from rnopt.results import ExportCheck, ExportResult

INPUT_NAME = "input"
OUTPUT_NAMES = {"logits": "logits", "features": "embedding"}
CHECK_BATCH_SIZES = (1, 3)
# The export check allows max |diff| up to RTOL of the largest |logit|: fp32 rounding in another
# summation order stays near 1e-6 of it, a wrong graph is off by far more.
RTOL = 1e-4


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs warnings (missing torchvision, deprecations) that mean nothing to users."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def meta_for(loaded: LoadedModel) -> ModelMeta:
    p = loaded.spec.preprocessing
    return ModelMeta(model=loaded.name, input_size=p.crop, resize_size=p.resize, mean=list(p.mean),
                     std=list(p.std), class_names=list(loaded.class_names), weights_sha256=loaded.weights_sha256,
                     weights_source=loaded.weights_source, variant="fp32", history=["export"], head=loaded.head,
                     normalize=loaded.normalize, embedding_dim=loaded.embedding_dim)


# The dynamo exporter emits opset 18+ natively; below that it runs a version converter that fails on
# ordinary ops (Pad), so older opsets go through the TorchScript exporter, which emits them directly.
DYNAMO_MIN_OPSET = 18
MIN_OPSET = 10  # Slice with steps (the CIFAR ResNets' shortcut) exists from opset 10


def to_onnx(loaded: LoadedModel, opset: int | None = None, static_batch: int | None = None) -> onnx.ModelProto:
    """Export with a dynamic batch axis unless `static_batch` fixes it."""
    if static_batch is not None and static_batch <= 0:
        raise RnoptError(f"--static-batch must be positive, got {static_batch}")
    if opset is not None and not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise RnoptError(f"--opset must be between {MIN_OPSET} and {onnx.defs.onnx_opset_version()}, got {opset} "
                         f"(a ResNet's strided slicing needs opset {MIN_OPSET})")
    example = torch.randn(static_batch or 2, *loaded.spec.input_shape)
    try:
        with _quiet_exporter():
            if opset is not None and opset < DYNAMO_MIN_OPSET:
                model = _export_torchscript(loaded.module, example, opset, OUTPUT_NAMES[loaded.head],
                                            dynamic=static_batch is None)
            else:
                model = _export_dynamo(loaded.module, example, opset, OUTPUT_NAMES[loaded.head],
                                       dynamic=static_batch is None)
    except Exception as exc:  # the exporters raise many internal types; the user needs the first line
        reason = first_line(exc).split("  [Caused by")[0]  # the exporter appends pages of graph IR
        raise RnoptError(f"ONNX export of {loaded.name} failed: {reason}") from None
    write_meta(model, meta_for(loaded))
    return model


def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, opset: int | None, output: str,
                   dynamic: bool) -> onnx.ModelProto:
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    program = torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT_NAME],
                                output_names=[output], dynamic_shapes=shapes, opset_version=opset,
                                external_data=False, optimize=True, verbose=False)
    return program.model_proto


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, opset: int, output: str,
                        dynamic: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "batch"}, output: {0: "batch"}} if dynamic else None
    torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                      output_names=[output], dynamic_axes=axes, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def check_onnx(loaded: LoadedModel, path: Path, batch_sizes: tuple[int, ...] = CHECK_BATCH_SIZES,
               seed: int = 0) -> list[ExportCheck]:
    """Run the ONNX file (onnxruntime) and the PyTorch model on the same random inputs."""
    session = create_session(str(path))
    rng = np.random.default_rng(seed)
    checks = []
    for batch in batch_sizes:
        x = rng.standard_normal((batch, *loaded.spec.input_shape), dtype=np.float32)
        with torch.inference_mode():
            expected = loaded.module(torch.from_numpy(x)).numpy()
        try:
            got = run_once(session, x)
        except Exception as exc:
            raise RnoptError(f"exported model fails at batch size {batch}: {first_line(exc)}") from None
        diff = compare_outputs(expected, got)
        checks.append(ExportCheck(batch, diff.max_abs_diff, diff.top1_agreement, diff.max_rel_diff))
    return checks


def export_model(loaded: LoadedModel, output: str | Path, opset: int | None = None,
                 static_batch: int | None = None, rtol: float = RTOL, atol: float | None = None) -> ExportResult:
    """Export, save atomically, check; the file is kept only if the check passes.

    The check bounds max |diff| relative to the largest |logit| (`rtol`), and in absolute terms too when
    `atol` is given.
    """
    if rtol <= 0 or (atol is not None and atol <= 0):
        raise RnoptError("--rtol and --atol must be positive")
    output = Path(output)
    start = time.perf_counter()
    model = to_onnx(loaded, opset, static_batch)
    elapsed = time.perf_counter() - start
    batch_sizes = (static_batch,) if static_batch else CHECK_BATCH_SIZES
    with atomic_path(output) as tmp:
        save_onnx(model, tmp)
        checks = check_onnx(loaded, tmp, batch_sizes)
        _require_agreement(checks, rtol, atol)
        size = tmp.stat().st_size
    opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ExportResult(loaded.name, str(output), opset_used, static_batch is None, atol, checks, True,
                        loaded.weights_sha256, size, elapsed, rtol, loaded.head)


def _require_agreement(checks: list[ExportCheck], rtol: float, atol: float | None) -> None:
    worst_rel = max(c.max_rel_diff or 0.0 for c in checks)
    worst_abs = max(c.max_abs_diff for c in checks)
    if worst_rel > rtol:
        raise RnoptError(f"export check failed: max |diff| is {worst_rel:.3g} of the largest |logit| "
                         f"({worst_abs:.3g} absolute), over --rtol {rtol:g}; no file written")
    if atol is not None and worst_abs > atol:
        raise RnoptError(f"export check failed: max abs difference {worst_abs:.3g} exceeds --atol {atol:g}; "
                         f"no file written")
