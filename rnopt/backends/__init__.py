"""Runtimes behind one interface, and the registry that names them."""
from __future__ import annotations

from rnopt.backends.base import Backend, BackendOptions, ModelInput, OnnxModel, Session, TorchModel, open_model
from rnopt.backends.onnxruntime import OnnxRuntimeBackend
from rnopt.backends.torch import TorchBackend
from rnopt.errors import RnoptError

BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (OnnxRuntimeBackend, TorchBackend)}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise RnoptError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "Backend", "BackendOptions", "ModelInput", "OnnxModel", "Session", "TorchModel",
           "get_backend", "open_model"]
