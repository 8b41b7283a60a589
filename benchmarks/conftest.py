"""Models for the benchmark suite, built once and cached under benchmarks/.cache/.

ResNet-50 has no trained weights offline: it runs random-initialised, which changes nothing about
its speed. Its int8 model is calibrated on 64 real photos of ../shared's ImageNet sample when it is
present, else on 64 bundled CIFAR images upscaled by the ImageNet preprocessing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rnopt.onnx_export import export_model
from rnopt.models import create_model
from rnopt.quantization import quantize_file

CACHE = Path(__file__).parent / ".cache"
IMAGENET_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def _calibration_folder() -> Path:
    folder = CACHE / "calib" / "images"
    if not folder.exists():
        folder.mkdir(parents=True)
        if IMAGENET_SAMPLE.is_dir():
            for image in sorted(IMAGENET_SAMPLE.glob("*.JPEG"))[:64]:
                shutil.copy(image, folder / image.name)
        else:
            from rnopt.data import load_dataset

            for i, (_, read, _) in enumerate(load_dataset("cifar10-calib").samples[:64]):
                (folder / f"{i}.jpg").write_bytes(read())
    return folder.parent


def build(name: str) -> dict[str, Path]:
    """fp32 and int8 (ORT QDQ) ONNX files for `name`, reused between runs."""
    CACHE.mkdir(exist_ok=True)
    fp32, int8 = CACHE / f"{name}.onnx", CACHE / f"{name}.int8.onnx"
    if not fp32.exists():
        export_model(create_model(name), fp32)
    if not int8.exists():
        calib = None if name.endswith("cifar10") else str(_calibration_folder())
        quantize_file(fp32, int8, calib_data=calib, calib_size=64)
    return {"fp32": fp32, "int8": int8}


@pytest.fixture(scope="session")
def model_files():
    return {name: build(name) for name in ("resnet20_cifar10", "resnet50")}
