"""ONNX Runtime: the CPU provider, and CUDA / TensorRT when the installed onnxruntime has them."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from rnopt.backends.base import Backend, BackendOptions, ModelInput, Session
from rnopt.backends.onnx_cache import as_model_file
from rnopt.errors import RnoptError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_DEVICE_OF = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, opt_level: str = "all", spinning: bool = True,
                    inter_op: int | None = None) -> ort.SessionOptions:
    if opt_level not in OPT_LEVELS:
        raise RnoptError(f"unknown ONNX Runtime optimization level {opt_level!r}: choose {', '.join(OPT_LEVELS)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    opts.log_severity_level = 3  # errors only: ORT's warnings are not for our users
    if threads:
        opts.intra_op_num_threads = threads
    if inter_op:
        # Inter-op threads run independent branches side by side (in a ResNet, a downsampling shortcut
        # beside its block), which ORT does only in parallel execution mode.
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        opts.inter_op_num_threads = inter_op
    elif threads:
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def available_providers() -> list[str]:
    """rnopt's names for the execution providers this onnxruntime build has."""
    have = ort.get_available_providers()
    return [name for name, provider in PROVIDERS.items() if provider in have]


def create_session(path: str, threads: int | None = None, provider: str = "cpu", opt_level: str = "all",
                   spinning: bool = True, inter_op: int | None = None) -> ort.InferenceSession:
    if provider not in PROVIDERS or provider not in available_providers():
        raise RnoptError(f"this onnxruntime has no {provider!r} execution provider: it has "
                         f"{', '.join(available_providers())} (install onnxruntime-gpu for cuda/tensorrt)")
    providers = [PROVIDERS[provider]] + (["CPUExecutionProvider"] if provider != "cpu" else [])
    try:
        return ort.InferenceSession(path, session_options(threads, opt_level, spinning, inter_op), providers=providers)
    except Exception as exc:  # ORT raises its own exception types for unloadable graphs
        raise RnoptError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:200]}") from None


class OrtSession(Session):
    backend = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, provider: str, precision: str, threads: int,
                 spinning: bool = True, inter_op: int | None = None) -> None:
        self.session = session
        self.spinning = spinning
        self.inter_op = inter_op
        self.provider = provider
        self.device = _DEVICE_OF[provider]
        self.precision = precision
        self.threads = threads
        self.input_name = session.get_inputs()[0].name
        self.output_names = [session.get_outputs()[0].name]

    def prepare(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def run(self, prepared: dict[str, np.ndarray]) -> Any:
        return self.session.run(self.output_names, prepared)

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.asarray(output[0], dtype=np.float32)

    def describe(self) -> str:
        return (f"provider={self.provider}" + ("" if self.spinning else ",spin=off")
                + (f",inter_op={self.inter_op}" if self.inter_op else ""))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "int8")

    @classmethod
    def devices(cls) -> list[str]:
        return sorted({_DEVICE_OF[p] for p in available_providers()})

    @classmethod
    def notes(cls) -> str:
        return f"providers: {', '.join(available_providers())}"

    def load(self, model: ModelInput, options: BackendOptions) -> Session:
        file = as_model_file(model)
        if file.format != "onnx":
            raise RnoptError(f"onnxruntime runs .onnx files, not {file.path.name}: use --backend openvino")
        self.check_precision(options.precision)
        precision = "int8" if file.meta.variant == "int8" else "fp32"
        if options.precision not in (None, precision):
            raise RnoptError(f"onnxruntime runs {file.path.name} in the precision it was saved in "
                             f"({precision}), not {options.precision}; use `rnopt quantize` for int8")
        provider = options.ort_provider or options.device
        if _DEVICE_OF.get(provider, provider) != options.device:
            raise RnoptError(f"execution provider {provider!r} does not run on device {options.device!r}")
        start = time.perf_counter()
        spinning = options.ort_spinning
        session = create_session(str(file.path), options.threads, provider, options.ort_opt_level, spinning,
                                 options.ort_inter_op)
        threads = options.threads or os.cpu_count() or 1
        result = OrtSession(session, provider, precision, threads, spinning, options.ort_inter_op)
        result.load_time_s = time.perf_counter() - start
        return result
