"""PyTorch's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass

from rnopt.backends.base import RuntimeConfig
from rnopt.errors import RnoptError

# torch.compile modes: reduce-overhead adds CUDA graphs inside inductor; max-autotune benchmarks kernel
# choices while compiling (on an H200 it had not finished ResNet-50 after 280 s, and cuDNN won anyway).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TorchConfig(RuntimeConfig):
    channels_last: bool = False  # memory format
    compile: bool = False  # torch.compile (inductor)
    cuda_graphs: bool = False  # on CUDA: replay a captured graph instead of launching kernels
    compile_mode: str = "default"  # with compile: one of COMPILE_MODES
    autocast: bool = False  # fp16/bf16 by autocast over fp32 weights instead of a converted, BN-folded model

    def __post_init__(self) -> None:
        if self.compile_mode not in COMPILE_MODES:
            raise RnoptError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            raise RnoptError("--compile-mode applies to torch.compile: add --compile")
