from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

# Ray reads this when it is imported: without it a test cluster binds the machine's interface address even when
# told 127.0.0.1 (tests/test_cluster_nodes.py); set before any test module imports Ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402 - after the environment Ray reads
import pytest
import torch

from rnopt.cli import main
from rnopt.onnx_export import export_model
from rnopt.models import create_model
from rnopt.quantization import quantize_file


@pytest.fixture(scope="session", autouse=True)
def private_artifact_cache(tmp_path_factory):
    """The suite builds into a cache of its own: entries a home cache holds may have been built by other code or
    on another CPU (a calibrated step's bytes follow the CPU's float kernels), and tests compare bytes."""
    before = os.environ.get("RNOPT_CACHE_DIR")
    os.environ["RNOPT_CACHE_DIR"] = str(tmp_path_factory.mktemp("rnopt-cache"))
    # Outputs are computed in every test (tests/test_predictions.py turns the prediction cache on): a test that
    # stops a worker mid-evaluation, or counts images, sees the work done.
    os.environ["RNOPT_PREDICTION_CACHE"] = "0"
    yield
    if before is None:
        del os.environ["RNOPT_CACHE_DIR"]
    else:
        os.environ["RNOPT_CACHE_DIR"] = before


# A small tune over ONNX Runtime and OpenVINO (every int8 candidate: ORT's QDQ file on both runtimes, NNCF's IR).
TUNE = ("--backend", "onnxruntime,openvino", "--recipe", "minmax", "--limit", "300", "--iterations", "5",
        "--min-time", "0.05", "--quiet")


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, image_folder) -> Path:
    """The folder `rnopt tune TUNE...` wrote (once for the tests that read it; none changes it), its final figures
    on the small image folder (the whole test set adds about 10 s; no test here reads them)."""
    out = tmp_path_factory.mktemp("tune")
    assert main(["tune", "--output", str(out / "reports"), "--test-data", str(image_folder), *TUNE]) == 0
    [folder] = (out / "reports").iterdir()
    return folder


@pytest.fixture(scope="session")
def resnet20():
    return create_model("resnet20_cifar10")


@pytest.fixture(scope="session")
def batch():
    """Three random CIFAR-size inputs."""
    return np.random.default_rng(1).standard_normal((3, 3, 32, 32), dtype=np.float32)


@pytest.fixture(scope="session")
def reference(resnet20, batch):
    """ResNet-20's fp32 PyTorch logits for `batch`."""
    with torch.no_grad():
        return resnet20.module(torch.from_numpy(batch)).numpy()


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory, resnet20) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "resnet20.onnx"
    export_model(resnet20, path)
    return path


@pytest.fixture(scope="session")
def int8_onnx(fp32_onnx) -> Path:
    path = fp32_onnx.with_name("resnet20.int8.onnx")
    quantize_file(fp32_onnx, path)
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


# Run a Python script or module as it would run on a machine without some packages: the import
# system is told they do not exist. (The GPU machines, for one, have PyTorch and ONNX but no OpenVINO.)
_WITHOUT = """
import runpy, sys
missing = set(sys.argv[1].split(","))
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in missing:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
target, sys.argv = sys.argv[2], sys.argv[2:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def _run_without(packages: list[str], target: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WITHOUT, ",".join(packages), target, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])


@pytest.fixture
def run_without():
    """run_without(packages, target, *args): run a .py path or a module (rnopt) in a fresh interpreter
    that cannot import `packages`."""
    return _run_without


def settings(runtime: str, device: str = "cpu", precision=None, threads=None, **options):
    """What a backend's `load` reads (a VariantSpec), for tests that load a model object directly."""
    from rnopt.spec import ArtifactSpec, VariantSpec

    return VariantSpec.build(ArtifactSpec("direct.onnx"), runtime, device, precision, threads, **options)


def bench_rows(payload: dict) -> list[dict]:
    """The bench results of a JSON file rnopt wrote."""
    return payload["bench"]


def eval_section(payload: dict) -> dict:
    [section] = payload["evals"]
    return section


def loaded_variant(model, runtime: str, label: str | None = None, **kwargs):
    """A model argument (built-in name or file) loaded on `runtime` in this process, as the executors do."""
    from rnopt.artifacts import ArtifactStore, artifact_for
    from rnopt.execute import load_variant
    from rnopt.spec import VariantSpec

    spec = VariantSpec.build(artifact_for(str(model)), runtime, label=label or "", **kwargs)
    return load_variant(spec, ArtifactStore())


def damage_script():
    """scripts/damage_layer.py as a module: `damage(module)` gives a CIFAR ResNet an outlier channel."""
    spec = importlib.util.spec_from_file_location("damage_layer", Path(__file__).parents[1] / "scripts" /
                                                  "damage_layer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
