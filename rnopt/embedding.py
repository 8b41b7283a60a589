"""`rnopt embed`: a folder of images (a catalogue) turned into vectors with any variant of an embedding model.

Images are decoded and preprocessed as the model expects, in batches; a bad image stops the run with its
name, or is skipped and listed with `skip_bad`. The output is one .npz: `vectors` (N x dim float32), `paths`
(relative to the folder), `labels` (the class sub-folder's index, where there are class sub-folders),
`class_names` and `meta` (the model's rnopt metadata and the variant's spec, as JSON).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rnopt.bench import Variant
from rnopt.data import ImageDataset, preprocess
from rnopt.data.datasets import decode_image
from rnopt.errors import RnoptError
from rnopt.fileio import atomic_path, decode_array, encode_array


@dataclass
class Embedded:
    """One variant's vectors for a folder of images, and what `rnopt embed` writes beside them (an `embed` task's
    outcome: it turns into JSON and back, arrays bit for bit)."""

    vectors: np.ndarray
    paths: list[str]
    labels: np.ndarray
    class_names: list[str]  # empty for an unlabelled folder
    model_meta: dict[str, Any]  # the model's rnopt metadata
    spec: dict[str, Any]  # the variant's spec
    backend: str
    precision: str  # the precision it ran at
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    inference_s: float = 0.0  # time in the model alone
    wall_s: float = 0.0  # decoding included

    ARRAYS: ClassVar[tuple[str, ...]] = ("vectors", "labels")

    def to_dict(self) -> dict[str, Any]:
        plain = {k: v for k, v in self.__dict__.items() if k not in self.ARRAYS}
        return {**plain, **{k: encode_array(getattr(self, k)) for k in self.ARRAYS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Embedded":
        return cls(**{**data, **{k: decode_array(data[k]) for k in cls.ARRAYS}})


def require_embedding_model(variant: Variant) -> None:
    if variant.model.head != "features":
        raise RnoptError(f"{variant.spec.artifact.name} outputs class logits, not embeddings: pass --head features "
                         f"(built-in names), or a model exported with `rnopt export NAME --head features`")


def _relative(shown: str, root: str) -> str:
    prefix = root.rstrip("/") + "/"
    return shown[len(prefix):] if shown.startswith(prefix) else shown.split(":", 1)[-1]


def _decoded(dataset: ImageDataset, variant: Variant, skip_bad: bool,
             skipped: list[str]) -> Iterator[tuple[np.ndarray, int, str]]:
    spec = variant.model.preprocessing
    for label, read, shown in dataset.samples:
        try:
            yield preprocess(decode_image(read(), shown), spec), label, _relative(shown, dataset.name)
        except (RnoptError, OSError, ValueError) as exc:
            if not skip_bad:
                raise RnoptError(f"{exc} (or pass --skip-bad to skip bad images)") from None
            skipped.append(f"{_relative(shown, dataset.name)}: {str(exc).split(':', 1)[-1].strip()}")


def embed_images(variant: Variant, dataset: ImageDataset, batch_size: int = 100, skip_bad: bool = False,
                 on_batch: Callable[[int], None] | None = None) -> Embedded:
    require_embedding_model(variant)
    if batch_size <= 0:
        raise RnoptError(f"--batch-size must be positive, got {batch_size}")
    start, inference = time.perf_counter(), 0.0
    vectors, paths, labels, skipped, batch = [], [], [], [], []

    def flush() -> None:
        nonlocal inference
        images = np.stack([image for image, _, _ in batch])
        began = time.perf_counter()
        vectors.append(variant.session.predict(images))
        inference += time.perf_counter() - began
        paths.extend(path for _, _, path in batch)
        labels.extend(label for _, label, _ in batch)
        if on_batch:
            on_batch(len(batch))
        batch.clear()

    for item in _decoded(dataset, variant, skip_bad, skipped):
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not vectors:
        raise RnoptError(f"no image of {dataset.name} could be read ({len(skipped)} skipped)")
    return Embedded(np.concatenate(vectors).astype(np.float32), paths, np.asarray(labels, dtype=np.int64),
                    list(dataset.class_names) if dataset.labelled else [], asdict(variant.meta),
                    variant.spec.to_dict(), variant.session.backend, variant.session.precision, skipped, inference,
                    time.perf_counter() - start)


def write_vectors(output: str | Path, embedded: Embedded) -> None:
    """One .npz, written atomically (np.savez to an open file, so no .npz suffix is appended to the temp name)."""
    meta = {"model": embedded.model_meta, "spec": embedded.spec, "precision_ran": embedded.precision}
    labelled = bool(embedded.class_names)
    with atomic_path(output) as tmp, open(tmp, "wb") as f:
        np.savez(f, vectors=embedded.vectors, paths=np.asarray(embedded.paths),
                 labels=embedded.labels if labelled else np.zeros(0, np.int64),
                 class_names=np.asarray(embedded.class_names), meta=np.asarray(json.dumps(meta)))
