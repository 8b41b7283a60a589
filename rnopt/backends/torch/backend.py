"""PyTorch: eager or torch.compile, fp32 or bf16/fp16, CPU or CUDA, NCHW or channels_last.

bf16/fp16 run a real reduced-precision model (BatchNorm folded, weights converted once, each batch's input
converted once in `prepare`: reduced.py); `--autocast` runs autocast over the fp32 model instead.

On CUDA every run ends with a device synchronisation, so the wall-clock time of `run` is the time
of the kernels, not of their launch. cuDNN picks its fastest convolution algorithm per input shape
(`cudnn.benchmark`, settled during warm-up), as a tuned deployment would. `fp32` on CUDA means IEEE
fp32; `tf32` lets cuDNN convolutions use TF32 tensor cores, which is PyTorch's own default.
`--cuda-graphs` captures one graph per input shape and replays it: on a GPU that eager PyTorch cannot keep
busy (ResNet-50 on an H100), the kernel launches, not the kernels, set the latency.
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

import numpy as np
import torch

from rnopt.backends.base import Backend, ModelInput, RunSettings, Session, TorchModel
from rnopt.backends.torch.config import TorchConfig
from rnopt.backends.torch.reduced import reduced_precision_module
from rnopt.environment import snapshot
from rnopt.errors import RnoptError

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision_for_device(precision: str, device: str) -> None:
    """bf16 needs CPU support to be fast (or CUDA); fp16 autocast and TF32 are CUDA features."""
    if precision in ("fp16", "tf32") and device == "cpu":
        raise RnoptError(f"PyTorch {precision} runs on CUDA only: use --precision bf16 on a CPU (or --device cuda)")
    if precision == "bf16" and device == "cpu" and not snapshot().has_bf16:
        raise RnoptError("this CPU has no native bf16 (avx512_bf16/amx): PyTorch bf16 would be emulated and slow")


class _CapturedGraph:
    """A CUDA graph captured for one input shape; replaying it skips every kernel launch.

    The graph reads a fixed input tensor and writes a fixed output tensor, so each new batch is copied
    into `input` first and the output is overwritten by the next replay.
    """

    def __init__(self, session: "TorchSession", example: torch.Tensor) -> None:
        self.input = example.clone()
        self.loaded: torch.Tensor | None = None  # the batch whose data `input` holds now
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up on a side stream, as torch.cuda.graphs requires
                session._forward(self.input)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = session._forward(self.input)


class _GraphBatch:
    """A prepared batch for a captured graph. Its copy into the graph's input happens only when another
    batch ran last, so a timing loop that replays one batch times the graph alone."""

    def __init__(self, graph: _CapturedGraph, tensor: torch.Tensor) -> None:
        self.graph = graph
        self.tensor = tensor

    def replay(self) -> torch.Tensor:
        if self.graph.loaded is not self.tensor:
            self.graph.input.copy_(self.tensor)
            self.graph.loaded = self.tensor
        self.graph.graph.replay()
        return self.graph.output


class TorchSession(Session):
    backend = "torch"

    def __init__(self, module: torch.nn.Module, device: str, config: TorchConfig, precision: str) -> None:
        self.module = module
        self.device = device
        self.precision = precision
        self.threads = torch.get_num_threads()
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.compiled = config.compile
        self.compile_mode = config.compile_mode
        self.cuda_graphs = config.cuda_graphs
        self.autocast = config.autocast and precision in _AUTOCAST_DTYPES
        self.input_dtype = _AUTOCAST_DTYPES[precision] if precision in _AUTOCAST_DTYPES and not self.autocast \
            else torch.float32
        self.batchnorm_folded: bool | None = None  # set by the backend for a reduced-precision model
        self._graphs: dict[torch.Size, _CapturedGraph] = {}  # one capture per input shape, reused by eval

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.autocast:
            return contextlib.nullcontext()
        # The cast cache saves nothing in inference (each weight is cast once per forward), and a
        # CUDA graph must not capture cached casts.
        return torch.autocast(device_type=self.device, dtype=_AUTOCAST_DTYPES[self.precision], cache_enabled=False)

    def _cudnn(self) -> contextlib.AbstractContextManager:
        if self.device != "cuda":
            return contextlib.nullcontext()
        # Per call rather than process-wide: an fp32 and a tf32 variant may be timed side by side.
        # (The final fully connected layer goes through cuBLAS, which PyTorch keeps in IEEE fp32.)
        return torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                          allow_tf32=self.precision == "tf32")

    def prepare(self, batch: np.ndarray) -> Any:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        tensor = tensor.to(self.input_dtype).contiguous(memory_format=self.memory_format)
        if not self.cuda_graphs:
            return tensor
        if tensor.shape not in self._graphs:
            self._graphs[tensor.shape] = _CapturedGraph(self, tensor)
        return _GraphBatch(self._graphs[tensor.shape], tensor)

    def _forward(self, tensor: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._cudnn(), self._autocast():
            return self.module(tensor)

    def _launch(self, prepared: Any) -> torch.Tensor:
        """Queue one batch's work (on CUDA it may still be running when this returns)."""
        return prepared.replay() if isinstance(prepared, _GraphBatch) else self._forward(prepared)

    def run(self, prepared: Any) -> torch.Tensor:
        out = self._launch(prepared)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return out

    def timed_run(self, prepared: Any) -> float:
        if self.device != "cuda":
            return super().timed_run(prepared)
        # CUDA events time the GPU work itself, from the stream's point of view. The end event is queued
        # right behind the work, as a bare replay loop does: a synchronisation before it would add the
        # host's wake-up and the event's launch to every sample.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self._launch(prepared)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def to_numpy(self, output: torch.Tensor) -> np.ndarray:
        return output.float().cpu().numpy()

    def release(self) -> None:
        self._graphs.clear()  # each captured graph holds its own memory pool
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def peak_device_memory_mb(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda" else None

    def describe(self) -> str:
        compiled = "compile" + (f"({self.compile_mode})" if self.compile_mode != "default" else "")
        parts = [compiled if self.compiled else "eager"] + (["cuda_graphs"] if self.cuda_graphs else [])
        if self.precision in _AUTOCAST_DTYPES:
            parts.append("autocast" if self.autocast else
                         f"{self.precision} model" + ("" if self.batchnorm_folded else ", BatchNorm not folded"))
        if self.memory_format is torch.channels_last:
            parts.append("channels_last")
        return ",".join(parts)


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "bf16", "fp16", "tf32")
    formats = ("torch",)

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    @classmethod
    def notes(cls) -> str:
        bf16 = "" if snapshot().has_bf16 else " (no native bf16 on this CPU)"
        return (f"eager or --compile [--compile-mode]; --channels-last; bf16 model{bf16} (--autocast: autocast); "
                f"CUDA: fp16, tf32, --cuda-graphs")

    def load(self, model: ModelInput, spec: RunSettings) -> Session:
        if not isinstance(model, TorchModel):
            raise RnoptError("the torch backend runs built-in model names (e.g. resnet20_cifar10), not model files")
        config = spec.config if isinstance(spec.config, TorchConfig) else TorchConfig()
        if spec.device == "cuda" and not torch.cuda.is_available():
            raise RnoptError("CUDA was asked for but this PyTorch sees no CUDA device "
                             f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)")
        self.check_device(spec.device)
        self.check_precision(spec.precision)
        precision = spec.precision or "fp32"
        check_precision_for_device(precision, spec.device)
        if config.cuda_graphs and spec.device != "cuda":
            raise RnoptError("CUDA graphs need --device cuda")
        start = time.perf_counter()
        if spec.threads:
            torch.set_num_threads(spec.threads)
        module, folded = model.loaded.module, None
        if precision in _AUTOCAST_DTYPES and not config.autocast:
            module, folded = reduced_precision_module(module, precision)  # a converted copy
        elif spec.device != "cpu" or config.channels_last:
            module = copy.deepcopy(module)  # .to() works in place: leave the caller's model as it was
        module = module.to(spec.device).eval()
        if config.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if config.compile:
            module = torch.compile(module, mode=config.inductor_mode())
        session = TorchSession(module, spec.device, config, precision)
        session.batchnorm_folded = folded
        if config.compile:  # compile now, so that its time is reported as load time (for the first shape)
            size = model.loaded.spec.preprocessing.crop
            session.run(session.prepare(np.zeros((1, 3, size, size), dtype=np.float32)))
        session.load_time_s = time.perf_counter() - start
        return session
