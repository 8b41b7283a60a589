"""Artifacts: the model a spec names, made ready for a runtime. Conversion happens here, before loading.

`artifact_for` turns what a user typed (a built-in name with optional weights, or a model file) into an
`ArtifactSpec`. An `ArtifactStore` materialises one for a runtime: a model file is checked against its
sha256 and opened; a built-in name is built in PyTorch for the torch runtime, or exported to ONNX,
checked against PyTorch and cached for the others. The cache key holds everything that changes the
exported bytes: model name, weights sha256, class names, head, opset, dynamic batch, torch version.
Within a process each model is built and exported once, however many variants ask for it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rnopt.backends.base import ModelFile, ModelInput, TorchModel
from rnopt.errors import RnoptError, first_line
from rnopt.fileio import readable_file, replacing, sha256_of, write_text
from rnopt.notices import notice

if TYPE_CHECKING:
    from rnopt.models.registry import LoadedModel
    from rnopt.spec import ArtifactSpec

MODEL_SUFFIXES = (".onnx", ".xml")


def cache_dir() -> Path:
    root = os.environ.get("RNOPT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnopt"
    return Path(root) / "onnx"


def file_sha256(path: Path) -> str:
    """An ONNX file's sha256, or an OpenVINO IR's (.xml then .bin)."""
    weights = path.with_suffix(".bin")
    return sha256_of(path, weights) if path.suffix == ".xml" and weights.exists() else sha256_of(path)


def open_model_file(path: str | Path) -> ModelFile:
    """An ONNX or IR file with its rnopt metadata (inferred for a foreign file)."""
    from rnopt.onnx_model import load_onnx, read_ir_meta, read_meta

    path = Path(path)
    if path.suffix == ".xml":
        return ModelFile(path, read_ir_meta(path))
    return ModelFile(path, read_meta(load_onnx(path, load_weights=False), path))


def is_model_name(arg: str) -> bool:
    from rnopt.models.registry import MODELS

    return arg in MODELS


def artifact_for(arg: str, weights: str | None = None, num_classes: int | None = None, labels: str | None = None,
                 head: str | None = None, opset: int | None = None, normalize: bool = False) -> ArtifactSpec:
    """The artifact a command-line model argument names: a model file, or a built-in name with its weights.

    `head` (logits or features) and `normalize` make a built-in name's embedding model; a file already
    is one or the other (its metadata says which), so for a file they may only repeat what it holds.
    """
    from rnopt.spec import ArtifactSpec

    path = Path(arg)
    if path.suffix in MODEL_SUFFIXES or (path.exists() and not is_model_name(arg)):
        given = [flag for flag, value in (("--weights", weights), ("--num-classes", num_classes), ("--labels", labels))
                 if value]
        if given:
            raise RnoptError(f"{', '.join(given)} applies to built-in model names, not to the model file {arg} "
                             f"(its classes are in its metadata: export it again to change them)")
        meta = open_model_file(path).meta  # a clear error now for a missing or broken file
        if head not in (None, meta.head) or (normalize and not meta.normalize):
            raise RnoptError(f"{arg} outputs {meta.head}{' (L2-normalised)' if meta.normalize else ''}: --head and "
                             f"--normalize apply to built-in names; export the model again with them")
        recipe = ";".join(meta.history) or None
        return ArtifactSpec(str(path.resolve()), file_sha256(path), head=meta.head, recipe=recipe,
                            normalize=meta.normalize)
    if not is_model_name(arg):
        if not path.suffix and len(path.parts) == 1:  # looks like a name: say which names there are
            from rnopt.models.registry import get_spec

            get_spec(arg)
        raise RnoptError(f"{arg!r} is neither a model file (.onnx, .xml) nor a built-in model name "
                         f"(`rnopt models` lists them)")
    digest = _weights_sha256(arg, weights)
    weights_path = str(Path(weights).resolve()) if weights else None
    labels_path = str(Path(labels).resolve()) if labels else None
    labels_digest = sha256_of(readable_file(labels, "labels file")) if labels else None
    return ArtifactSpec(arg, digest, weights_path, num_classes, labels_path, head or "logits", opset,
                        normalize=normalize, labels_sha256=labels_digest)


def _weights_sha256(name: str, weights: str | None) -> str | None:
    from rnopt.models.registry import get_spec

    if weights:
        return sha256_of(readable_file(weights, "weights file"))
    bundled = get_spec(name).weights
    return bundled.sha256 if bundled else None


class ArtifactStore:
    """Builds, exports and caches the artifacts specs name; runtimes get them ready to load."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._loaded: dict[ArtifactSpec, LoadedModel] = {}
        self._files: dict[ArtifactSpec, ModelFile] = {}

    def model_for(self, artifact: ArtifactSpec, formats: tuple[str, ...]) -> ModelInput:
        """`artifact` in one of `formats`: the file itself, the PyTorch model, or its ONNX export."""
        if artifact.is_file:
            return self.model_file(artifact)
        if "torch" in formats:
            return TorchModel(self.loaded(artifact))
        return self.onnx_file(artifact)

    def model_file(self, artifact: ArtifactSpec) -> ModelFile:
        if artifact not in self._files:
            path = readable_file(artifact.source, "model file")
            if artifact.sha256 and file_sha256(path) != artifact.sha256:
                raise RnoptError(f"{path} has changed since this variant was specified (sha256 differs): "
                                 f"plan the variants again")
            self._files[artifact] = open_model_file(path)
        return self._files[artifact]

    def loaded(self, artifact: ArtifactSpec) -> LoadedModel:
        """The built-in model with its weights (checked against the spec's sha256)."""
        from rnopt.models.registry import create_model

        if artifact not in self._loaded:
            loaded = create_model(artifact.source, artifact.weights, artifact.num_classes, artifact.labels,
                                  artifact.head, artifact.normalize)
            if artifact.sha256 != loaded.weights_sha256:
                raise RnoptError(f"the weights of {artifact.source} have changed since this variant was specified "
                                 f"(sha256 differs): plan the variants again")
            self._loaded[artifact] = loaded
        return self._loaded[artifact]

    def onnx_file(self, artifact: ArtifactSpec) -> ModelFile:
        """The built-in model exported to ONNX, checked, and cached on disk under its key."""
        if artifact not in self._files:
            loaded = self.loaded(artifact)
            folder = self.root or cache_dir()
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RnoptError(f"cannot use the ONNX cache folder {folder} ({exc.strerror}): set RNOPT_CACHE_DIR "
                                 f"to a writable folder") from None
            path = folder / f"{self.cache_key(artifact, loaded)}.onnx"
            self._files[artifact] = self._cached_or_exported(loaded, artifact, path)
        return self._files[artifact]

    @staticmethod
    def _cached_or_exported(loaded: LoadedModel, artifact: ArtifactSpec, path: Path) -> ModelFile:
        """The cached export, or a fresh one; a cache entry that no longer reads (truncated, overwritten) is
        exported again rather than failing every later run."""
        from rnopt.onnx_export import export_model

        recorded = path.with_name(path.name + ".sha256")  # the bytes the export wrote, checked on every reuse
        if path.exists():
            try:
                if recorded.read_text().strip() != sha256_of(path):
                    raise RnoptError("its sha256 is not the one recorded when it was exported")
                return open_model_file(path)
            except (RnoptError, OSError) as exc:
                notice(f"the cached export {path} could not be trusted ({first_line(exc)}): exported again")
        with replacing():  # the cache's own entry
            export_model(loaded, path, artifact.opset, None if artifact.dynamic_batch else 1)
            write_text(recorded, sha256_of(path) + "\n")
        return open_model_file(path)

    @staticmethod
    def cache_key(artifact: ArtifactSpec, loaded: LoadedModel) -> str:
        import torch

        classes = hashlib.sha256("\n".join(loaded.class_names).encode()).hexdigest()[:8]
        weights = (loaded.weights_sha256 or "random-seed0")[:16]
        shape = "dyn" if artifact.dynamic_batch else "b1"
        head = artifact.head + ("-l2" if artifact.normalize else "")
        return (f"{loaded.name}-{weights}-{classes}-{head}-opset{artifact.opset or 'default'}-{shape}"
                f"-torch{torch.__version__}")
