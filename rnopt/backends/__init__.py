"""Runtimes behind one interface, and the registry that names them.

Adding a runtime = one package here (`config.py` with its typed options, `backend.py` with its Backend)
and one line in `RUNTIMES`. Nothing else names runtimes: the planner, the executors, the CLI's
`--backend` and `rnopt backends` all read this registry.

A runtime's backend module is imported only when that runtime is asked for, so a machine without
OpenVINO (or ONNX Runtime) still runs the others, and `rnopt backends` says what is missing instead of
failing. Its config module imports nothing but rnopt, so a spec can name any runtime anywhere.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from rnopt.backends.base import Backend, ModelFile, ModelInput, RuntimeConfig, Session, TorchModel
from rnopt.errors import RnoptError


@dataclass(frozen=True)
class Runtime:
    backend: str  # "module:Class" of its Backend
    config: str  # "module:Class" of its RuntimeConfig
    package: str  # the pip package that provides the runtime


RUNTIMES: dict[str, Runtime] = {
    "onnxruntime": Runtime("rnopt.backends.onnxruntime.backend:OnnxRuntimeBackend",
                           "rnopt.backends.onnxruntime.config:OrtConfig", "onnxruntime"),
    "openvino": Runtime("rnopt.backends.openvino.backend:OpenVinoBackend",
                        "rnopt.backends.openvino.config:OpenVinoConfig", "openvino"),
    "torch": Runtime("rnopt.backends.torch.backend:TorchBackend", "rnopt.backends.torch.config:TorchConfig",
                     "torch"),
}
BACKEND_NAMES: tuple[str, ...] = tuple(RUNTIMES)  # the built-in ones; `runtime_names()` includes registered ones


def register_runtime(name: str, backend: str, config: str, package: str) -> None:
    """Add a runtime from outside rnopt: `backend` and `config` are "module:Class" paths of its Backend and its
    RuntimeConfig. The planner, executors, evaluation and `rnopt backends` then offer it like the built-in ones."""
    if name in RUNTIMES:
        raise RnoptError(f"a runtime named {name!r} is already registered")
    RUNTIMES[name] = Runtime(backend, config, package)


def runtime_names() -> tuple[str, ...]:
    return tuple(RUNTIMES)


def _runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise RnoptError(f"unknown backend {name!r}: choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def _attribute(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def config_class(name: str) -> type[RuntimeConfig]:
    """The typed options of runtime `name` (imports rnopt only, never the runtime itself)."""
    return _attribute(_runtime(name).config)


def backend_class(name: str) -> type[Backend]:
    """The Backend class registered as `name`; a clear error when it is unknown or its runtime is missing."""
    runtime = _runtime(name)
    try:
        return _attribute(runtime.backend)
    except ImportError as exc:
        raise RnoptError(f"the {name} backend needs the Python package {exc.name or runtime.package!r}, which is "
                         f"not installed: pip install {runtime.package}") from None


def describe_backends() -> list[dict]:
    """What `rnopt backends` lists: each registered runtime, usable or not, and why not."""
    from rnopt.environment import snapshot

    listing = []
    for name in RUNTIMES:
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


__all__ = ["BACKEND_NAMES", "RUNTIMES", "Backend", "ModelFile", "ModelInput", "Runtime", "RuntimeConfig", "Session",
           "TorchModel", "backend_class", "config_class", "describe_backends", "get_backend", "register_runtime",
           "runtime_names"]
