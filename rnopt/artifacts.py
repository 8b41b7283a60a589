"""Artifacts: the model a spec names, made ready for a runtime. Conversion happens here, before loading.

`artifact_for` turns what a user typed (a built-in name with optional weights, or a model file) into an
`ArtifactSpec`. An `ArtifactStore` materialises one for a runtime: a user's model file is checked against its
sha256 and opened; a built-in name is built in PyTorch for the torch runtime; anything else is built by its
recipe (export, then each step) in a content-addressed cache, `<cache>/artifacts/<artifact id>/`, so the same
recipe is built once on a machine, by any command, and a spec written as JSON rebuilds the same bytes in a fresh
process with an empty cache (or says why not: the user's file missing, other calibration images, other library
versions). Within a process each artifact is opened once, however many variants ask for it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnopt.backends.base import ModelFile, ModelInput, TorchModel
from rnopt.environment import cpu_kernels
from rnopt.errors import RnoptError, first_line
from rnopt.fileio import atomic_path, readable_file, sha256_of, write_text
from rnopt.notices import notice
from rnopt.options import option
from rnopt.results import ExportResult, OptimizeResult, QuantizeResult, build
from rnopt.schema import check_fields
from rnopt.spec import artifact_fields

if TYPE_CHECKING:  # recipes, ONNX and quantizers are imported where a file is opened or built: PyTorch alone runs
    from rnopt.models.registry import LoadedModel
    from rnopt.recipes import DataSource
    from rnopt.spec import ArtifactSpec

MODEL_SUFFIXES = (".onnx", ".xml")


def artifacts_dir() -> Path:
    """Where built artifacts are kept, one folder per recipe id: $RNOPT_CACHE_DIR/artifacts (default
    ~/.cache/rnopt/artifacts)."""
    root = os.environ.get("RNOPT_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnopt"
    return Path(root) / "artifacts"


def file_sha256(path: Path) -> str:
    """An ONNX file's sha256, or an OpenVINO IR's (.xml then .bin)."""
    weights = path.with_suffix(".bin")
    return sha256_of(path, weights) if path.suffix == ".xml" and weights.exists() else sha256_of(path)


def open_model_file(path: str | Path, built: bool = False) -> ModelFile:
    """An ONNX or IR file with its rnopt metadata (inferred for a foreign file); `built`: by the store, checked."""
    from rnopt.onnx_model import model_meta

    return ModelFile(Path(path), model_meta(path, built))


def is_model_name(arg: str) -> bool:
    from rnopt.models.registry import MODELS

    return arg in MODELS


@dataclass(frozen=True)
class ModelOptions:
    """What makes a built-in model name one model: its weights, classes and head (a model file holds its own)."""

    weights: str | None = option(None, "--weights", "checkpoint (.pt/.pth/.th/.safetensors) for a built-in name",
                                 metavar="PATH")
    num_classes: int | None = option(None, "--num-classes", "classes of the checkpoint (default: read from it)",
                                     metavar="N")
    labels: str | None = option(None, "--labels", "class names, one per line", metavar="FILE")
    head: str | None = option(None, "--head", "logits (default: the classifier), or features: the backbone up to "
                              "global average pooling, an embedding model for image search (64-d CIFAR, 512-d "
                              "ResNet-18/34, 2048-d ResNet-50+)", ("logits", "features"))
    normalize: bool = option(False, "--normalize", "with --head features: L2-normalised embeddings")

    def __post_init__(self) -> None:
        check_fields(self)

    def artifact(self, model: str, opset: int | None = None) -> ArtifactSpec:
        """The artifact `model` (a built-in name, or a .onnx / .xml file) names with these options."""
        return artifact_for(model, self.weights, self.num_classes, self.labels, self.head, opset, self.normalize)


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
    """Builds, caches and hands out the artifacts specs name; runtimes get them ready to load.

    Every file is built by its recipe into `<cache>/artifacts/<artifact id>/`, one step at a time (a quantized
    file's folder is found from its fused or exported parent's), with the file's sha256 and the step's own
    result (the export check, the fusion check, the quantization report) beside it. A folder is reused only when
    its bytes still have the recorded sha256; a folder appears whole or not at all (built aside, renamed in).
    """

    def __init__(self, root: Path | None = None, data: DataSource | None = None) -> None:
        self.root = root  # the artifacts folder; None: artifacts_dir() when first needed
        self._data = data  # decoded calibration and validation images, by content (made when first needed)
        self.results: dict[ArtifactSpec, StepOutcome] = {}  # what built (or last built) each artifact
        self._loaded: dict[ArtifactSpec, LoadedModel] = {}
        self._files: dict[ArtifactSpec, ModelFile] = {}

    @property
    def data(self) -> DataSource:
        if self._data is None:
            from rnopt.recipes import DataSource  # quantizers and datasets: only where a recipe is built

            self._data = DataSource()
        return self._data

    def model_for(self, artifact: ArtifactSpec, formats: tuple[str, ...]) -> ModelInput:
        """`artifact` in one of `formats`: the PyTorch model for a built-in name, else its file."""
        if "torch" in formats and not artifact.is_file and not artifact.steps:
            return TorchModel(self.loaded(artifact))
        return self.model_file(artifact)

    def model_file(self, artifact: ArtifactSpec) -> ModelFile:
        """The file a recipe makes (built or taken from the cache), or a user's model file (checked)."""
        if artifact not in self._files:
            if artifact.steps:
                self._files[artifact] = self._built(artifact)
            elif artifact.is_file:
                self._files[artifact] = self._user_file(artifact)
            else:
                self._files[artifact] = self._exported(artifact)
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

    def copy_to(self, artifact: ArtifactSpec, path: Path) -> Path:
        """The artifact's file (and an IR's weights) copied to `path`, which must not exist: a run folder's copy."""
        source = self.model_file(artifact).path
        pairs = [(source, path)] + ([(source.with_suffix(".bin"), path.with_suffix(".bin"))]
                                     if source.suffix == ".xml" else [])
        for origin, target in pairs:
            with atomic_path(target) as scratch:
                shutil.copyfile(origin, scratch)
        return path

    def _user_file(self, artifact: ArtifactSpec) -> ModelFile:
        path = Path(artifact.source)
        if not path.exists() and artifact.sha256:
            raise RnoptError(f"the model file {artifact.source} (sha256 {artifact.sha256[:12]}) is not on this "
                             f"machine: copy that file there, or plan the variant from a model that is")
        path = readable_file(artifact.source, "model file")
        if artifact.sha256 and file_sha256(path) != artifact.sha256:
            raise RnoptError(f"{path} has changed since this variant was specified (sha256 differs): "
                             f"plan the variants again")
        return open_model_file(path)

    def _exported(self, artifact: ArtifactSpec) -> ModelFile:
        def export(path: Path) -> ExportResult:
            # PyTorch is imported only to export: a cached export (what a runtime's worker or a memory probe
            # loads) costs no 3.5 s torch import, which would also count in a probe of an ONNX variant.
            from rnopt.onnx_export import export_model

            return export_model(self.loaded(artifact), path, artifact.opset, None if artifact.dynamic_batch else 1)

        return self._entry(artifact, "export", export)

    def _built(self, artifact: ArtifactSpec) -> ModelFile:
        from rnopt.recipes import run_step

        step, parent = artifact.steps[-1], artifact.parent()
        if self.has_entry(parent) or not self.has_entry(artifact):  # the chain's results where they are here;
            self.model_file(parent)  # an entry shipped from another machine stands alone (its parent not built)
        return self._entry(artifact, step.op, lambda path: run_step(step, self.model_file(parent), path, self.data))

    def has_entry(self, artifact: ArtifactSpec) -> bool:
        """Whether `artifact` is here without building it: a user's file, or a finished cache entry."""
        return artifact.is_file or (self._folder() / artifact.id / "result.json").is_file()

    def entry_files(self, artifact: ArtifactSpec) -> dict[str, bytes] | None:
        """The files of `artifact`'s trusted cache entry (its model, an IR's weights, the step's result and recipe),
        for another machine's store; None where there is none here (a user's file, a model PyTorch runs, a recipe
        not built here)."""
        if artifact.is_file:
            return None
        folder = self._folder() / artifact.id
        if self._trusted(folder, folder / f"model{artifact.file_suffix}") is None:
            return None
        return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}

    def install(self, artifact: ArtifactSpec, files: dict[str, bytes]) -> bool:
        """Another store's entry for `artifact` (`entry_files` there) put in this one, unless this one holds a trusted
        entry already: written aside, taken only when its bytes have the sha256 recorded with them and the one the
        spec names, then renamed in. False: not taken (the recipe builds it when needed)."""
        folder = self._folder() / artifact.id
        model_name = f"model{artifact.file_suffix}"
        if folder.exists() and self._trusted(folder, folder / model_name) is not None:
            return False
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for name, data in files.items():
                (scratch / Path(name).name).write_bytes(data)
            outcome = self._trusted(scratch, scratch / model_name)
            if outcome is None or (artifact.built_sha256 and outcome.sha256 != artifact.built_sha256):
                return False
            _rename_in(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return True

    def _entry(self, artifact: ArtifactSpec, kind: str, make: Callable[[Path], Any]) -> ModelFile:
        folder = self._folder() / artifact.id
        model = folder / f"model{artifact.file_suffix}"
        outcome = self._trusted(folder, model)
        if outcome is None:
            outcome = self._make(folder, model, kind, make, artifact)
        if artifact.built_sha256 and outcome.sha256 != artifact.built_sha256:
            notice(f"{artifact.name}: rebuilt from its recipe, its bytes differ from those recorded (sha256 "
                   f"{outcome.sha256[:12]}, was {artifact.built_sha256[:12]}): {_why_bytes_differ(artifact, outcome)}")
        self.results[artifact] = outcome
        return open_model_file(model, built=True)

    def _folder(self) -> Path:
        folder = self.root or artifacts_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RnoptError(f"cannot use the artifact cache {folder} ({exc.strerror}): set RNOPT_CACHE_DIR "
                             f"to a writable folder") from None
        return folder

    @staticmethod
    def _trusted(folder: Path, model: Path) -> StepOutcome | None:
        """The cached entry, when its bytes still have the recorded sha256; else None (with a notice)."""
        if not folder.exists():
            return None
        try:
            outcome = StepOutcome.read(folder / "result.json")
            if outcome.sha256 != file_sha256(model):
                raise RnoptError("its sha256 is not the one recorded when it was built")
            return outcome
        except (RnoptError, OSError, ValueError, TypeError, KeyError) as exc:
            notice(f"the cached artifact {folder} could not be trusted ({first_line(exc)}): built again")
            return None

    @staticmethod
    def _make(folder: Path, model: Path, kind: str, make: Callable[[Path], Any], artifact: ArtifactSpec) -> StepOutcome:
        """Build into a scratch folder beside the entry, then rename it in: an interrupted build leaves no entry."""
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            built = scratch / model.name
            result = make(built)
            outcome = StepOutcome(kind, file_sha256(built), made_with(), result)
            write_text(scratch / "result.json", json.dumps(outcome.to_dict(), indent=1))
            write_text(scratch / "recipe.json", json.dumps({"id": artifact.id, **artifact_fields(artifact)}, indent=1))
            _rename_in(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return outcome


def _rename_in(scratch: Path, folder: Path) -> None:
    """A finished entry renamed into its place; an entry found untrusted before goes first."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.rename(scratch, folder)
    except OSError:  # another process renamed its build of the same recipe in meanwhile: that one stays
        if not (folder / "result.json").is_file():
            raise


@dataclass
class StepOutcome:
    """What building one artifact gave: the kind of step, its file's sha256, the library versions, its result."""

    kind: str  # export, optimize, quantize, quantize-aware
    sha256: str
    made_with: str
    result: ExportResult | OptimizeResult | QuantizeResult

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sha256": self.sha256, "made_with": self.made_with, "result": asdict(self.result)}

    @classmethod
    def read(cls, path: Path) -> "StepOutcome":
        payload = json.loads(path.read_text())
        result_class = {"export": ExportResult, "optimize": OptimizeResult}.get(payload["kind"], QuantizeResult)
        return cls(payload["kind"], payload["sha256"], payload.get("made_with", ""), build(result_class,
                                                                                        payload["result"]))


def _why_bytes_differ(artifact: ArtifactSpec, outcome: "StepOutcome") -> str:
    here = outcome.made_with
    if artifact.built_with is None:
        return f"the library versions or the CPU differ (this machine: {here})"
    if artifact.built_with == here:
        return f"with the same libraries and CPU ({here}): this step is not deterministic here"
    return f"recorded with {artifact.built_with}; built here with {here}"


def made_with() -> str:
    """The libraries whose versions, and the CPU whose float kernels, can change a recipe's bytes."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("torch", "onnx", "onnxruntime", "openvino", "nncf"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return f"{', '.join(found)}; CPU {cpu_kernels()}"
