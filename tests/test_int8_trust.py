"""Int8 you can trust: layer sensitivity and accuracy-aware quantization, on ONNX Runtime and NNCF.

The bundled ResNets are robust to int8, so these tests damage one layer on purpose, two ways:
- an outlier channel (scripts/damage_layer.py): one channel of layer1.0's first conv scaled x1000 and the
  next conv's matching weights divided by 1000. The float model computes the same function, but that
  activation's int8 range is 1000x too wide: every toolkit is hurt the same way.
- a range set by hand (`--range TENSOR=0,0.05`): that activation saturates.
Both must be ranked first by the sensitivity passes and be what accuracy-aware int8 reverts.
"""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from conftest import damage_script
from rnopt.accuracy import AccuracyBound, validation_set
from rnopt.errors import RnoptError
from rnopt.onnx_export import export_model
from rnopt.models import create_model
from rnopt.onnx_model import read_meta
from rnopt.quantization.sensitivity import run_outputs

DAMAGED_BLOCK = "layer1.0"


@pytest.fixture(scope="session")
def damaged_onnx(tmp_path_factory, fp32_onnx) -> Path:
    loaded = create_model("resnet20_cifar10")
    damage_script().damage(loaded.module)
    path = tmp_path_factory.mktemp("damaged") / "damaged.onnx"
    export_model(loaded, path)  # the export check compares with the damaged module: same function, new weights
    return path


