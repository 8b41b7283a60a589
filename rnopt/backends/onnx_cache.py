"""Built-in model names given to an ONNX-based backend: exported on the fly, checked, and cached.

The cache key is the model name, the weights' sha256, the class names and the torch version, so a
cached file is reused only when it would be the same export with the same metadata. Random-initialised
models are never cached across runs (every run draws new weights): they go to a temporary folder,
removed when the process ends. Within a process each model is exported once, however many backends
ask for it.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

from rnopt.backends.base import ModelFile, ModelInput
from rnopt.models.registry import LoadedModel
from rnopt.onnx_model import load_onnx, read_meta


def cache_dir() -> Path:
    root = os.environ.get("RNOPT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnopt"
    return Path(root) / "onnx"


def as_model_file(model: ModelInput) -> ModelFile:
    """`model` itself if it is a file, else its ONNX export (from the cache when possible)."""
    if isinstance(model, ModelFile):
        return model
    if model.onnx_file is None:
        model.onnx_file = _export(model.loaded)
    return model.onnx_file


def _export(loaded: LoadedModel) -> ModelFile:
    from rnopt.export import export_model

    if loaded.weights_sha256:
        classes = hashlib.sha256("\n".join(loaded.class_names).encode()).hexdigest()[:8]
        key = f"{loaded.name}-{loaded.weights_sha256[:16]}-{classes}-torch{torch.__version__}"
        path = cache_dir() / f"{key}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        scratch = tempfile.mkdtemp(prefix="rnopt-")
        atexit.register(shutil.rmtree, scratch, True)
        path = Path(scratch) / f"{loaded.name}-random.onnx"
    if not path.exists():
        export_model(loaded, path)  # checked against PyTorch before it is kept
    return ModelFile(path, read_meta(load_onnx(path, load_weights=False), path))
