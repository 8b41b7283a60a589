"""Choosing and decoding calibration images once: shared by every quantization toolkit, so they all see
the same inputs."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rnopt.data import load_dataset
from rnopt.errors import RnoptError
from rnopt.onnx_model import ModelMeta
from rnopt.quantization.base import CalibrationData

DECODE_BATCH = 50


def default_calibration_data(meta: ModelMeta) -> str:
    if meta.fits_bundled_cifar:
        return "cifar10-calib"
    raise RnoptError(f"no bundled calibration images fit {meta.model} ({meta.input_size}px input): "
                     f"pass --calib-data DIR with a few hundred representative images (a folder of images)")


def calibration_data(meta: ModelMeta, calib_data: str | None, calib_size: int,
                     on_batch: Callable[[int], None] | None = None) -> CalibrationData:
    """`calib_data` (or the bundled default), a seeded subset of `calib_size`, decoded and preprocessed."""
    if calib_size <= 0:
        raise RnoptError(f"--calib-size must be positive, got {calib_size}")
    name = calib_data or default_calibration_data(meta)
    dataset = load_dataset(name, unlabelled_ok=True).subset(calib_size)
    chunks = []
    for images, _ in dataset.batches(DECODE_BATCH, meta.preprocessing):
        chunks.append(images)
        if on_batch:
            on_batch(len(images))
    return CalibrationData(name, np.concatenate(chunks).astype(np.float32, copy=False))
