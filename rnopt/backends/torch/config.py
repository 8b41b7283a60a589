"""PyTorch's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import RuntimeConfig
from rnopt.errors import RnoptError
from rnopt.options import option

# torch.compile modes: reduce-overhead adds CUDA graphs inside inductor; max-autotune benchmarks kernel
# choices while compiling (on an H200 it had not finished ResNet-50 after 280 s, and cuDNN won anyway) and
# also adds inductor's CUDA graphs (torch._inductor.list_mode_options).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TorchConfig(RuntimeConfig):
    channels_last: bool = option(False, "--channels-last", "torch: channels_last memory format")
    compile: bool = option(False, "--compile", "torch: torch.compile (inductor), its compile time counted as load "
                           "time; on CUDA add --cuda-graphs, or kernel launches dominate")
    cuda_graphs: bool = option(False, "--cuda-graphs", "torch on CUDA: replay a captured CUDA graph")
    compile_mode: str = option("default", "--compile-mode", "torch.compile mode (default: default). max-autotune "
                               "times kernel choices while compiling: minutes for a ResNet-50 (not finished after "
                               "280 s on an H200), rarely faster than cuDNN. reduce-overhead and max-autotune add "
                               "inductor's own CUDA graphs; with --cuda-graphs, max-autotune leaves them out and "
                               "reduce-overhead is refused", COMPILE_MODES)
    autocast: bool = option(False, "--autocast", "torch fp16/bf16 by autocast over fp32 weights (for comparison); "
                            "default: a real fp16/bf16 model, BatchNorm folded, weights converted once")
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
