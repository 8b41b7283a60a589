"""Runtimes behind one interface, and the registry that names them. Adding a runtime = one module here."""
from __future__ import annotations

from rnopt.backends.base import Backend, BackendOptions, ModelFile, ModelInput, Session, TorchModel, open_model
from rnopt.backends.onnxruntime import OnnxRuntimeBackend
from rnopt.backends.openvino import OpenVinoBackend
from rnopt.backends.torch import TorchBackend
from rnopt.errors import RnoptError

BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (OnnxRuntimeBackend, OpenVinoBackend, TorchBackend)}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]()
    except KeyError:
        raise RnoptError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}") from None


def parse_backends(text: str) -> list[Backend]:
    """`onnxruntime,openvino,torch` -> backend instances, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise RnoptError("--backend needs at least one name")
    return [get_backend(n) for n in dict.fromkeys(names)]


__all__ = ["BACKENDS", "Backend", "BackendOptions", "ModelFile", "ModelInput", "Session", "TorchModel",
           "get_backend", "open_model", "parse_backends"]
