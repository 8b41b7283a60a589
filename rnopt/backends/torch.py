"""PyTorch eager on CPU (and CUDA when present)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rnopt.backends.base import Backend, BackendOptions, ModelInput, Session, TorchModel
from rnopt.errors import RnoptError


class TorchSession(Session):
    backend = "torch"

    def __init__(self, module: torch.nn.Module, device: str, precision: str, threads: int) -> None:
        self.module = module
        self.device = device
        self.precision = precision
        self.threads = threads

    def prepare(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)

    def run(self, prepared: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.module(prepared)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return out

    def to_numpy(self, output: torch.Tensor) -> np.ndarray:
        return output.float().cpu().numpy()


class TorchBackend(Backend):
    name = "torch"

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]

    def load(self, model: ModelInput, options: BackendOptions) -> Session:
        if not isinstance(model, TorchModel):
            raise RnoptError("the torch backend runs built-in model names (e.g. resnet20_cifar10), not .onnx files")
        if options.device not in self.devices():
            raise RnoptError(f"torch cannot use device {options.device!r} here: available {', '.join(self.devices())}")
        if options.precision not in (None, "fp32"):
            raise RnoptError(f"the torch backend runs fp32, not {options.precision}")
        start = time.perf_counter()
        if options.threads:
            torch.set_num_threads(options.threads)
        module = model.loaded.module.to(options.device).eval()
        session = TorchSession(module, options.device, "fp32", torch.get_num_threads())
        session.load_time_s = time.perf_counter() - start
        return session
