"""OpenVINO: ONNX files and OpenVINO IR (.xml) on CPU (and GPU where one is present).

Each batch size gets its own compiled model with a static input shape, as benchmark_app does:
dynamic shapes would cost OpenVINO its best kernels. The precision reported is read back from the
compiled (runtime) model, because OpenVINO on a CPU with bf16 runs an fp32 model in bf16 unless
`INFERENCE_PRECISION_HINT=f32` is set.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from rnopt.backends.base import Backend, ModelFile, ModelInput, RunSettings, Session
from rnopt.backends.openvino.config import OpenVinoConfig
from rnopt.errors import RnoptError
from rnopt.openvino_io import read_model, reason
from rnopt.privacy import import_openvino

ov = import_openvino()  # never `import openvino` first: it sends a usage event (rnopt.privacy)

_RUNTIME_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "u8": "int8", "i8": "int8"}
_COMPUTE_LAYERS = {"Convolution", "GroupConvolution", "FullyConnected", "MatMul"}


def runtime_precision(compiled: Any) -> str:
    """The precision the compute layers (convolutions, fully connected) actually run in."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in _COMPUTE_LAYERS:
            counts[info["runtimePrecision"].astype(str)] += 1
    if not counts:
        return "unknown"
    return _RUNTIME_NAMES.get(counts.most_common(1)[0][0], counts.most_common(1)[0][0])


class _Prepared:
    def __init__(self, requests: Any, data: np.ndarray) -> None:
        self.requests = requests  # an AsyncInferQueue: `start_async` takes whichever request ended first
        self.data = data  # the input tensors share this buffer: keep it alive
        self.in_flight = False  # between `begin` and `end`: every request running, each restarted as it ends


class OpenVinoSession(Session):
    backend = "openvino"

    def __init__(self, core: ov.Core, model_path: Path, device: str, config: dict[str, str], threads: int) -> None:
        self.core, self.model_path, self.ov_device, self.config = core, model_path, device.upper(), config
        self.device = device
        self.threads = threads
        self._compiled: dict[tuple[int, ...], Any] = {}
        self.precision = "unknown"

    def compiled_for(self, shape: tuple[int, ...]) -> Any:
        if shape not in self._compiled:
            try:
                model = read_model(self.core, str(self.model_path))
            except RuntimeError as exc:
                raise RnoptError(f"OpenVINO cannot read {self.model_path.name}: {exc}") from None
            model.reshape(list(shape))
            start = time.perf_counter()
            try:
                self._compiled[shape] = self.core.compile_model(model, self.ov_device, self.config)
            except RuntimeError as exc:
                raise RnoptError(f"OpenVINO cannot compile {self.model_path.name} for {self.ov_device}: "
                                 f"{reason(exc)}") from None
            self.load_time_s = self.load_time_s or time.perf_counter() - start
            self.precision = runtime_precision(self._compiled[shape])
        return self._compiled[shape]

    def prepare(self, batch: np.ndarray) -> Any:
        compiled = self.compiled_for(batch.shape)
        data = np.ascontiguousarray(batch, dtype=np.float32)
        # Tensors sharing the array's memory, set once: the timed call then copies nothing in.
        # With the throughput hint, `streams` requests run at once, as benchmark_app's async mode does.
        requests = ov.AsyncInferQueue(compiled, self.streams)
        for request in requests:
            request.set_input_tensor(ov.Tensor(data, shared_memory=True))
        return _Prepared(requests, data)

    def begin(self, prepared: Any) -> None:
        if len(prepared.requests) > 1 and not prepared.in_flight:
            for _ in range(len(prepared.requests)):
                prepared.requests.start_async()
            prepared.in_flight = True

    def end(self, prepared: Any) -> None:
        if prepared.in_flight:
            prepared.requests.wait_all()
            prepared.in_flight = False

    def run(self, prepared: Any) -> Any:
        queue = prepared.requests
        if len(queue) == 1:
            queue[0].infer()
            return prepared
        # In flight, each start waits for whichever request ends first and starts it again at once: no core
        # waits on a slower request. Otherwise all start together and the call ends with the last.
        for _ in range(len(queue)):
            queue.start_async()
        if not prepared.in_flight:
            queue.wait_all()
        return prepared

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.array(output.requests[0].get_output_tensor(0).data, dtype=np.float32)

    def describe(self) -> str:
        return f"hint={self.config['PERFORMANCE_HINT'].lower()}"


class OpenVinoBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "bf16", "fp16", "int8")
    formats = ("onnx", "openvino-ir")

    @classmethod
    def devices(cls) -> list[str]:
        try:
            return [d.lower() for d in ov.Core().available_devices if d.split(".")[0] in ("CPU", "GPU")]
        except Exception:  # a broken OpenVINO install: the backend is simply not usable
            return []

    @classmethod
    def notes(cls) -> str:
        return "int8 via NNCF (`rnopt quantize --backend openvino`); precision hints fp32/bf16/fp16"

    def load(self, model: ModelInput, spec: RunSettings) -> Session:
        self.check_format(model)
        assert isinstance(model, ModelFile)
        config = spec.config if isinstance(spec.config, OpenVinoConfig) else OpenVinoConfig()
        self.check_device(spec.device)
        self.check_precision(spec.precision)
        if spec.precision == "int8" and model.meta.variant != "int8":
            raise RnoptError(f"{model.path.name} is not quantized: make an int8 model first "
                             f"(`rnopt quantize`, or `rnopt quantize --backend openvino` for NNCF)")
        settings = config.properties(spec.precision, spec.threads)  # deploy.py sets the same (config.deploy_code)
        session = OpenVinoSession(ov.Core(), model.path, spec.device, settings, spec.threads or 0)
        compiled = session.compiled_for((1, 3, model.meta.input_size, model.meta.input_size))
        session.threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) or spec.threads or 0
        if config.hint == "throughput":
            session.streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        return session
