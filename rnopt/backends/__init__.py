"""Runtimes behind one interface, and the registry that names them. Adding a runtime = one module here
and one line in `_MODULES`.

A runtime's module is imported only when that runtime is asked for, so a machine without OpenVINO
(or ONNX Runtime) still runs the others, and `rnopt backends` says what is missing instead of failing.
"""
from __future__ import annotations

import importlib

from rnopt.backends.base import Backend, BackendOptions, ModelFile, ModelInput, Session, TorchModel, open_model
from rnopt.errors import RnoptError

# backend name -> (module, class, the pip package that provides its runtime)
_MODULES: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("rnopt.backends.onnxruntime", "OnnxRuntimeBackend", "onnxruntime"),
    "openvino": ("rnopt.backends.openvino", "OpenVinoBackend", "openvino"),
    "torch": ("rnopt.backends.torch", "TorchBackend", "torch"),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_MODULES)


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered as `name`; a clear error when it is unknown or its runtime is missing."""
    if name not in _MODULES:
        raise RnoptError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    module_name, class_name, package = _MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RnoptError(f"the {name} backend needs the Python package {exc.name or package!r}, which is not "
                         f"installed: pip install {package}") from None
    return getattr(module, class_name)


def describe_backends() -> list[dict]:
    """What `rnopt backends` lists: each registered runtime, usable or not, and why not."""
    from rnopt.environment import snapshot

    listing = []
    for name in BACKEND_NAMES:
        try:
            cls = backend_class(name)
            devices, precisions, notes = cls.devices(), list(cls.precisions), cls.notes()
            version = snapshot().versions.get(name)
        except RnoptError as exc:  # its runtime is not installed
            devices, precisions, notes, version = [], [], str(exc), None
        listing.append({"name": name, "devices": devices, "precisions": precisions, "version": version,
                        "notes": notes})
    return listing


def get_backend(name: str) -> Backend:
    return backend_class(name)()


def parse_backends(text: str) -> list[Backend]:
    """`onnxruntime,openvino,torch` -> backend instances, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise RnoptError("--backend needs at least one name")
    return [get_backend(n) for n in dict.fromkeys(names)]


__all__ = ["BACKEND_NAMES", "Backend", "BackendOptions", "ModelFile", "ModelInput", "Session", "TorchModel",
           "backend_class", "describe_backends", "get_backend", "open_model", "parse_backends"]
