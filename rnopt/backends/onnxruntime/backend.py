"""ONNX Runtime: the CPU provider, and CUDA / TensorRT when the installed onnxruntime has them."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from rnopt.backends.base import Backend, ModelFile, ModelInput, RunSettings, Session
from rnopt.backends.onnxruntime.config import OrtConfig
from rnopt.errors import RnoptError
from rnopt.backends.onnxruntime.session import (DEVICE_OF_PROVIDER, available_providers, create_session,
                                                optimized_graph_sha256, session_options)


class OrtSession(Session):
    backend = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, provider: str, precision: str, threads: int,
                 spinning: bool = True, inter_op: int | None = None) -> None:
        self.session = session
        self.spinning = spinning
        self.inter_op = inter_op
        self.provider = provider
        self.device = DEVICE_OF_PROVIDER[provider]
        self.precision = precision
        self.threads = threads
        self.input_name = session.get_inputs()[0].name
        self.output_names = [session.get_outputs()[0].name]
        self.source: tuple[str, str] | None = None  # (file, graph optimization level): what graph_digest rebuilds
        self._digest: str | None = None

    def prepare(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    def run(self, prepared: dict[str, np.ndarray]) -> Any:
        return self.session.run(self.output_names, prepared)

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.asarray(output[0], dtype=np.float32)

    def graph_digest(self) -> str | None:
        """The optimized graph ORT runs on the CPU (fused operators, folded weights): an ONNX file and its offline-
        fused copy that optimize to the same graph compute the same bits. Other providers compile their own."""
        if self.provider != "cpu" or self.source is None:
            return None
        if self._digest is None:
            path, level = self.source
            self._digest = optimized_graph_sha256(path, session_options(opt_level=level))
        return self._digest

    def describe(self) -> str:
        return (f"provider={self.provider}" + ("" if self.spinning else ",spin=off")
                + (f",inter_op={self.inter_op}" if self.inter_op else ""))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    precisions = ("fp32", "int8")
    formats = ("onnx",)

    @classmethod
    def devices(cls) -> list[str]:
        return sorted({DEVICE_OF_PROVIDER[p] for p in available_providers()})

    @classmethod
    def notes(cls) -> str:
        return f"providers: {', '.join(available_providers())}"

    def load(self, model: ModelInput, spec: RunSettings) -> Session:
        self.check_format(model)
        assert isinstance(model, ModelFile)
        config = spec.config if isinstance(spec.config, OrtConfig) else OrtConfig()
        self.check_precision(spec.precision)
        precision = "int8" if model.meta.variant == "int8" else "fp32"
        if spec.precision not in (None, precision):
            raise RnoptError(f"onnxruntime runs {model.path.name} in the precision it was saved in "
                             f"({precision}), not {spec.precision}; use `rnopt quantize` for int8")
        provider = config.provider or spec.device
        if DEVICE_OF_PROVIDER.get(provider, provider) != spec.device:
            raise RnoptError(f"execution provider {provider!r} does not run on device {spec.device!r}")
        start = time.perf_counter()
        session = create_session(str(model.path), spec.threads, provider, config.opt_level, config.spinning,
                                 config.inter_op)
        threads = spec.threads or os.cpu_count() or 1
        result = OrtSession(session, provider, precision, threads, config.spinning, config.inter_op)
        result.source = (str(model.path), config.opt_level)
        result.load_time_s = time.perf_counter() - start
        return result
