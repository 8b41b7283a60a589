"""Choosing calibration images: shared by every quantization toolkit, so they all see the same inputs."""
from __future__ import annotations

from rnopt.data import ImageDataset, load_dataset
from rnopt.errors import RnoptError
from rnopt.onnx_model import ModelMeta


def default_calibration_data(meta: ModelMeta) -> str:
    if meta.input_size == 32 and len(meta.class_names) == 10:
        return "cifar10-calib"
    raise RnoptError(f"no bundled calibration images fit {meta.model} ({meta.input_size}px input): "
                     f"pass --calib-data DIR with a few hundred representative images (a folder of images)")


def calibration_set(meta: ModelMeta, calib_data: str | None, calib_size: int) -> tuple[str, ImageDataset]:
    """(name, dataset): `calib_data` or the bundled default, cut to a seeded subset of `calib_size`."""
    if calib_size <= 0:
        raise RnoptError(f"--calib-size must be positive, got {calib_size}")
    name = calib_data or default_calibration_data(meta)
    return name, load_dataset(name, unlabelled_ok=True).subset(calib_size)
