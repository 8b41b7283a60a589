"""OpenVINO's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import DeployCode, RuntimeConfig
from rnopt.errors import RnoptError
from rnopt.options import option

PERFORMANCE_HINTS = ("latency", "throughput")
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}  # rnopt's name -> INFERENCE_PRECISION_HINT


@dataclass(frozen=True)
class OpenVinoConfig(RuntimeConfig):
    hint: str = option("latency", "--hint", "OpenVINO performance hint (default latency; throughput keeps several "
                       "requests in flight)", PERFORMANCE_HINTS)
    streams: int | None = option(None, "--ov-streams", "OpenVINO NUM_STREAMS: inference streams, each with its share of "
                                 "the cores (default: what the hint picks)", metavar="N")
    runs_model_precision: ClassVar[bool] = False  # None: OpenVINO's own default (bf16 where the CPU has it)
    title: ClassVar[str] = "OpenVINO"
    loads: ClassVar[tuple[str, ...]] = ("onnx", "openvino-ir")  # not ONNX Runtime's fused operators
    not_on_cuda: ClassVar[str] = "OpenVINO runs on CPUs and Intel GPUs, not NVIDIA ones"

    @classmethod
    def for_objective(cls, objective: str) -> dict[str, Any]:
        """For throughput, several requests in flight (its throughput hint); else one at a time."""
        return {"hint": "throughput" if objective == "throughput" else "latency"}

    @classmethod
    def knobs(cls, objective: str, cores: int) -> list[dict[str, Any]]:
        """For throughput: the number of streams the hint would guess, set (1, 2, 4 up to the cores), and the
        latency hint (one stream with every core). For latency one request runs at a time: streams cannot help."""
        if objective != "throughput":
            return []
        return [{"hint": "throughput", "streams": n} for n in (1, 2, 4) if n <= cores] + [{"hint": "latency"}]

    def __post_init__(self) -> None:
        if self.hint not in PERFORMANCE_HINTS:
            raise RnoptError(f"OpenVINO performance hint must be one of {', '.join(PERFORMANCE_HINTS)}, "
                             f"not {self.hint!r}")
        if self.streams is not None and self.streams <= 0:
            raise RnoptError(f"OpenVINO streams must be positive, got {self.streams}")

    def properties(self, precision: str | None, threads: int | None) -> dict[str, str]:
        """The compile properties of a variant: what rnopt's backend sets, and what deploy.py sets."""
        properties = {"PERFORMANCE_HINT": self.hint.upper()}
        if precision in _PRECISION_HINTS:
            properties["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[precision]
        if threads:
            properties["INFERENCE_NUM_THREADS"] = str(threads)
        if self.streams:
            properties["NUM_STREAMS"] = str(self.streams)
        return properties

    def deploy_code(self, device: str, precision: str | None, threads: int | None) -> DeployCode:
        """The compiled model rnopt measured (static input shape, the same properties), with OpenVINO's API."""
        properties = self.properties(precision, threads)
        lines = ["core = ov.Core()",
                 "model = core.read_model(str(MODEL))",
                 "model.reshape([1, 3, CROP, CROP])  # a static shape, as measured: OpenVINO's best kernels",
                 f"compiled = core.compile_model(model, {device.upper()!r}, {properties!r})",
                 "request = compiled.create_infer_request()",
                 "return lambda batch: np.array(request.infer({0: batch})[compiled.output(0)])"]
        words = ", ".join(f"{k}={v}" for k, v in properties.items())
        if self.hint == "throughput":
            words += ("; measured with OPTIMAL_NUMBER_OF_INFER_REQUESTS requests in flight (an AsyncInferQueue of "
                      "that size): deploy.py runs one request at a time")
        return DeployCode("openvino", "import openvino as ov", lines, words)
