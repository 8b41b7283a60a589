"""Built-in model names given to an ONNX-based backend: exported on the fly, checked, and cached.

The cache key is the model name, the weights' sha256, the class count and the torch version, so a
cached file is reused only when it would be byte-for-byte the same export. Random-initialised
models are never cached (every run draws new weights).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from rnopt.backends.base import ModelFile, ModelInput
from rnopt.onnx_model import load_onnx, read_meta


def cache_dir() -> Path:
    root = os.environ.get("RNOPT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnopt"
    return Path(root) / "onnx"


def as_model_file(model: ModelInput) -> ModelFile:
    """`model` itself if it is a file, else its ONNX export (from the cache when possible)."""
    if isinstance(model, ModelFile):
        return model
    from rnopt.export import export_model

    loaded = model.loaded
    if loaded.weights_sha256:
        key = f"{loaded.name}-{loaded.weights_sha256[:16]}-{len(loaded.class_names)}c-torch{torch.__version__}"
        path = cache_dir() / f"{key}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="rnopt-")) / f"{loaded.name}-random.onnx"
    if not path.exists():
        export_model(loaded, path)  # checked against PyTorch before it is kept
    return ModelFile(path, read_meta(load_onnx(path, load_weights=False), path))
