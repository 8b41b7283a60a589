"""The deploy folder `rnopt tune` writes: the chosen model file, a deploy.py that runs it with the runtime's own API
(no rnopt), and a deploy.md. deploy.py runs in a fresh process that cannot import rnopt, and its outputs equal
rnopt's on the same images, for ONNX Runtime and for OpenVINO."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnopt.data import load_dataset
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.onnx_model import model_meta
from rnopt.results import Record
from rnopt.spec import VariantSpec


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Eight CIFAR-10 test images as JPEG files, as a user would pass them, and three that exercise the rest of
    the preprocessing: a landscape and a portrait photo larger than the input (resize, centre crop) and a 16-bit
    greyscale PNG (scaled to 8 bits, then RGB)."""
    import io

    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    paths = []
    for index, (_, read, _) in enumerate(load_dataset("cifar10").subset(8).samples):
        paths.append(folder / f"image{index}.jpg")
        paths[-1].write_bytes(read())
    photo = Image.open(io.BytesIO(paths[0].read_bytes())).convert("RGB")
    for name, size in (("wide.png", (77, 50)), ("tall.png", (45, 91))):
        paths.append(folder / name)
        photo.resize(size, Image.BICUBIC).save(paths[-1])
    grey = np.asarray(photo.convert("L").resize((40, 40)), dtype=np.uint16) * 257
    paths.append(folder / "grey16.png")
    image = Image.fromarray(grey.astype("<u2"))
    assert image.mode.startswith("I")  # 16-bit
    image.save(paths[-1])
    return paths


def _rnopt_top5(spec: VariantSpec, model: Path, images: list[Path]) -> list[tuple[list[int], np.ndarray]]:
    """rnopt's own outputs for the file (loaded as `spec` runs it), as softmax top-5."""
    from rnopt.artifacts import artifact_for
    from rnopt.data import ImageDataset

    dataset = ImageDataset("given", [], [(0, p.read_bytes, str(p)) for p in images])
    [(batch, _)] = list(dataset.batches(len(images), model_meta(model).preprocessing))
    [variant], failures = InProcessExecutor().load([VariantSpec(artifact_for(str(model)), spec.runtime, spec.device,
                                                                spec.precision, spec.threads, spec.config)])
    assert not failures
    found = []
    for row in variant.session.predict(batch).astype(np.float64):
        scores = np.exp(row - row.max())
        scores /= scores.sum()
        top = list(np.argsort(-scores, kind="stable")[:5])
        found.append((top, scores[top]))
    return found


def _model_in(folder: Path) -> Path:
    """The deploy folder's model file: model.onnx, or an IR's model.xml (its weights, model.bin, beside it)."""
    [model] = [p for p in folder.glob("model.*") if p.suffix in (".onnx", ".xml")]
    return model


def _deploy_lines(run_without, folder: Path, images: list[Path]) -> list[dict]:
    proc = run_without(["rnopt"], str(folder / "deploy.py"), *images)  # a process that cannot import rnopt
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.strip().splitlines()]


def _same(deployed: list[dict], expected: list[tuple[list[int], np.ndarray]], images: list[Path]) -> None:
    assert [line["image"] for line in deployed] == [str(p) for p in images]
    for line, (top, scores) in zip(deployed, expected):
        assert [t["index"] for t in line["top5"]] == top
        assert np.allclose([t["score"] for t in line["top5"]], scores, atol=1e-4)


def test_tune_leaves_a_deploy_folder_that_runs_without_rnopt(tuned, images, run_without):
    record = Record.from_dict(json.loads((tuned / "report.json").read_text()))
    search = record.searches[0]
    spec = record.spec(search.chosen_id)
    deploy = tuned / "deploy"
    model = _model_in(deploy)
    assert {"deploy.py", "deploy.md"} <= {p.name for p in deploy.iterdir()}
    chosen = Path(search.chosen_file)
    assert model.read_bytes() == chosen.read_bytes()  # the file that was measured
    if model.suffix == ".xml":  # an IR: its weights too
        assert model.with_suffix(".bin").read_bytes() == chosen.with_suffix(".bin").read_bytes()
    assert "import rnopt" not in (deploy / "deploy.py").read_text()
    guide = (deploy / "deploy.md").read_text()
    assert spec.label in guide and search.bound in guide and search.data in guide
    _same(_deploy_lines(run_without, deploy, images), _rnopt_top5(spec, model, images), images)
    assert (deploy / "deploy.py").stat().st_mode & 0o100  # executable
    # without images it says how to use it, and fails
    proc = run_without(["rnopt"], str(deploy / "deploy.py"))
    assert proc.returncode == 2 and "python deploy.py IMAGE" in proc.stderr


@pytest.mark.parametrize("runtime, suffix", [("onnxruntime", ".onnx"), ("openvino", ".onnx"), ("openvino", ".xml")])
def test_each_runtimes_deploy_script_gives_rnopts_outputs(tuned, images, run_without, tmp_path, runtime, suffix):
    """Whatever was chosen: the script of an int8 candidate on each runtime (OpenVINO on ORT's QDQ file and on
    NNCF's IR), with its measured settings."""
    from rnopt.report.deploy import write_deploy

    record = Record.from_dict(json.loads((tuned / "report.json").read_text()))
    search = record.searches[0]
    specs = record.specs
    spec = next(s for s in specs if s.runtime == runtime and s.artifact.quantized and s.artifact.file_suffix == suffix)
    search.chosen_id = spec.id
    search.chosen_file = str(tuned / spec.label.split(" ")[0])
    folder = write_deploy(record, tmp_path)
    assert folder is not None
    model = _model_in(folder)
    _same(_deploy_lines(run_without, folder, images), _rnopt_top5(spec, model, images), images)


def test_deploy_scripts_set_what_was_measured(fp32_onnx, run_without, tmp_path):
    """The settings a variant ran with reach its script: ONNX Runtime's session options, OpenVINO's properties
    (the same dictionary rnopt's OpenVINO backend compiles with)."""
    from rnopt.backends.onnxruntime.config import OrtConfig
    from rnopt.backends.openvino.config import OpenVinoConfig

    ort = OrtConfig(opt_level="extended", spinning=False, inter_op=2).deploy_code("cpu", None, 1)
    body = "\n".join(ort.load)
    assert "ORT_ENABLE_EXTENDED" in body and "intra_op_num_threads = 1" in body and "inter_op_num_threads = 2" in body
    assert 'session.intra_op.allow_spinning", "0"' in body and "ORT_PARALLEL" in body
    assert "spinning off" in ort.settings and ort.package == "onnxruntime"
    ov = OpenVinoConfig(hint="throughput").deploy_code("cpu", "fp32", 1)
    expected = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "1"}
    assert OpenVinoConfig(hint="throughput").properties("fp32", 1) == expected
    assert repr(expected) in "\n".join(ov.load) and "AsyncInferQueue" in ov.settings
    # the ONNX Runtime lines run as written, without rnopt
    script = tmp_path / "check.py"
    script.write_text("import numpy as np\nfrom pathlib import Path\n" + ort.imports + f"\nMODEL = Path({str(fp32_onnx)!r})\n"
                      "def load():\n" + "\n".join(f"    {line}" for line in ort.load) +
                      "\nprint(load()(np.zeros((1, 3, 32, 32), np.float32)).shape)\n")
    proc = run_without(["rnopt"], str(script))
    assert proc.returncode == 0 and proc.stdout.strip() == "(1, 10)", proc.stderr
