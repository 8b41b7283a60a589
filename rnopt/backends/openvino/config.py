"""OpenVINO's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import RuntimeConfig
from rnopt.errors import RnoptError

PERFORMANCE_HINTS = ("latency", "throughput")


@dataclass(frozen=True)
class OpenVinoConfig(RuntimeConfig):
    hint: str = "latency"  # PERFORMANCE_HINT: throughput keeps several requests in flight
    runs_model_precision: ClassVar[bool] = False  # None: OpenVINO's own default (bf16 where the CPU has it)
    title: ClassVar[str] = "OpenVINO"
    loads: ClassVar[tuple[str, ...]] = ("onnx", "openvino-ir")  # not ONNX Runtime's fused operators
    not_on_cuda: ClassVar[str] = "OpenVINO runs on CPUs and Intel GPUs, not NVIDIA ones"

    @classmethod
    def for_objective(cls, objective: str) -> dict[str, Any]:
        """For throughput, several requests in flight (its throughput hint); else one at a time."""
        return {"hint": "throughput" if objective == "throughput" else "latency"}

    def __post_init__(self) -> None:
        if self.hint not in PERFORMANCE_HINTS:
            raise RnoptError(f"OpenVINO performance hint must be one of {', '.join(PERFORMANCE_HINTS)}, "
                             f"not {self.hint!r}")
