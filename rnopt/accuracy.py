"""Accuracy as one number, higher is better: the measure that accuracy-aware int8 and layer sensitivity bound
(and that a variant search will). Top-1 for classifiers; for embedding models, retrieval mAP (same-class
images relevant) or the cosine of each image's embedding to the float model's.

Also the validation images those decisions are tuned on: decoded once, kept in memory, never the test set.
"""
from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rnopt.data import ImageDataset, align_labels, bundled_overlap, load_dataset
from rnopt.errors import RnoptError
from rnopt.onnx_model import ModelMeta
from rnopt.retrieval import cosines, search

DECODE_BATCH = 100
MAX_VALIDATION_BYTES = 4 << 30  # decoded validation images are held in memory: refuse beyond this


class AccuracyMeasure(ABC):
    name: ClassVar[str]
    # Every score is a fraction (top-1 0.91, not 91); `in_points`: people read it, and bound its drop, in points
    # (hundredths), as top-1 is usually quoted. A cosine is read as it is.
    in_points: ClassVar[bool] = True

    @abstractmethod
    def score(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
        """The model's score from its `outputs` on the validation images (`reference`: the float model's)."""

    def per_item(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray | None:
        """Each image's own value, where the measure is a mean over images (NNCF ranks layers on these)."""
        return None


class Top1(AccuracyMeasure):
    name = "top-1"

    def score(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
        return float((outputs.argmax(axis=1) == labels).mean())

    def per_item(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return (outputs.argmax(axis=1) == labels).astype(np.float64)


class RetrievalMAP(AccuracyMeasure):
    """Mean average precision of exact cosine search, every image a query, same-class images relevant."""

    name = "mAP"

    def score(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
        found = search(outputs, labels).average_precision
        if found is None:
            raise RnoptError("mAP is undefined on these images: no image has another of its class to find; use "
                             "more images per class, or bound the mean cosine (--min-cosine)")
        return float(found)


class MeanCosine(AccuracyMeasure):
    """Mean cosine between each image's embedding and the float model's: 1 for the float model itself."""

    name, in_points = "cosine", False

    def score(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> float:
        return float(cosines(reference, outputs).mean())

    def per_item(self, outputs: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
        return cosines(reference, outputs)


MEASURES: dict[str, type[AccuracyMeasure]] = {m.name: m for m in (Top1, RetrievalMAP, MeanCosine)}


@dataclass(frozen=True)
class AccuracyBound:
    """How much worse than float a quantized model may be, as the user states it: `max_drop` in the measure's
    points (absolute) or in % of the float model's score (relative). A minimum cosine is a drop from the float
    model's cosine of 1. Scores and drops themselves are fractions (`limit` is `max_drop` as one)."""

    measure: str = "top-1"
    max_drop: float = 1.0
    drop_type: str = "absolute"

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise RnoptError(f"unknown accuracy measure {self.measure!r}: choose one of {', '.join(MEASURES)}")
        if self.drop_type not in ("absolute", "relative"):
            raise RnoptError(f"--drop-type must be absolute or relative, got {self.drop_type!r}")
        if not self.max_drop >= 0:
            raise RnoptError(f"the maximum drop must be zero or more, got {self.max_drop}")

    @classmethod
    def min_cosine(cls, value: float) -> "AccuracyBound":
        if not 0 < value <= 1:
            raise RnoptError(f"--min-cosine must be in (0, 1], got {value}")
        return cls("cosine", round(1.0 - value, 12), "absolute")

    def measure_object(self) -> AccuracyMeasure:
        return MEASURES[self.measure]()

    @property
    def limit(self) -> float:
        """The largest drop allowed, as a fraction: of the score (absolute) or of float's score (relative)."""
        in_points = self.drop_type == "relative" or MEASURES[self.measure].in_points
        return self.max_drop / 100.0 if in_points else self.max_drop

    def drop(self, reference: float, candidate: float) -> float:
        """Float's score minus the candidate's (a fraction), or that relative to float's score."""
        if self.drop_type == "relative":
            return (reference - candidate) / reference if reference else 0.0
        return reference - candidate

    def score_at(self, reference: float, drop: float) -> float:
        """The score that is `drop` below `reference` (the inverse of `drop`)."""
        return reference * (1 - drop) if self.drop_type == "relative" else reference - drop

    def met(self, reference: float, candidate: float) -> bool:
        return self.drop(reference, candidate) <= self.limit + 1e-12

    def describe(self) -> str:
        if self.measure == "cosine":
            return f"mean cosine to float ≥ {1.0 - self.max_drop:g}"
        unit = "% of float's" if self.drop_type == "relative" else "points"
        return f"{self.measure} drop ≤ {self.max_drop:g} {unit}"


def checked_measure(measure: str | None, meta: ModelMeta) -> str:
    """The measure every command uses for this model (the default where None), refused where it means nothing:
    mAP needs embeddings, top-1 needs class scores; cosine (agreement with the float outputs) fits both."""
    chosen = measure or default_measure(meta)
    if chosen not in MEASURES:
        raise RnoptError(f"unknown measure {chosen!r}: choose one of {', '.join(MEASURES)}")
    if chosen == "mAP" and not meta.is_embedding:
        raise RnoptError("mAP applies to embedding models (--head features); this model is a classifier")
    if chosen == "top-1" and meta.is_embedding:
        raise RnoptError("top-1 applies to classifiers; this model outputs embeddings: use mAP or cosine")
    return chosen


def default_measure(meta: ModelMeta) -> str:
    """Top-1 for classifiers, retrieval mAP for embedding models."""
    return "mAP" if meta.is_embedding else "top-1"


def content_sha256(*arrays: np.ndarray) -> str:
    """The sha256 of decoded images (and labels): what a recipe step read, by content, wherever it came from."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass
class ValidationSet:
    name: str
    images: np.ndarray  # N x 3 x H x W float32, preprocessed as the model expects
    labels: np.ndarray
    source: str | None = None  # the data it was read from (a bundled name or a folder) and the subset's size:
    limit: int | None = None  # where a recipe that names these images finds them again

    def __len__(self) -> int:
        return len(self.images)

    @functools.cached_property
    def sha256(self) -> str:
        return content_sha256(self.images, self.labels)

    def reference(self) -> dict[str, Any]:
        """The images as a recipe step names them: by content, with where to read them again."""
        return {"data": self.source or self.name, "limit": self.limit, "sha256": self.sha256}

    def batches(self, size: int) -> list[np.ndarray]:
        return [self.images[i:i + size] for i in range(0, len(self.images), size)]


def default_validation_data(meta: ModelMeta) -> str:
    if meta.fits_bundled_cifar:
        return "cifar10-val"
    raise RnoptError(f"no bundled validation images fit {meta.model} ({meta.input_size}px input): pass --data DIR "
                     f"with labelled validation images (one sub-folder per class), not the images you test on")


def refuse_mixed_roles(dataset: ImageDataset, final: bool) -> None:
    """Tuning never sees test images, and the final figures never come from images something was tuned or
    calibrated on: checked by content, so a bundled set copied into a folder is recognised."""
    roles = ("cifar10-val", "cifar10-calib") if final else ("cifar10",)
    for bundled in roles:
        shared = bundled_overlap(dataset, bundled)
        if shared:
            what = "the final (untuned) figures" if final else "tuning"
            role = "the CIFAR-10 test set" if bundled == "cifar10" else f"{bundled}, which tuning uses"
            raise RnoptError(f"{shared} of the {len(dataset)} images of {dataset.name} are images of {role}: "
                             f"{what} need images of their own (test data: cifar10 or your own test folder; "
                             f"validation data: cifar10-val or your own validation folder)")


def validation_set(meta: ModelMeta, data: str | None, limit: int | None = None,
                   on_batch: Callable[[int], None] | None = None, allow_test: bool = False,
                   unlabelled_ok: bool = False) -> ValidationSet:
    """`data` (default: the bundled validation set), a seeded subset of `limit`, decoded and preprocessed once.
    `allow_test`: this is the final, untuned evaluation, so the test set is what it should be."""
    name = data or default_validation_data(meta)
    if name == "cifar10" and not allow_test:
        raise RnoptError("cifar10 is the test set, which stays untuned: tune on cifar10-val (the default) or "
                         "another validation folder")
    dataset = align_labels(load_dataset(name, unlabelled_ok), meta.class_names).subset(limit)
    if meta.fits_bundled_cifar:
        refuse_mixed_roles(dataset, allow_test)
    crop = meta.preprocessing.crop
    if len(dataset) * 3 * crop * crop * 4 > MAX_VALIDATION_BYTES:
        raise RnoptError(f"{len(dataset)} validation images of {crop}px would take over "
                         f"{MAX_VALIDATION_BYTES >> 30} GiB decoded: pass --limit N for a subset")
    images, labels = [], []
    for batch, batch_labels in dataset.batches(DECODE_BATCH, meta.preprocessing):
        images.append(batch)
        labels.append(batch_labels)
        if on_batch:
            on_batch(len(batch))
    return ValidationSet(dataset.name, np.concatenate(images).astype(np.float32, copy=False), np.concatenate(labels),
                         name, limit)
