"""Real reduced-precision PyTorch models: BatchNorm folded into the convolutions, weights converted once.

Autocast keeps fp32 weights and casts every one of them to fp16/bf16 inside every forward (and inside every
CUDA-graph replay): measured on an H200, ResNet-50 fp16 under autocast was 1.34x slower at batch 1 than the
same module converted with `.half()`. Folding BatchNorm first removes a normalisation pass per block and
keeps the folded scale in fp32 arithmetic until the single conversion. Autocast stays available as an
explicit option (`--autocast`), for comparison.
"""
from __future__ import annotations

import copy

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def fold_batchnorm(module: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """A copy of `module` (eval mode) with every BatchNorm that follows a convolution folded into it, and
    whether folding worked; a model torch.fx cannot trace comes back unfolded (still correct, a little slower)."""
    from torch.fx.experimental.optimization import fuse

    module = module.eval()
    try:
        return fuse(module, inplace=False), True
    except Exception:  # noqa: BLE001 - any tracing failure: fall back to the module as it is
        return copy.deepcopy(module), False


def reduced_precision_module(module: torch.nn.Module, precision: str) -> tuple[torch.nn.Module, bool]:
    """`module` with BatchNorm folded and its weights converted to `precision` (fp16 or bf16), and whether
    BatchNorm was folded. The input must be converted too (the session's `prepare` does it once per batch)."""
    folded, ok = fold_batchnorm(module)
    return folded.to(DTYPES[precision]), ok
