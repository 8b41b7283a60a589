"""PyTorch's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass

from rnopt.backends.base import RuntimeConfig


@dataclass(frozen=True)
class TorchConfig(RuntimeConfig):
    channels_last: bool = False  # memory format
    compile: bool = False  # torch.compile (inductor)
    cuda_graphs: bool = False  # on CUDA: replay a captured graph instead of launching kernels
