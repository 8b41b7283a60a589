"""A variant's outputs on a set of images, kept on disk: a later evaluation of the same bytes computes them once.

What a model file outputs on given images is fixed by the file's bytes, the runtime and its version, the settings
it ran with, the CPU's instruction sets (they choose the kernels) and the decoded images. A prediction is stored
under the sha256 of all of those, so an entry is reused only where recomputing it would give the same bits; any
change (another file, runtime release, CPU, thread count, image, preprocessing or line of rnopt's code) is a miss.
Timing is never cached: only what an evaluation or a validation computes.

Entries live in $RNOPT_CACHE_DIR/predictions (beside the artifact store); RNOPT_PREDICTION_CACHE=0 turns the
cache off. Outputs over MAX_ENTRY_BYTES (an ImageNet-size logit table) are not kept.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

import rnopt
from rnopt.artifacts import artifacts_dir, file_sha256
from rnopt.backends.base import ModelFile, TorchModel
from rnopt.bench import Variant
from rnopt.data import ImageDataset
from rnopt.environment import cpu_kernels, library_versions
from rnopt.errors import RnoptError
from rnopt.fileio import atomic_path
from rnopt.notices import notice
from rnopt.preprocessing import Preprocessing

FORMAT = 1  # the key's layout: a change here makes every older entry a miss
MAX_ENTRY_BYTES = 64 << 20


def enabled() -> bool:
    return os.environ.get("RNOPT_PREDICTION_CACHE", "1") != "0"


@functools.cache
def code_digest() -> str:
    """rnopt's own source: a change to how a runtime is driven or images are read is a miss, even in a checkout."""
    digest = hashlib.sha256()
    for path in sorted(Path(rnopt.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def predictions_dir() -> Path:
    return artifacts_dir().parent / "predictions"


def images_digest(dataset: ImageDataset, preprocessing: Preprocessing) -> str:
    """The images as a variant sees them: every file's bytes and label, in order, and how they are decoded."""
    from PIL import __version__ as pillow

    return hashlib.sha256(json.dumps([repr(preprocessing), pillow, dataset.content_sha256()]).encode()).hexdigest()


def model_digest(variant: Variant) -> str | None:
    """The sha256 of what the variant runs (the graph its runtime optimized, where it shows it; else a file's bytes,
    a built-in model's weights); None: not known."""
    if isinstance(variant.model, ModelFile):
        graph = variant.session.graph_digest()
        return f"graph {graph}" if graph else file_sha256(variant.model.path)
    if isinstance(variant.model, TorchModel) and variant.model.loaded.weights_sha256:
        loaded = variant.model.loaded
        return hashlib.sha256(json.dumps([loaded.name, loaded.weights_sha256, loaded.head, loaded.normalize,
                                          loaded.class_names]).encode()).hexdigest()
    return None


def entry_key(variant: Variant, images: str, batch_size: int) -> str | None:
    """The entry's name: everything that fixes the variant's outputs on these images (None: not cacheable)."""
    model = model_digest(variant)
    if model is None:
        return None
    settings = {k: v for k, v in variant.spec.to_dict().items() if k not in ("artifact", "label")}
    return _key(model, [variant.session.backend, variant.session.precision, variant.session.device], images,
                settings=settings, batch=batch_size)


def file_key(runtime: str, model: Path, images: str) -> str:
    """The entry of a model file's outputs as a quantizer runs it (its runtime, default settings, one fixed batch
    size) on decoded images whose content's sha256 is `images`."""
    return _key(file_sha256(model), ["file", runtime], images)


def _key(model: str, ran_as: list[str], images: str, **more: object) -> str:
    """The sha256 of what ran (`model`), how (`ran_as` and `more`), on which images, and what every entry depends on:
    rnopt's code, the libraries' versions, the CPU's kernels."""
    identity = {"format": FORMAT, "rnopt": code_digest(), "model": model, "ran_as": ran_as, "images": images,
                "versions": library_versions(), "cpu": cpu_kernels(), **more}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def file_outputs(runtime: str, model: Path, images: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """A model file's outputs as a quantizer computes them (accuracy-aware int8's untuned test figures): the stored
    entry where the same bytes ran on the same images with the same runtime and CPU, else `compute()`, stored."""
    return _through_cache(file_key(runtime, model, images) if enabled() else None, compute,
                          f"outputs of {model.name} on the test images taken from the prediction cache (same file, "
                          "runtime versions, CPU and images as when computed); RNOPT_PREDICTION_CACHE=0 computes "
                          "them again")[0]


def _through_cache(key: str | None, compute: Callable[[], np.ndarray], said: str) -> tuple[np.ndarray, bool]:
    """The entry `key` (`said` as a notice) and True, else `compute()`, stored where not too large, and False."""
    stored = _load(key)
    if stored is not None:
        notice(said)
        return stored, True
    outputs = compute()
    if key is not None and outputs.nbytes <= MAX_ENTRY_BYTES:
        _store(key, outputs)
    return outputs, False


def _load(key: str | None) -> np.ndarray | None:
    if key is None:
        return None
    try:
        return np.load(predictions_dir() / f"{key}.npy", allow_pickle=False)
    except (OSError, ValueError):  # absent, or a damaged entry: computed again (and stored afresh)
        return None


def _store(key: str, outputs: np.ndarray) -> None:
    path = predictions_dir() / f"{key}.npy"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, outputs, allow_pickle=False)
    except (OSError, RnoptError) as exc:  # a cache that cannot be written costs time, not results
        notice(f"prediction cache not written ({exc}): the next evaluation computes these outputs again")


def predicted_batches(variants: list[Variant], dataset: ImageDataset, preprocessing: Preprocessing,
                      batch_size: int, on_batch: Callable[[int], None] | None = None
                      ) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """Every variant's outputs batch by batch, in image order, with the labels: from the cache where an entry
    holds the same bits, else computed (images decoded only if some variant needs them) and stored."""
    content = images_digest(dataset, preprocessing) if enabled() and variants else ""
    keys = [entry_key(v, content, batch_size) if content else None for v in variants]
    stored = [_load(k) for k in keys]
    twin = twins(keys, stored)
    fresh: dict[int, list[np.ndarray]] = {i: [] for i, s in enumerate(stored)
                                          if s is None and keys[i] is not None and i not in twin}
    _say_reused(variants, stored, twin, dataset)
    start = 0
    for images, labels, computed in _run_in_runs(variants, stored, twin, _batches(
            dataset, preprocessing, batch_size, all(s is not None for s in stored))):
        rows = len(labels)
        outputs = [s[start:start + rows] if s is not None else computed[twin.get(i, i)]
                   for i, s in enumerate(stored)]
        for i in list(fresh):
            fresh[i].append(outputs[i])
            if sum(c.nbytes for c in fresh[i]) > MAX_ENTRY_BYTES:  # too large to keep: not held either
                del fresh[i]
        start += rows
        yield outputs, labels
        if on_batch:
            on_batch(rows)
    for i, chunks in fresh.items():
        if chunks:
            _store(keys[i], np.concatenate(chunks))


# Batches decoded ahead and run variant by variant, each runtime making up to RUN_BATCHES calls in a row: switching
# runtimes at every batch cost 15-20 % here (ResNet-20, 5 variants x 10,000 images: 33.7-33.9 s against 28.1-29.7 s),
# one runtime's spinning worker threads meeting the next one's. RUN_BYTES bounds the decoded images held.
RUN_BATCHES = 8
RUN_BYTES = 256 << 20


def _run_in_runs(variants: list[Variant], stored: list[np.ndarray | None], twin: dict[int, int],
                 batches: Iterator[tuple[np.ndarray | None, np.ndarray]]
                 ) -> Iterator[tuple[np.ndarray | None, np.ndarray, dict[int, np.ndarray]]]:
    """Each batch with the outputs of the variants to compute (by index), computed a run of batches at a time."""
    for run in _runs(batches):
        computed: dict[int, list[np.ndarray]] = {
            i: [v.session.predict(images) for images, _ in run]
            for i, (v, s) in enumerate(zip(variants, stored)) if s is None and i not in twin}
        for k, (images, labels) in enumerate(run):
            yield images, labels, {i: outputs[k] for i, outputs in computed.items()}


def _runs(batches: Iterator[tuple[np.ndarray | None, np.ndarray]]
          ) -> Iterator[list[tuple[np.ndarray | None, np.ndarray]]]:
    run: list[tuple[np.ndarray | None, np.ndarray]] = []
    for images, labels in batches:
        run.append((images, labels))
        if len(run) >= RUN_BATCHES or sum(0 if i is None else i.nbytes for i, _ in run) >= RUN_BYTES:
            yield run
            run = []
    if run:
        yield run


def twins(keys: list[str | None], stored: list[np.ndarray | None]) -> dict[int, int]:
    """Each variant to compute whose key an earlier one has (the same outputs by the cache's own rule), mapped to
    that earlier one: its outputs are computed once."""
    first: dict[str, int] = {}
    twin = {}
    for i, (key, entry) in enumerate(zip(keys, stored)):
        if key is None or entry is not None:
            continue
        if key in first:
            twin[i] = first[key]
        else:
            first[key] = i
    return twin


def _say_reused(variants: list[Variant], stored: list[np.ndarray | None], twin: dict[int, int],
                dataset: ImageDataset) -> None:
    hits = sum(s is not None for s in stored)
    if hits:
        notice(f"outputs of {hits} of {len(variants)} variants on {dataset.name} ({len(dataset)} images) taken from "
               "the prediction cache (same model, runtime versions, settings, CPU and images as when computed); "
               "RNOPT_PREDICTION_CACHE=0 computes them again")
    for i, j in twin.items():
        notice(f"{variants[i].label} runs the same graph as {variants[j].label} once {variants[i].session.backend} "
               f"has optimized both: its outputs on {dataset.name} are computed once, for both; "
               "RNOPT_PREDICTION_CACHE=0 computes each")


def _batches(dataset: ImageDataset, preprocessing: Preprocessing, batch_size: int, labels_only: bool
             ) -> Iterator[tuple[np.ndarray | None, np.ndarray]]:
    """The dataset's batches; with `labels_only`, the labels alone (nothing decoded: every output is stored)."""
    if not labels_only:
        yield from dataset.batches(batch_size, preprocessing)
        return
    for start in range(0, len(dataset), batch_size):
        yield None, np.asarray([label for label, _, _ in dataset.samples[start:start + batch_size]], dtype=np.int64)


def cached_outputs(variant: Variant, images: str, batch_size: int, compute: Callable[[], np.ndarray]
                   ) -> tuple[np.ndarray, bool]:
    """One variant's outputs on images already decoded (`images`: their content's sha256), and whether they came
    from the cache: the stored entry where it holds the same bits, else `compute()`, stored."""
    return _through_cache(entry_key(variant, images, batch_size) if enabled() else None, compute,
                          "validation outputs of some variants taken from the prediction cache (same model, runtime "
                          "versions, settings, CPU and images as when computed); RNOPT_PREDICTION_CACHE=0 computes "
                          "them again")
