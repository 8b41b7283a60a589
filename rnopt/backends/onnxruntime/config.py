"""ONNX Runtime's options for one variant."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rnopt.backends.base import DeployCode, RuntimeConfig
from rnopt.errors import RnoptError
from rnopt.options import option

OPT_LEVELS = ("disable", "basic", "extended", "all")
PROVIDERS = ("cpu", "cuda", "tensorrt")
_LEVEL_NAMES = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL"}
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                   "tensorrt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class OrtConfig(RuntimeConfig):
    opt_level: str = option("all", "--ort-opt-level", "ONNX Runtime's graph optimization at load time "
                            "(default all)", OPT_LEVELS)
    provider: str | None = option(None, "--ort-provider", "ONNX Runtime execution provider (default: the one for "
                                  "--device)", PROVIDERS)
    # ORT's idle worker threads spin for a while after each call: that saves wake-up time (ResNet-20
    # batch 1: 0.46 ms with, 0.83 ms without, on 2 cores). The bench harness pauses between variants so
    # the spinning does not reach the next one.
    spinning: bool = option(True, "--ort-spin", "ONNX Runtime worker threads spin between calls (default on: "
                            "faster, busier CPU)")
    inter_op: int | None = option(None, "--ort-inter-op", "ONNX Runtime inter-op threads: run independent branches "
                                  "in parallel (default: sequential)", metavar="N")
    title: ClassVar[str] = "ONNX Runtime"
    loads: ClassVar[tuple[str, ...]] = ("onnx", "onnx-ort")  # its own fused operators too
    cuda_variants: ClassVar[dict[str, dict[str, Any]]] = {"": {"provider": "cuda"}}
    not_on_cuda: ClassVar[str] = "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"

    @classmethod
    def knobs(cls, objective: str, cores: int) -> list[dict[str, Any]]:
        """Workers that sleep between calls (spinning costs a core's time; with several requests in flight it can
        cost speed), and inter-op threads (only independent branches gain: a ResNet has few)."""
        return [{"spinning": False}] + ([{"inter_op": 2}] if cores >= 2 else [])

    def __post_init__(self) -> None:
        if self.opt_level not in OPT_LEVELS:
            raise RnoptError(f"unknown ONNX Runtime optimization level {self.opt_level!r}: choose "
                             f"{', '.join(OPT_LEVELS)}")
        if self.provider is not None and self.provider not in PROVIDERS:
            raise RnoptError(f"unknown ONNX Runtime provider {self.provider!r}: choose {', '.join(PROVIDERS)}")
        if self.inter_op is not None and self.inter_op <= 0:
            raise RnoptError(f"ONNX Runtime inter-op threads must be positive, got {self.inter_op}")

    def deploy_code(self, device: str, precision: str | None, threads: int | None) -> DeployCode:
        """The session rnopt measured (rnopt.backends.onnxruntime.session.session_options), spelled out with ONNX Runtime's API."""
        lines = ["options = ort.SessionOptions()",
                 f"options.graph_optimization_level = ort.GraphOptimizationLevel.{_LEVEL_NAMES[self.opt_level]}"]
        words = [f"graph optimisation {self.opt_level}"]
        if threads:
            lines.append(f"options.intra_op_num_threads = {threads}")
        words.append(f"{threads} intra-op threads" if threads else "intra-op threads: ONNX Runtime's default")
        if self.inter_op:
            lines += ["options.execution_mode = ort.ExecutionMode.ORT_PARALLEL",
                      f"options.inter_op_num_threads = {self.inter_op}"]
            words.append(f"parallel execution, {self.inter_op} inter-op threads")
        elif threads:
            lines.append("options.inter_op_num_threads = 1")
        if not self.spinning:
            lines += ['options.add_session_config_entry("session.intra_op.allow_spinning", "0")',
                      'options.add_session_config_entry("session.inter_op.allow_spinning", "0")']
        words.append("spinning " + ("on" if self.spinning else "off"))
        provider = self.provider or device
        providers = [_PROVIDER_NAMES[provider]] + (["CPUExecutionProvider"] if provider != "cpu" else [])
        lines += [f"session = ort.InferenceSession(str(MODEL), options, providers={providers!r})",
                  "name = session.get_inputs()[0].name",
                  "return lambda batch: session.run(None, {name: batch})[0]"]
        words.append(f"provider {providers[0]}")
        return DeployCode("onnxruntime" if provider == "cpu" else "onnxruntime-gpu", "import onnxruntime as ort",
                          lines, ", ".join(words))
