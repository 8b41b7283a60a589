from pathlib import Path

import pytest

from conftest import loaded_variant
from rnopt.errors import RnoptError
from rnopt.data import align_labels, load_dataset
from rnopt.evaluation import evaluate
from rnopt.onnx_model import load_onnx, read_meta


def test_bundled_sets_are_complete_and_balanced():
    test, calib = load_dataset("cifar10"), load_dataset("cifar10-calib")
    assert len(test) == 10_000 and len(calib) == 500
    assert test.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                "ship", "truck"]
    subset = test.subset(2000)
    counts = [sum(1 for label, _, _ in subset.samples if label == c) for c in range(10)]
    assert min(counts) > 150, "a --limit subset must cover every class"
    assert [s[2] for s in subset.samples] == [s[2] for s in test.subset(2000).samples]


@pytest.mark.slow
def test_resnet20_float_top1_on_full_jpeg_test_set(fp32_onnx):
    """The reference figure: 81.03 % on the 10,000 bundled CIFAR-10 JPEG test images."""
    meta = read_meta(load_onnx(fp32_onnx))
    [result], _ = _results_and_comparisons(evaluate([loaded_variant(fp32_onnx, "onnxruntime")], load_dataset("cifar10"), meta.preprocessing, 500))
    assert result.n == 10_000
    assert abs(result.top1 - 0.8103) <= 0.0005
    assert result.top5 > result.top1


def test_torch_and_onnx_agree_on_real_images(fp32_onnx, resnet20):
    meta = read_meta(load_onnx(fp32_onnx))
    variants = [loaded_variant("resnet20_cifar10", "torch"), loaded_variant(fp32_onnx, "onnxruntime")]
    results, [cmp] = _results_and_comparisons(evaluate(variants, load_dataset("cifar10").subset(300), meta.preprocessing, 100))
    assert results[0].top1 == results[1].top1 and cmp.agreement == 1.0 and cmp.max_abs_logit_diff < 1e-3
    assert cmp.max_rel_logit_diff < 1e-5  # relative to the largest |logit|: fp32 rounding only
    assert (cmp.reference_id, cmp.candidate_id) == (variants[0].spec.id, variants[1].spec.id)


def test_image_folder_maps_class_names_to_model_indices(image_folder, resnet20):
    data = align_labels(load_dataset(image_folder), resnet20.class_names)
    assert len(data) == 18
    assert sorted({label for label, _, _ in data.samples}) == [0, 3, 8]  # airplane, cat, ship
    [result], _ = _results_and_comparisons(evaluate([loaded_variant("resnet20_cifar10", "torch")], data, resnet20.spec.preprocessing, 8))
    assert result.n == 18 and result.top1 > 0.5


def test_imagenet_preprocessing_resizes_and_crops(tmp_path):
    from PIL import Image

    from rnopt.data import preprocess
    from rnopt.models import get_spec

    import numpy as np

    # greyscale, landscape, with a different value in every column: a wrong resize, crop offset or
    # normalisation moves the numbers
    ramp = np.tile(np.arange(500, dtype=np.uint8)[None, :] // 2, (375, 1))
    image = Image.fromarray(ramp, "L")
    photos = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample").glob("*.JPEG"))
    if photos:  # a real greyscale or colour photo where ../shared is present (CI has it), else the ramp
        image = Image.open(photos[0])
    x = preprocess(image, get_spec("resnet50").preprocessing)
    assert x.shape == (3, 224, 224) and x.dtype.name == "float32"
    # by hand: shorter side -> 256 (bilinear), centre crop 224
    w, h = image.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    resized = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32) / 255
    left, top = int(round((size[0] - 224) / 2)), int(round((size[1] - 224) / 2))
    crop = resized[top:top + 224, left:left + 224]
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    expected = ((crop - mean) / std).transpose(2, 0, 1)
    assert np.abs(x - expected).max() < 1e-5


IMAGENET_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def _imagenet_rows() -> list[str]:
    from importlib import resources

    return (resources.files("rnopt.data") / "assets" / "imagenet_labels.txt").read_text().splitlines()


def test_a_flat_folder_labelled_as_imagenet_ships_it_is_a_labelled_dataset(tmp_path, cli):
    from conftest import jpeg_bytes
    from rnopt.data import load_dataset
    from rnopt.data.datasets import align_labels
    from rnopt.models.registry import imagenet_class_names

    rows = _imagenet_rows()  # "index wnid name"
    wnid = {int(r.split()[0]): r.split()[1] for r in rows}
    # ImageNet validation's layout: ILSVRC2012_val_*.JPEG and LOC_val_solution.csv (the first box names the class)
    imagenet = tmp_path / "val"
    imagenet.mkdir()
    picks = {"ILSVRC2012_val_00000001": 65, "ILSVRC2012_val_00000002": 970, "ILSVRC2012_val_00000003": 0}
    for stem, index in picks.items():
        (imagenet / f"{stem}.JPEG").write_bytes(jpeg_bytes((300, 200), (index % 255, 40, 90)))
    (imagenet / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "".join(
        f"{stem},{wnid[index]} 1 2 30 40 {wnid[index]} 5 6 70 80\n" for stem, index in picks.items()))
    dataset = align_labels(load_dataset(imagenet), imagenet_class_names())
    assert [label for label, _, _ in dataset.samples] == [65, 970, 0] and len(dataset.class_names) == 1000
    # the class in each file name, the classes listed in labels.txt (the bundled imagenet-sample's layout)
    named = tmp_path / "named"
    named.mkdir()
    (named / "labels.txt").write_text("\n".join(rows) + "\n")
    for index in (3, 500):
        (named / f"{wnid[index]}_photo.JPEG").write_bytes(jpeg_bytes())
    assert [label for label, _, _ in load_dataset(named).samples] == [3, 500]
    # an image no row labels is named, never scored as class 0
    (imagenet / "ILSVRC2012_val_00000009.JPEG").write_bytes(jpeg_bytes())
    with pytest.raises(RnoptError, match="ILSVRC2012_val_00000009.JPEG has no class"):
        load_dataset(imagenet)
    (named / "labels.txt").write_text("tench\ngoldfish\n")
    with pytest.raises(RnoptError, match=r"labels.txt:1 is not an `index wnid name` line"):
        load_dataset(named)
    # accepted wherever a class-per-folder layout is: eval with it
    if IMAGENET_SAMPLE.is_dir():
        sample = load_dataset(IMAGENET_SAMPLE)
        assert len(sample) == 105 and sample.class_names[sample.samples[0][0]] == "tench"
        r = cli("eval", "resnet18", "--data", IMAGENET_SAMPLE, "--limit", "4", "--quiet", "--json",
                tmp_path / "e.json")
        assert r.code == 0, r.err


def _results_and_comparisons(section):
    return section.results, section.comparisons
