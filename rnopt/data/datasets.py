"""Labelled image sets: the bundled CIFAR-10 JPEGs and any ImageFolder-style directory.

A dataset is a list of (label, reader) pairs plus class names; `batches` decodes and preprocesses
lazily, so a large folder of ImageNet-size photos never sits in memory at once.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import random
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rnopt.data.preprocess import preprocess
from rnopt.errors import RnoptError
from rnopt.preprocessing import Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

# Bundled sets: name -> (archive, description). The test set is for the final, reported accuracy; the
# calibration and validation sets (drawn from CIFAR-10's train split, disjoint from each other and from the
# test set) are for int8 calibration and for decisions tuned on accuracy (accuracy-aware int8, sensitivity).
BUNDLED = {
    "cifar10": ("cifar10-test.zip", "CIFAR-10 test set, 10,000 JPEG (q75) re-encodings"),
    "cifar10-calib": ("cifar10-calib.zip", "500 CIFAR-10 train images for calibration, JPEG"),
    "cifar10-val": ("cifar10-val.zip", "5,000 CIFAR-10 train images for validation (tuning), JPEG"),
}


@dataclass
class ImageDataset:
    name: str
    class_names: list[str]
    samples: list[tuple[int, Callable[[], bytes], str]]  # (label, read bytes, display name)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labelled(self) -> bool:
        """False for a flat folder of images read without labels (calibration images)."""
        return self.class_names != [UNLABELLED]

    def subset(self, limit: int | None, seed: int = 0) -> "ImageDataset":
        """A fixed, seeded random subset of `limit` samples, the same every run, stratified: the classes take
        turns (in a seeded order), so every class is represented once `limit` reaches the number of classes, and
        the classes are balanced as far as each one's images allow."""
        if limit is None or limit >= len(self):
            return self
        if limit <= 0:
            raise RnoptError(f"--limit must be positive, got {limit}")
        rng = random.Random(seed)
        by_class: dict[int, list[int]] = {}
        for index, (label, _, _) in enumerate(self.samples):
            by_class.setdefault(label, []).append(index)
        queues = [rng.sample(indices, len(indices)) for _, indices in sorted(by_class.items())]
        rng.shuffle(queues)
        chosen: list[int] = []
        while len(chosen) < limit:
            for queue in queues:
                if queue and len(chosen) < limit:
                    chosen.append(queue.pop())
        chosen.sort()
        return ImageDataset(f"{self.name}[{limit}]", self.class_names, [self.samples[i] for i in chosen])

    def content_sha256(self) -> str:
        """The sha256 of every image's label and bytes, in order: the same whatever path or machine they are read
        from, another for any other image, label or order."""
        digest = hashlib.sha256()
        for label, read, _ in self.samples:
            digest.update(f"{label}\0{hashlib.sha256(read()).hexdigest()}\n".encode())
        return digest.hexdigest()

    def part(self, start: int, stop: int) -> "ImageDataset":
        """Samples [start, stop), as one shard of an evaluation."""
        return ImageDataset(self.name, self.class_names, self.samples[start:stop])

    def verify(self) -> None:
        """Every image's header and structure, without decoding pixels: a bad file is named before long work."""
        for _, read, shown in self.samples:
            with _named_image_errors(shown):
                Image.open(io.BytesIO(read())).verify()

    def batches(self, batch_size: int, spec: Preprocessing) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (images NCHW float32, labels int64) batches, preprocessed per `spec`."""
        if batch_size <= 0:
            raise RnoptError(f"batch size must be positive, got {batch_size}")
        for start in range(0, len(self), batch_size):
            chunk = self.samples[start:start + batch_size]
            images = np.stack([_preprocessed(read(), shown, spec) for _, read, shown in chunk])
            yield images, np.asarray([label for label, _, _ in chunk], dtype=np.int64)


def _preprocessed(data: bytes, shown: str, spec: Preprocessing) -> np.ndarray:
    image = decode_image(data, shown)
    with _named_image_errors(shown):
        return preprocess(image, spec)


def decode_image(data: bytes, shown: str) -> Image.Image:
    with _named_image_errors(shown):
        image = Image.open(io.BytesIO(data))
        image.load()
        return image


@contextlib.contextmanager
def _named_image_errors(shown: str) -> Iterator[None]:
    """Any way an image fails to open, as one line naming it; a decompression bomb is refused, not decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RnoptError(f"image {shown} is too large to decode safely ({exc}); remove it") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RnoptError(f"cannot decode image {shown}: {exc}; remove or replace it") from None


