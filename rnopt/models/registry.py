"""The model registry: names, builders, bundled weights and the preprocessing each model expects."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from rnopt.errors import RnoptError
from rnopt.fileio import readable_file
from rnopt.models.checkpoint import read_state_dict, sha256_of
from rnopt.models.cifar_resnet import cifar_resnet
from rnopt.models.heads import with_head
from rnopt.models.resnet import imagenet_resnet
from rnopt.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing  # noqa: F401 (re-exported)

log = logging.getLogger("rnopt")

RANDOM_INIT_SEED = 0
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class BundledWeights:
    filename: str
    sha256: str
    source: str
    license: str
    published_top1: float  # on the original lossless CIFAR-10 test set
    jpeg_top1: float  # on the bundled JPEG copy, measured with rnopt


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # "imagenet" or "cifar10"
    depth: int
    build: Callable[[int], nn.Module]
    num_classes: int
    preprocessing: Preprocessing
    classifier: str  # name of the final Linear layer: tells the class count of a checkpoint
    weights: BundledWeights | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.preprocessing.crop, self.preprocessing.crop)


@dataclass
class LoadedModel:
    """A ready-to-run model in eval mode with what export, eval and reports need to know about it."""

    spec: ModelSpec
    module: nn.Module
    class_names: list[str]
    weights_source: str  # "bundled", a file path, or "random"
    weights_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    head: str = "logits"  # logits, or features (the pooled embedding)
    normalize: bool = False  # features L2-normalised
    embedding_dim: int | None = None  # with the features head

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trained(self) -> bool:
        return self.weights_source != "random"


_AKAMASTER = "akamaster/pytorch_resnet_cifar10@d5489e8 (BSD-2-Clause, (c) 2018 Yerlan Idelbayev)"
_BUNDLED = {
    "resnet20_cifar10": BundledWeights(
        "resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8",
        _AKAMASTER, "BSD-2-Clause", 0.9173, 0.8103),
    "resnet56_cifar10": BundledWeights(
        "resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367",
        _AKAMASTER, "BSD-2-Clause", 0.9339, 0.8320),
}


def _registry() -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for depth in (18, 34, 50, 101, 152):
        specs[f"resnet{depth}"] = ModelSpec(
            f"resnet{depth}", "imagenet", depth, lambda n, d=depth: imagenet_resnet(d, n), 1000,
            Preprocessing(resize=256, crop=224), classifier="fc")
    for depth in (20, 32, 44, 56, 110):
        name = f"resnet{depth}_cifar10"
        specs[name] = ModelSpec(
            name, "cifar10", depth, lambda n, d=depth: cifar_resnet(d, n), 10,
            Preprocessing(resize=32, crop=32), classifier="linear", weights=_BUNDLED.get(name))
    return specs


MODELS: dict[str, ModelSpec] = _registry()


def list_models() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise RnoptError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} "
                         f"(`rnopt models` lists them)") from None


def bundled_weights_path(spec: ModelSpec) -> Path:
    assert spec.weights is not None
    return Path(str(resources.files("rnopt.models") / "weights" / spec.weights.filename))


def create_model(name: str, weights: str | Path | None = None, num_classes: int | None = None,
                 labels: str | Path | None = None, head: str = "logits", normalize: bool = False) -> LoadedModel:
    """Build `name` with weights from `weights`, else the bundled ones, else random (with a warning);
    `head="features"` returns its embedding model (rnopt/models/heads.py)."""
    spec = get_spec(name)
    if weights is not None:
        path = Path(weights)
        state = read_state_dict(path)
        classes = num_classes or _classes_in_checkpoint(state, spec, path)
        module = _load_into(spec, classes, state, path)
        source, digest = str(path), sha256_of(path)
    elif spec.weights is not None:
        path = bundled_weights_path(spec)
        state = read_state_dict(path)
        classes = spec.num_classes
        module = _load_into(spec, classes, state, path)
        source, digest = "bundled", spec.weights.sha256
    else:
        classes = num_classes or spec.num_classes
        # A fixed seed: every process (and every machine with this torch) builds the same random model, so a
        # spec rebuilt elsewhere times and checks the same weights, and its ONNX export can be cached.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            module = spec.build(classes)
        source, digest = "random", None
    module.eval()
    dim = module.num_features if head == "features" else None
    loaded = LoadedModel(spec, with_head(module, head, normalize), _class_names(spec, classes, labels), source, digest,
                         head=head, normalize=normalize, embedding_dim=dim)
    if not loaded.trained:
        loaded.warnings.append(f"{name} has no trained weights: it is random-initialised and every accuracy "
                               f"figure for it is meaningless (pass --weights PATH)")
    return loaded


def _classes_in_checkpoint(state: dict[str, torch.Tensor], spec: ModelSpec, path: Path) -> int:
    key = f"{spec.classifier}.weight"
    if key not in state:
        raise RnoptError(f"{path} has no {key} tensor, so it is not a {spec.name} checkpoint "
                         f"(first keys: {', '.join(list(state)[:3])})")
    if state[key].ndim != 2:
        raise RnoptError(f"{path}: {key} has shape {tuple(state[key].shape)}, not (classes, features): "
                         f"it is not a {spec.name} classifier")
    if state[key].shape[0] == 0:
        raise RnoptError(f"{path}: {key} has 0 classes: the checkpoint's classifier is empty")
    return int(state[key].shape[0])


def _load_into(spec: ModelSpec, num_classes: int, state: dict[str, torch.Tensor], path: Path) -> nn.Module:
    module = spec.build(num_classes)
    expected = module.state_dict()
    # Older checkpoints (like the bundled ones) lack BatchNorm's step counter; eval never reads it.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise RnoptError(f"{path} does not fit {spec.name} ({num_classes} classes): {label} "
                             f"{', '.join(keys[:3])}{more}; is it a checkpoint of another architecture?")
    module.load_state_dict(state, strict=False)
    return module


def _class_names(spec: ModelSpec, num_classes: int, labels: str | Path | None) -> list[str]:
    if labels is not None:
        names = _read_labels(Path(labels))
        if len(names) != num_classes:
            raise RnoptError(f"labels file {labels} names {len(names)} classes but the model has {num_classes}")
        return names
    if spec.family == "cifar10" and num_classes == 10:
        return list(CIFAR10_CLASSES)
    if spec.family == "imagenet" and num_classes == 1000:
        return imagenet_class_names()
    return [f"class_{i}" for i in range(num_classes)]


def _read_labels(path: Path) -> list[str]:
    try:
        lines = readable_file(path, "labels file").read_text().splitlines()
    except UnicodeDecodeError:
        raise RnoptError(f"labels file {path} is not text: give one class name per line") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise RnoptError(f"labels file {path} is empty: give one class name per line")
    return names


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names in torchvision's (sorted wnid) order."""
    text = (resources.files("rnopt.data") / "assets" / "imagenet_labels.txt").read_text()
    return [line.split(maxsplit=2)[2] for line in text.splitlines() if line.strip()]


def count_params_and_macs(spec: ModelSpec) -> tuple[int, int]:
    """Parameters and multiply-adds for one image, computed on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        module = spec.build(spec.num_classes)
    macs = 0

    def hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            macs += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            macs += out.numel() * mod.in_features

    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    module(torch.empty((1, *spec.input_shape), device="meta"))
    return sum(p.numel() for p in module.parameters()), macs
