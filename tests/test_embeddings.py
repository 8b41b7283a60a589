"""Feature-extractor mode: embedding models, retrieval fidelity, `rnopt embed`."""
import json

import numpy as np
import pytest
import torch

from rnopt.models import MODELS
from rnopt.models.heads import FeatureExtractor
from rnopt.models.registry import bundled_weights_path, get_spec
from rnopt.retrieval import fidelity, search

EXPECTED_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048,
                 "resnet20_cifar10": 64, "resnet32_cifar10": 64, "resnet44_cifar10": 64, "resnet56_cifar10": 64,
                 "resnet110_cifar10": 64}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_architecture_gives_its_embedding_dimension(name):
    spec = get_spec(name)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        backbone = spec.build(spec.num_classes)
        out = FeatureExtractor(backbone)(torch.empty((2, *spec.input_shape)))
    assert backbone.num_features == EXPECTED_DIMS[name] and tuple(out.shape) == (2, EXPECTED_DIMS[name])


def test_precision_and_map_on_a_hand_made_example():
    # two tight clusters on the x and y axes; item 2 sits between them, nearer the x cluster
    e = np.array([[1, 0], [0.99, 0.1], [0.8, 0.6], [0, 1], [0.1, 0.99]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 1])
    found = search(e, labels, ks=(1, 2))
    assert found.top[0, 0] == 1 and found.top[3, 0] == 4
    # item 2's nearest is item 1 (class 0): its precision@1 is 0; every other item finds its own class first
    assert found.precision_at[1] == pytest.approx(4 / 5)
    # item 2 ranks its class-1 neighbours 3rd and 4th: AP = (1/3 + 2/4) / 2
    ap2 = (1 / 3 + 2 / 4) / 2
    # every other item ranks all its relevant items first: AP 1
    assert found.average_precision == pytest.approx(np.mean([1.0, 1.0, ap2, 1.0, 1.0]))


def test_a_model_compared_with_itself_agrees_fully_and_a_damaged_copy_does_not():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(300, 16)).astype(np.float32)
    same = search(e)
    f = fidelity(e, e.copy(), same.top, search(e.copy()).top)
    assert f.cosine_min == pytest.approx(1.0) and f.overlap_at == {1: 1.0, 5: 1.0, 10: 1.0}
    damaged = e.copy()
    damaged[:, :4] = 0  # a quarter of the dimensions lost
    g = fidelity(e, damaged, same.top, search(damaged).top)
    assert g.cosine_mean < 0.95 and g.overlap_at[10] < 0.6


@pytest.fixture(scope="module")
def feature_files(tmp_path_factory):
    from rnopt import ModelOptions, QuantizeConfig, api

    folder = tmp_path_factory.mktemp("features")
    fp32, int8 = folder / "f.onnx", folder / "f.int8.onnx"
    api.export("resnet20_cifar10", fp32, ModelOptions(head="features"))
    api.quantize(fp32, int8, QuantizeConfig(calib_size=200))
    return fp32, int8


def test_eval_of_an_embedding_model_reports_retrieval_fidelity(cli, tmp_path, feature_files):
    fp32, int8 = feature_files
    r = cli("eval", fp32, int8, "--limit", "1000", "--json", tmp_path / "e.json")
    assert r.code == 0, r.err
    [section] = json.loads((tmp_path / "e.json").read_text())["embeddings"]
    reference, candidate = section["results"]
    assert reference["reference"] is None and reference["dim"] == 64 and reference["n"] == 1000
    assert candidate["reference_id"] == reference["spec_id"]
    # int8 noise: cosines near 1, yet neighbour lists reordered among near ties, retrieval quality unchanged
    assert 0.995 < candidate["cosine_mean"] < 1.0 and candidate["cosine_min"] < candidate["cosine_mean"]
    assert candidate["overlap_at"]["10"] < 0.97
    assert abs(candidate["map"] - reference["map"]) < 0.01 and 0.4 < reference["map"] < 0.9
    assert "Embedding fidelity" in r.out and "overlap@10" in r.out