def load_dataset(name_or_dir: str | Path, unlabelled_ok: bool = False) -> ImageDataset:
    """`cifar10`, `cifar10-calib`, or a directory with one sub-folder of images per class.

    With `unlabelled_ok` (calibration needs images, not labels) a flat folder of images is accepted too.
    """
    if str(name_or_dir) in BUNDLED:
        return _bundled(str(name_or_dir))
    path = Path(name_or_dir)
    if not path.exists():
        raise RnoptError(f"data {name_or_dir!r} is neither a bundled set ({', '.join(BUNDLED)}) "
                         f"nor an existing folder")
    if not path.is_dir():
        raise RnoptError(f"data {path} is not a folder: give a folder with one sub-folder of images per class")
    if not _class_folders(path):
        labelled = _flat_labelled(path)
        if labelled is not None:
            return labelled
        if unlabelled_ok:
            return _flat_folder(path)
    return _image_folder(path)


UNLABELLED = "unlabelled"  # the one class name of a flat folder read without labels
MAX_IMAGE_BYTES = 512 * 2**20  # no photo is this large on disk; a file that is must not be read whole first


def _images_in(folder: Path, recursive: bool = True) -> list[Path]:
    """The images under `folder`, in sorted order; hidden files and folders (.thumbnails, .DS_Store...) are not
    part of a data set. Walked with a stack, not recursion: a folder nested a thousand levels deep is still read."""
    found, stack = [], [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(Path(entry.path))
                elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                    found.append(Path(entry.path))
    return sorted(found)


def _file_reader(path: Path) -> Callable[[], bytes]:
    """Read an image file, refusing one too large to be an image before reading it (a sparse 8 GB file)."""
    def read() -> bytes:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise RnoptError(f"image {path} is {size / 2**30:.1f} GiB on disk, larger than any image rnopt reads "
                             f"({MAX_IMAGE_BYTES >> 20} MiB at most): remove it")
        return path.read_bytes()
    return read


def _class_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


IMAGENET_SOLUTION = "LOC_val_solution.csv"  # ImageNet validation's own labels: ImageId,PredictionString
CLASS_LIST = "labels.txt"  # `index wnid name` per class; each image's file name starts with its wnid


def _flat_labelled(root: Path) -> ImageDataset | None:
    """A flat folder labelled as ImageNet ships it (a solution file mapping each image to its class), or with its
    class in each file name (`n01440764_tench.JPEG`) and the classes listed in labels.txt; None: neither."""
    if (root / IMAGENET_SOLUTION).is_file():
        classes = _class_list(root / CLASS_LIST) if (root / CLASS_LIST).is_file() else _imagenet_classes()
        wnids = _solution_wnids(root / IMAGENET_SOLUTION)
        return _labelled_by(root, classes, lambda f: wnids.get(f.stem), f"a row in {IMAGENET_SOLUTION}")
    if (root / CLASS_LIST).is_file():
        classes = _class_list(root / CLASS_LIST)
        return _labelled_by(root, classes, lambda f: f.name.split("_")[0], "a file name starting with its wnid")
    return None


def _labelled_by(root: Path, classes: list[tuple[str, str]], wnid_of: Callable[[Path], str | None],
                 what: str) -> ImageDataset:
    """The images directly in `root`, each labelled by the class whose wnid `wnid_of` gives."""
    index = {wnid: i for i, (wnid, _) in enumerate(classes)}
    samples = []
    for image in _images_in(root, recursive=False):
        wnid = wnid_of(image)
        if wnid not in index:
            raise RnoptError(f"{image} has no class: {what} naming one of the {len(classes)} classes of "
                             f"{CLASS_LIST if (root / CLASS_LIST).is_file() else 'ImageNet'} is needed for each "
                             f"image (move it out of {root}, or label it)")
        samples.append((index[wnid], _file_reader(image), str(image)))
    if not samples:
        raise RnoptError(f"data folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ImageDataset(str(root), [name for _, name in classes], samples)


def _class_list(path: Path) -> list[tuple[str, str]]:
    """(wnid, name) per class, in index order, from `index wnid name` lines."""
    rows: dict[int, tuple[str, str]] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = line.split(maxsplit=2)
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit():
            raise RnoptError(f"{path}:{number} is not an `index wnid name` line ({line[:60]!r}): list each class "
                             f"as e.g. `0 n01440764 tench`")
        rows[int(parts[0])] = (parts[1], parts[2].strip())
    if sorted(rows) != list(range(len(rows))):
        raise RnoptError(f"{path}: the class indices must run 0, 1, 2, ... without gaps")
    return [rows[i] for i in range(len(rows))]


def _imagenet_classes() -> list[tuple[str, str]]:
    with resources.as_file(resources.files("rnopt.data") / "assets" / "imagenet_labels.txt") as p:
        return _class_list(Path(p))


def _solution_wnids(path: Path) -> dict[str, str]:
    """ImageNet's LOC_val_solution.csv: image id -> the wnid of its first box (every box of an image is its class)."""
    with path.open(newline="", errors="replace") as handle:
        rows = list(csv.reader(handle))
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise RnoptError(f"{path} is not ImageNet's solution file: its header must be ImageId,PredictionString")
    return {row[0]: row[1].split()[0] for row in rows[1:] if len(row) >= 2 and row[1].split()}


def _flat_folder(root: Path) -> ImageDataset:
    samples = [(0, _file_reader(f), str(f)) for f in _images_in(root)]
    if not samples:
        raise RnoptError(f"data folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ImageDataset(str(root), [UNLABELLED], samples)


@cache
def _archive_bytes(archive: str) -> dict[str, bytes]:
    with resources.as_file(resources.files("rnopt.data") / "assets" / archive) as p:
        with zipfile.ZipFile(p) as zf:
            return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


@cache
def _bundled_digests(name: str) -> frozenset[bytes]:
    return frozenset(hashlib.sha1(data).digest() for data in _archive_bytes(BUNDLED[name][0]).values())


def bundled_overlap(dataset: ImageDataset, bundled: str) -> int:
    """How many of `dataset`'s images are, byte for byte, images of the bundled set `bundled` (the test set
    copied out of its archive into a folder is still the test set)."""
    if dataset.name == bundled:
        return len(dataset)
    if dataset.name in BUNDLED:
        return 0  # the bundled sets are disjoint
    digests = _bundled_digests(bundled)
    return sum(hashlib.sha1(read()).digest() in digests for _, read, _ in dataset.samples)


def _bundled(name: str) -> ImageDataset:
    members = _archive_bytes(BUNDLED[name][0])
    classes = sorted({n.split("/")[0] for n in members})
    index = {c: i for i, c in enumerate(classes)}
    samples = [(index[n.split("/")[0]], (lambda n=n: members[n]), f"{name}:{n}") for n in sorted(members)]
    return ImageDataset(name, classes, samples)


def _image_folder(root: Path) -> ImageDataset:
    classes = _class_folders(root)
    if not classes:
        raise RnoptError(f"data folder {root} has no class sub-folders: put the images of each class "
                         f"in their own sub-folder (ImageFolder layout), or label a flat folder as ImageNet does "
                         f"({IMAGENET_SOLUTION}, or {CLASS_LIST} listing `index wnid name` with each file named "
                         f"<wnid>_...)")
    loose = _images_in(root, recursive=False)
    if loose:  # they would be silently left out of every figure
        raise RnoptError(f"data folder {root} holds {len(loose)} image(s) beside its class sub-folders (e.g. "
                         f"{loose[0].name}): move each into its class's sub-folder, or out of {root}")
    samples = []
    for label, cls in enumerate(classes):
        samples += [(label, _file_reader(f), str(f)) for f in _images_in(root / cls)]
    if not samples:
        raise RnoptError(f"data folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                         f"in its class sub-folders")
    return ImageDataset(str(root), classes, samples)


def align_labels(dataset: ImageDataset, model_classes: list[str]) -> ImageDataset:
    """Relabel the dataset to the model's class indices when its folder names are the model's class names.

    A folder holding a few ImageNet classes then scores against the right logits; otherwise the sorted
    folder order is taken as the index, as torchvision's ImageFolder does.
    """
    if all(c in model_classes for c in dataset.class_names):
        remap = [model_classes.index(c) for c in dataset.class_names]
        samples = [(remap[label], read, shown) for label, read, shown in dataset.samples]
        return ImageDataset(dataset.name, list(model_classes), samples)
    if len(dataset.class_names) > len(model_classes):
        raise RnoptError(f"data {dataset.name} has {len(dataset.class_names)} classes but the model only "
                         f"{len(model_classes)}: use data with the model's classes (or pass --labels)")
    return dataset
