"""ONNX Runtime's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import RuntimeConfig
from rnopt.errors import RnoptError

OPT_LEVELS = ("disable", "basic", "extended", "all")
PROVIDERS = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True)
class OrtConfig(RuntimeConfig):
    opt_level: str = "all"  # graph optimization at load time
    provider: str | None = None  # execution provider; None: the one for the spec's device
    # ORT's idle worker threads spin for a while after each call: that saves wake-up time (ResNet-20
    # batch 1: 0.46 ms with, 0.83 ms without, on 2 cores). The bench harness pauses between variants so
    # the spinning does not reach the next one.
    spinning: bool = True
    inter_op: int | None = None  # threads for independent branches (parallel execution mode)
    title: ClassVar[str] = "ONNX Runtime"
    loads: ClassVar[tuple[str, ...]] = ("onnx", "onnx-ort")  # its own fused operators too
    cuda_variants: ClassVar[dict[str, dict[str, Any]]] = {"": {"provider": "cuda"}}
    not_on_cuda: ClassVar[str] = "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"

    def __post_init__(self) -> None:
        if self.opt_level not in OPT_LEVELS:
            raise RnoptError(f"unknown ONNX Runtime optimization level {self.opt_level!r}: choose "
                             f"{', '.join(OPT_LEVELS)}")
        if self.provider is not None and self.provider not in PROVIDERS:
            raise RnoptError(f"unknown ONNX Runtime provider {self.provider!r}: choose {', '.join(PROVIDERS)}")
        if self.inter_op is not None and self.inter_op <= 0:
            raise RnoptError(f"ONNX Runtime inter-op threads must be positive, got {self.inter_op}")
