"""ONNX Runtime: CPU (and CUDA when the installed onnxruntime has it)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import onnxruntime as ort

from rnopt.backends.base import Backend, BackendOptions, ModelInput, OnnxModel, Session
from rnopt.errors import RnoptError

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, opt_level: str = "all") -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    opts.log_severity_level = 3  # errors only: ORT's warnings are not for our users
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def create_session(path: str, threads: int | None = None, device: str = "cpu",
                   opt_level: str = "all") -> ort.InferenceSession:
    provider = _PROVIDERS.get(device)
    if provider is None or provider not in ort.get_available_providers():
        raise RnoptError(f"onnxruntime cannot use device {device!r} here: this onnxruntime has "
                         f"{', '.join(ort.get_available_providers())}")
    try:
        return ort.InferenceSession(path, session_options(threads, opt_level), providers=[provider])
    except Exception as exc:  # ORT raises its own exception types for unloadable graphs
        raise RnoptError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0][:200]}") from None


class OrtSession(Session):
    backend = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, device: str, precision: str, threads: int) -> None:
        self.session = session
        self.device = device
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


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    @classmethod
    def devices(cls) -> list[str]:
        have = ort.get_available_providers()
        return [d for d, p in _PROVIDERS.items() if p in have]

    def load(self, model: ModelInput, options: BackendOptions) -> Session:
        if not isinstance(model, OnnxModel):
            raise RnoptError("the onnxruntime backend runs .onnx files: export the model first (`rnopt export`)")
        precision = "int8" if model.meta.variant == "int8" else "fp32"
        if options.precision not in (None, precision):
            raise RnoptError(f"onnxruntime runs {model.path.name} in the precision it was saved in "
                             f"({precision}), not {options.precision}; use `rnopt quantize` for int8")
        start = time.perf_counter()
        session = create_session(str(model.path), options.threads, options.device)
        threads = options.threads or session.get_session_options().intra_op_num_threads or _default_threads()
        result = OrtSession(session, options.device, precision, threads)
        result.load_time_s = time.perf_counter() - start
        return result


def _default_threads() -> int:
    import os

    return os.cpu_count() or 1