def test_a_classifier_checkpoint_exports_as_features_and_the_file_says_so(tmp_path, feature_files):
    from rnopt.onnx_model import load_onnx, read_meta

    meta = read_meta(load_onnx(feature_files[0]))
    assert (meta.head, meta.embedding_dim, meta.normalize) == ("features", 64, False)
    from rnopt import ModelOptions, api

    api.export("resnet20_cifar10", tmp_path / "n.onnx", ModelOptions(head="features", normalize=True))
    from rnopt.backends.onnxruntime.session import create_session, run_once

    out = run_once(create_session(str(tmp_path / "n.onnx")), np.ones((3, 3, 32, 32), np.float32))
    assert out.shape == (3, 64) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert read_meta(load_onnx(tmp_path / "n.onnx")).normalize


def test_embed_writes_vectors_and_names_bad_images(cli, tmp_path, feature_files, image_folder):
    import shutil

    folder = tmp_path / "catalogue"
    shutil.copytree(image_folder, folder)
    (folder / "cat" / "broken.jpg").write_text("not a jpeg")
    out = tmp_path / "v.npz"
    r = cli("embed", feature_files[0], folder, "-o", out)
    assert r.code == 1 and "broken.jpg" in r.err and "--skip-bad" in r.err and not out.exists()
    r = cli("embed", feature_files[0], folder, "-o", out, "--skip-bad", "--json", tmp_path / "e.json")
    assert r.code == 0, r.err
    data = np.load(out)
    assert data["vectors"].shape == (18, 64) and len(data["paths"]) == 18 and "cat/broken.jpg" not in data["paths"]
    assert sorted(set(data["class_names"])) == ["airplane", "cat", "ship"]
    assert json.loads(str(data["meta"]))["model"]["head"] == "features"
    details = json.loads((tmp_path / "e.json").read_text())["embedded"]
    assert details["skipped"] == ["cat/broken.jpg: not a jpeg"] or details["skipped"][0].startswith("cat/broken.jpg")
    assert details["images_per_s"] > 0
    r = cli("embed", "resnet20_cifar10", folder, "-o", tmp_path / "w.npz")  # logits model: refused
    assert r.code == 1 and "--head features" in r.err
    r = cli("embed", "resnet20_cifar10", folder, "-o", tmp_path / "t.npz", "--head", "features", "--skip-bad")
    assert r.code == 0, r.err
    torch_vectors = np.load(tmp_path / "t.npz")
    assert json.loads(str(torch_vectors["meta"]))["model"]["head"] == "features"
    assert np.allclose(torch_vectors["vectors"], data["vectors"], atol=1e-4)  # PyTorch and its ONNX export agree


def test_a_damaged_model_loses_retrieval_fidelity(cli, tmp_path, feature_files):
    """The same ResNet-20 with one block's second convolution zeroed: its neighbours are no longer the reference's."""
    from rnopt.models.checkpoint import read_state_dict

    state = read_state_dict(bundled_weights_path(get_spec("resnet20_cifar10")))
    state["layer3.0.conv2.weight"] = torch.zeros_like(state["layer3.0.conv2.weight"])
    torch.save({"state_dict": state}, tmp_path / "damaged.th")
    r = cli("export", "resnet20_cifar10", "--weights", tmp_path / "damaged.th", "--head", "features",
            "-o", tmp_path / "damaged.onnx")
    assert r.code == 0, r.err
    r = cli("eval", feature_files[0], tmp_path / "damaged.onnx", "--limit", "500", "--json", tmp_path / "e.json")
    assert r.code == 0, r.err
    _, damaged = json.loads((tmp_path / "e.json").read_text())["embeddings"][0]["results"]
    assert damaged["cosine_mean"] < 0.99 and damaged["overlap_at"]["10"] < 0.6
