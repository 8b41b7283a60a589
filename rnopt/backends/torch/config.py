"""PyTorch's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import RuntimeConfig
from rnopt.errors import RnoptError

# torch.compile modes: reduce-overhead adds CUDA graphs inside inductor; max-autotune benchmarks kernel
# choices while compiling (on an H200 it had not finished ResNet-50 after 280 s, and cuDNN won anyway) and
# also adds inductor's CUDA graphs (torch._inductor.list_mode_options).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TorchConfig(RuntimeConfig):
    channels_last: bool = False  # memory format
    compile: bool = False  # torch.compile (inductor)
    cuda_graphs: bool = False  # on CUDA: replay a captured graph instead of launching kernels
    compile_mode: str = "default"  # with compile: one of COMPILE_MODES
    autocast: bool = False  # fp16/bf16 by autocast over fp32 weights instead of a converted, BN-folded model
    title: ClassVar[str] = "PyTorch"
    loads: ClassVar[tuple[str, ...]] = ("torch",)
    # On CUDA: fp32 as the baseline, and fp16 with CUDA graphs, the fastest path that needs no compilation
    # (benchmarks/README.md "GPU").
    cuda_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "fp32": {}, "fp16, CUDA graphs": {"precision": "fp16", "channels_last": True, "cuda_graphs": True}}
    not_on_cuda: ClassVar[str] = "this PyTorch sees no CUDA device"

    def __post_init__(self) -> None:
        if self.compile_mode not in COMPILE_MODES:
            raise RnoptError(f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            raise RnoptError("--compile-mode applies to torch.compile: add --compile")
        if self.compile_mode == "reduce-overhead" and self.cuda_graphs:
            raise RnoptError("--compile-mode reduce-overhead replays CUDA graphs of its own (inductor's): drop "
                             "--cuda-graphs, or keep it with --compile-mode default")

    def inductor_mode(self) -> str:
        """The mode handed to torch.compile. rnopt's own CUDA graph (--cuda-graphs) captures the compiled
        module whole, so max-autotune then leaves out inductor's graphs rather than nest one capture in another."""
        if self.compile_mode == "max-autotune" and self.cuda_graphs:
            return "max-autotune-no-cudagraphs"
        return self.compile_mode
