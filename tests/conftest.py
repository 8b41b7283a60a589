from __future__ import annotations

import io
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from rnopt.cli import main
from rnopt.export import export_model
from rnopt.models import create_model
from rnopt.quantize import quantize_onnx


@pytest.fixture(scope="session")
def resnet20():
    return create_model("resnet20_cifar10")


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory, resnet20) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "resnet20.onnx"
    export_model(resnet20, path)
    return path


@pytest.fixture(scope="session")
def int8_onnx(fp32_onnx) -> Path:
    path = fp32_onnx.with_name("resnet20.int8.onnx")
    quantize_onnx(fp32_onnx, path)
    return path


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A small ImageFolder with real CIFAR-10 test JPEGs: 6 images of each of 3 classes."""
    root = tmp_path_factory.mktemp("folder")
    with resources.as_file(resources.files("rnopt.data") / "assets" / "cifar10-test.zip") as archive:
        with zipfile.ZipFile(archive) as zf:
            for cls in ("airplane", "cat", "ship"):
                members = [n for n in zf.namelist() if n.startswith(cls + "/")][:6]
                (root / cls).mkdir()
                for name in members:
                    (root / name).write_bytes(zf.read(name))
    return root


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run the rnopt CLI in-process; returns exit code, stdout and stderr."""

    def run(*argv: str) -> CliResult:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def jpeg_bytes(size=(32, 32), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()