def _node_in(model_path: Path, scope: str, op_type: str) -> onnx.NodeProto:
    """The node the exporter recorded under PyTorch module `scope`."""
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        scopes = [p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"]
        if node.op_type == op_type and scopes and f"'{scope}'" in scopes[0]:
            return node
    raise AssertionError(f"no {op_type} under {scope}")


def _damaged_conv(model_path: Path) -> str:
    """The conv that reads the outlier channel: layer1.0's second conv (BN folded, so scoped as bn2)."""
    return _node_in(model_path, f"{DAMAGED_BLOCK}.bn2", "Conv").name


def test_validation_set_is_bundled_and_is_not_the_test_set(fp32_onnx):
    meta = read_meta(onnx.load(str(fp32_onnx), load_external_data=False))
    val = validation_set(meta, None)
    assert len(val) == 5000 and val.name == "cifar10-val"
    assert sorted((val.labels == c).sum() for c in range(10)) == [500] * 10
    with pytest.raises(RnoptError, match="test set"):
        validation_set(meta, "cifar10")


def test_bounds():
    assert AccuracyBound("top-1", 0.5).met(0.85, 0.846)  # the bound in points, the scores fractions
    assert not AccuracyBound("top-1", 0.5).met(0.85, 0.844)
    assert AccuracyBound("top-1", 1.0, "relative").met(0.80, 0.793)  # 0.875 % of 0.80
    assert not AccuracyBound("top-1", 1.0, "relative").met(0.80, 0.791)
    assert AccuracyBound.min_cosine(0.99).met(1.0, 0.995) and not AccuracyBound.min_cosine(0.99).met(1.0, 0.98)
    with pytest.raises(RnoptError):
        AccuracyBound("top-1", -1)


def test_sensitivity_ranks_the_outlier_layer_first(cli, damaged_onnx, tmp_path):
    out = tmp_path / "s.json"
    r = cli("sensitivity", damaged_onnx, "--limit", "500", "--top", "3", "--sqnr-images", "100", "--json", out)
    assert r.code == 0, r.err
    result = json.loads(out.read_text())["sensitivity"][0]
    assert result["data"].startswith("cifar10-val") and result["int8_score"] < result["float_score"] - 0.05
    layers = result["layers"]
    conv = _damaged_conv(damaged_onnx)
    cheap_first = max((q for q in layers if q["noise_added"] is not None), key=lambda q: q["noise_added"])
    truth_first = max((q for q in layers if q["score_change"] is not None), key=lambda q: q["score_change"])
    assert conv in cheap_first["nodes"] and conv in truth_first["nodes"]
    assert truth_first["score_change"] > 0.05  # scores are fractions: keeping that group float recovers most of the loss
    assert "Int8 sensitivity" in r.out
    html = tmp_path / "s.html"
    assert cli("report", out, "-o", html).code == 0
    page = html.read_text()
    assert "Int8 sensitivity per layer" in page and "<svg" in page and cheap_first["tensor"] in page


SECOND_DAMAGED_BLOCK = "layer3.1"


@pytest.fixture(scope="session")
def twice_damaged_onnx(tmp_path_factory) -> Path:
    """Outlier channels in two stages: layer1.0 (early, 16 channels) and layer3.1 (late, 64 channels)."""
    loaded = create_model("resnet20_cifar10")
    for block in (DAMAGED_BLOCK, SECOND_DAMAGED_BLOCK):
        damage_script().damage(loaded.module, block)
    path = tmp_path_factory.mktemp("damaged2") / "damaged2.onnx"
    export_model(loaded, path)
    return path


def test_sensitivity_finds_damage_in_two_stages(cli, twice_damaged_onnx, tmp_path):
    """Both damaged convs, one early and one late in the network, are ranked the two worst by noise added, and
    their ground truths are measured; every quantized tensor of the int8 model is in the table."""
    out = tmp_path / "s.json"
    r = cli("sensitivity", twice_damaged_onnx, "--limit", "300", "--top", "2", "--sqnr-images", "50", "--json", out,
            "--quiet")
    assert r.code == 0, r.err
    layers = json.loads(out.read_text())["sensitivity"][0]["layers"]
    convs = {_node_in(twice_damaged_onnx, f"{block}.bn2", "Conv").name for block in
             (DAMAGED_BLOCK, SECOND_DAMAGED_BLOCK)}
    by_noise = sorted((q for q in layers if q["noise_added"] is not None), key=lambda q: -q["noise_added"])
    assert {n for q in by_noise[:2] for n in q["nodes"]} >= convs
    measured = [q for q in layers if q["score_change"] is not None]
    assert {n for q in measured for n in q["nodes"]} >= convs and all(q["score_change"] > 0.005 for q in measured)
    activations = [q for q in layers if q["kind"] == "activation"]
    assert len(activations) > 30 and max(q["order"] for q in activations) > 0.9 * max(q["order"] for q in layers)


def test_sensitivity_of_a_given_int8_with_a_saturated_range(cli, fp32_onnx, tmp_path):
    relu = _node_in(fp32_onnx, DAMAGED_BLOCK, "Relu").output[0]  # the block's inner ReLU
    tiny = tmp_path / "tiny.int8.onnx"
    assert cli("quantize", fp32_onnx, "-o", tiny, "--range", f"{relu}=0,0.05", "--quiet").code == 0
    out = tmp_path / "s.json"
    r = cli("sensitivity", fp32_onnx, tiny, "--limit", "500", "--top", "2", "--sqnr-images", "100", "--json", out,
            "--quiet")
    assert r.code == 0, r.err
    layers = json.loads(out.read_text())["sensitivity"][0]["layers"]
    by_local = min(layers, key=lambda q: q["sqnr_db"])
    by_noise = max((q for q in layers if q["noise_added"] is not None), key=lambda q: q["noise_added"])
    assert by_local["tensor"] == relu == by_noise["tensor"]
    measured = {q["tensor"]: q["score_change"] for q in layers if q["score_change"] is not None}
    assert measured[relu] > 0.05


def test_accuracy_aware_onnxruntime_reverts_exactly_the_damaged_layer(cli, damaged_onnx, image_folder, tmp_path):
    out, record = tmp_path / "aa.onnx", tmp_path / "aa.json"
    r = cli("quantize", damaged_onnx, "-o", out, "--max-drop", "1", "--limit", "1000", "--test-data", image_folder,
            "--json", record)
    assert r.code == 0, r.err
    result = json.loads(record.read_text())["quantizations"][0]
    aware = result["accuracy_aware"]
    assert aware["met"] and aware["final_drop"] <= 0.01 and aware["int8_score"] < aware["float_score"] - 0.05
    kept = [s for s in aware["steps"] if s["kept"]]
    assert len(kept) == 1 and _damaged_conv(damaged_onnx) in kept[0]["nodes"]
    assert _damaged_conv(damaged_onnx) in aware["kept_float"] and aware["layers_quantized"] > 20
    assert result["excluded"] == kept[0]["nodes"]
    assert aware["test_data"] == str(image_folder) and aware["test_score"] is not None
    # every decision was scored on the 1,000 validation images (not on the 18 test images): the float score is
    # the float model's top-1 on exactly those
    val = validation_set(read_meta(onnx.load(str(damaged_onnx), load_external_data=False)), None, 1000)
    float_top1 = float((run_outputs(damaged_onnx, val.images).argmax(1) == val.labels).mean())
    assert aware["float_score"] == pytest.approx(float_top1, abs=1e-9) and aware["images"] == 1000
    assert aware["layer_costs"] and aware["layer_costs"][0]["label"] == "final"
    assert "Revert steps" in r.out and "kept in float" in r.out
    written = onnx.load(str(out), load_external_data=False)
    assert "accuracy-aware" in read_meta(written).history[-1]
    md = tmp_path / "aa.md"
    assert cli("report", record, "-o", md).code == 0
    assert "Revert steps" in md.read_text() and "validation images (never the test set)" in md.read_text()


def test_max_drop_zero_ends_with_an_honest_answer(cli, fp32_onnx, image_folder, tmp_path):
    out, record = tmp_path / "zero.onnx", tmp_path / "zero.json"
    r = cli("quantize", fp32_onnx, "-o", out, "--max-drop", "0", "--limit", "300", "--max-steps", "2",
            "--test-data", image_folder, "--json", record)
    aware = json.loads(record.read_text())["quantizations"][0]["accuracy_aware"]
    assert out.exists()  # the best model found is kept either way
    assert len(aware["steps"]) <= 2
    best = aware["int8_score"]
    for step in aware["steps"]:  # a step is kept only when it beats the best so far; otherwise undone
        assert step["kept"] == (step["score"] > best)
        best = max(best, step["score"]) if step["kept"] else best
    assert aware["final_score"] == best
    if aware["met"]:
        assert r.code == 0 and aware["final_drop"] <= 0
    else:
        assert r.code == 1 and "was not met" in r.err and str(out) in r.err and "Traceback" not in r.err


def test_accuracy_aware_openvino_reads_back_what_nncf_reverted(cli, damaged_onnx, image_folder, tmp_path):
    pytest.importorskip("nncf")
    out, record = tmp_path / "aa.xml", tmp_path / "aa.json"
    r = cli("quantize", damaged_onnx, "-o", out, "--backend", "openvino", "--max-drop", "1", "--limit", "1000",
            "--calib-size", "300", "--test-data", image_folder, "--json", record)
    assert r.code == 0, r.err
    aware = json.loads(record.read_text())["quantizations"][0]["accuracy_aware"]
    assert aware["toolkit"] == "openvino" and aware["met"]
    # NNCF ranks on its own and may take a second layer with the damaged one, depending on the validation subset
    assert 1 <= len(aware["kept_float"]) <= 2 and aware["kept_float"][0].startswith(_damaged_conv(damaged_onnx))
    assert aware["steps"] and aware["layers_quantized"] > 20
    assert "bf16" in aware["runs_float_as"] or "OpenVINO runs" in aware["runs_float_as"]
    assert out.exists() and out.with_suffix(".bin").exists()


def test_embedding_bounds(cli, tmp_path, image_folder):
    features = tmp_path / "f.onnx"
    assert cli("export", "resnet20_cifar10", "--head", "features", "-o", features, "--quiet").code == 0
    record = tmp_path / "cos.json"
    r = cli("quantize", features, "-o", tmp_path / "cos.onnx", "--min-cosine", "0.95", "--limit", "300",
            "--test-data", image_folder, "--json", record, "--quiet")
    assert r.code == 0, r.err
    aware = json.loads(record.read_text())["quantizations"][0]["accuracy_aware"]
    assert aware["measure"] == "cosine" and aware["float_score"] == pytest.approx(1.0)
    assert 0.95 <= aware["final_score"] < 1.0 and "cosine" in aware["bound"]
    record = tmp_path / "map.json"
    r = cli("quantize", features, "-o", tmp_path / "map.onnx", "--max-drop", "2", "--limit", "300",
            "--test-data", image_folder, "--json", record, "--quiet")
    assert r.code == 0, r.err
    assert json.loads(record.read_text())["quantizations"][0]["accuracy_aware"]["measure"] == "mAP"
    record = tmp_path / "sens.json"
    r = cli("sensitivity", features, "--measure", "cosine", "--limit", "200", "--top", "1", "--sqnr-images", "50",
            "--json", record, "--quiet")
    assert r.code == 0, r.err
    result = json.loads(record.read_text())["sensitivity"][0]
    assert result["measure"] == "cosine" and result["float_score"] == pytest.approx(1.0)
    assert 0.9 < result["int8_score"] < 1.0 and sum(q["score_change"] is not None for q in result["layers"]) == 1


@pytest.mark.parametrize("args, message", [
    (["--max-drop", "-1"], "maximum drop"),
    (["--max-drop", "1", "--data", "cifar10"], "test set"),
    (["--limit", "10"], "add --max-drop"),
    (["--range", "nosuchtensor=0,1"], "no tensor of that name"),
    (["--range", "relu=1,0"], "below the maximum"),
    (["--max-drop", "1", "--min-cosine", "0.9"], "not both"),
    (["--max-drop", "1", "--measure", "mAP"], "embedding models"),
])
def test_bad_accuracy_aware_input_is_one_line(cli, fp32_onnx, tmp_path, args, message):
    out = tmp_path / "x.onnx"
    r = cli("quantize", fp32_onnx, "-o", out, *args)
    assert r.code != 0 and message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1 and not out.exists()


def test_sensitivity_refuses_models_it_cannot_compare(cli, fp32_onnx, int8_onnx, damaged_onnx):
    r = cli("sensitivity", int8_onnx, "--limit", "50")
    assert r.code == 1 and "already quantized" in r.err
    r = cli("sensitivity", fp32_onnx, damaged_onnx, "--limit", "50")
    assert r.code == 1 and "no QuantizeLinear" in r.err and "Traceback" not in r.err


def test_run_makes_its_int8_variant_accuracy_aware(cli, tmp_path):
    r = cli("run", "--max-drop", "5", "--backend", "onnxruntime", "--output", tmp_path, "--limit", "100",
            "--batch-size", "1", "--iterations", "5", "--min-time", "0", "--no-memory")
    assert r.code == 0, r.err
    [folder] = tmp_path.iterdir()
    [quantization] = json.loads((folder / "report.json").read_text())["quantizations"]
    aware = quantization["accuracy_aware"]
    assert aware["data"] == "cifar10-val" and aware["images"] == 5000 and aware["met"]
    assert "Accuracy-aware int8 (onnxruntime)" in (folder / "report.md").read_text()
    r = cli("run", "--val-data", "cifar10-val", "--output", tmp_path)
    assert r.code == 1 and "add --max-drop" in r.err
