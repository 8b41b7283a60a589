"""The prediction cache: an evaluation of the same bytes on the same images is computed once, and anything that
could change the outputs (the file's bytes, the settings, the images) is computed again."""
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import rnopt
from rnopt.artifacts import ArtifactStore
from rnopt.execute.base import load_variant
from rnopt.predictions import cached_outputs, predictions_dir

LIMIT = 300


@pytest.fixture
def cache_on(monkeypatch, tmp_path):
    """The suite runs with the cache off (conftest); these tests turn it on, in a folder of their own."""
    monkeypatch.setenv("RNOPT_PREDICTION_CACHE", "1")
    monkeypatch.setenv("RNOPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _figures(record):
    section = record.evals[0]
    return [(r.top1, r.top5, r.n) for r in section.results], \
        [(c.top1_delta, c.agreement, c.mean_abs_logit_diff, c.max_abs_logit_diff) for c in section.comparisons]


def _evaluate(*paths, threads=None):
    specs = rnopt.plan([rnopt.artifact(str(p)) for p in paths], ["onnxruntime"], threads=threads)
    return rnopt.evaluate(specs, rnopt.EvalConfig(limit=LIMIT))


def _cached(record) -> bool:
    return any("prediction cache" in w for w in record.warnings)


def test_a_second_evaluation_takes_the_same_bits_from_the_cache(cache_on, fp32_onnx, int8_onnx, monkeypatch):
    first = _evaluate(fp32_onnx, int8_onnx)
    assert not _cached(first) and len(list(predictions_dir().glob("*.npy"))) == 2
    again = _evaluate(fp32_onnx, int8_onnx)
    assert _cached(again) and "2 of 2 variants" in " ".join(again.warnings)
    assert _figures(again) == _figures(first)
    monkeypatch.setenv("RNOPT_PREDICTION_CACHE", "0")
    off = _evaluate(fp32_onnx, int8_onnx)
    assert not _cached(off) and _figures(off) == _figures(first)


def _biased(source, dest):
    """The same fp32 model with class 0 favoured: other bytes, the same precision and settings."""
    model = onnx.load(source)
    bias = next(i for i in model.graph.initializer if len(i.dims) == 1 and i.dims[0] == 10)
    values = numpy_helper.to_array(bias).copy()
    values[0] += 4.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(model, dest)


def test_other_bytes_under_the_same_name_are_computed_again(cache_on, fp32_onnx):
    path, biased = cache_on / "model.onnx", cache_on / "biased.onnx"
    _biased(fp32_onnx, biased)
    shutil.copy(fp32_onnx, path)
    as_float = _evaluate(path)
    shutil.copy(biased, path)  # the same path and name, other bytes
    again = _evaluate(path)
    assert not _cached(again)
    assert _figures(again) == _figures(_evaluate(biased))  # the other file's own figures
    assert _figures(again) != _figures(as_float)


def test_other_settings_are_computed_again(cache_on, fp32_onnx):
    _evaluate(fp32_onnx)
    assert not _cached(_evaluate(fp32_onnx, threads=1))
    assert _cached(_evaluate(fp32_onnx, threads=1))


def test_validation_outputs_are_kept_by_the_images_content(cache_on, fp32_onnx):
    spec = rnopt.plan([rnopt.artifact(str(fp32_onnx))], ["onnxruntime"])[0]
    variant = load_variant(spec, ArtifactStore())
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)
    computed, stored = cached_outputs(variant, "validation a", 4, lambda: variant.session.predict(images))
    assert not stored
    again, stored = cached_outputs(variant, "validation a", 4, lambda: pytest.fail("computed again"))
    assert stored and np.array_equal(again, computed) and again.dtype == computed.dtype
    _, stored = cached_outputs(variant, "validation b", 4, lambda: variant.session.predict(images[::-1]))
    assert not stored  # other images: computed
