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
from rnopt.predictions import cached_outputs, file_outputs, predictions_dir

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


def _evaluate(*paths, threads=None, runtime="onnxruntime"):
    specs = rnopt.plan([rnopt.artifact(str(p)) for p in paths], [runtime], threads=threads)
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


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])  # ORT's key: its optimized graph; OpenVINO's: the file
def test_other_bytes_under_the_same_name_are_computed_again(cache_on, fp32_onnx, runtime):
    path, biased = cache_on / "model.onnx", cache_on / "biased.onnx"
    _biased(fp32_onnx, biased)
    shutil.copy(fp32_onnx, path)
    as_float = _evaluate(path, runtime=runtime)
    shutil.copy(biased, path)  # the same path and name, other bytes
    again = _evaluate(path, runtime=runtime)
    assert not _cached(again)
    assert _figures(again) == _figures(_evaluate(biased, runtime=runtime))  # the other file's own figures
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


def test_a_quantizers_file_outputs_are_kept_by_bytes_runtime_and_images(cache_on, fp32_onnx):
    """Accuracy-aware int8's untuned test figures: a file's outputs as the quantizer runs it, reused only for the
    same bytes, runtime and images."""
    from rnopt.quantization import get_quantizer

    ort_q = get_quantizer("onnxruntime")
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)
    computed = file_outputs("onnxruntime", fp32_onnx, "images a", lambda: ort_q.outputs(fp32_onnx, images))
    again = file_outputs("onnxruntime", fp32_onnx, "images a", lambda: pytest.fail("computed again"))
    assert np.array_equal(again, computed) and again.dtype == computed.dtype
    biased = cache_on / "biased.onnx"
    _biased(fp32_onnx, biased)
    for runtime, path, digest in [("onnxruntime", biased, "images a"), ("openvino", fp32_onnx, "images a"),
                                  ("onnxruntime", fp32_onnx, "images b")]:
        other = file_outputs(runtime, path, digest, lambda: computed + 1)  # computed: the stand-in is what comes back
        assert np.array_equal(other, computed + 1), (runtime, path.name, digest)
    assert len(list(predictions_dir().glob("*.npy"))) == 4


def test_an_onnx_file_and_its_fused_copy_optimize_to_one_graph_digest(fp32_onnx, int8_onnx, tmp_path):
    """ORT's load-time optimizations turn the export and rnopt's offline-fused copy into the same graph; another
    file (int8), other weights or another optimization level give another digest, and it does not vary by call."""
    from rnopt.backends.onnxruntime.session import optimized_graph_sha256, session_options

    fused, biased = tmp_path / "fused.onnx", tmp_path / "biased.onnx"
    rnopt.optimize(fp32_onnx, fused)
    _biased(fp32_onnx, biased)
    digest = optimized_graph_sha256(str(fp32_onnx), session_options())
    assert optimized_graph_sha256(str(fused), session_options()) == digest
    assert optimized_graph_sha256(str(fp32_onnx), session_options()) == digest
    others = {optimized_graph_sha256(str(int8_onnx), session_options()),
              optimized_graph_sha256(str(biased), session_options()),
              optimized_graph_sha256(str(fp32_onnx), session_options(opt_level="basic"))}
    assert digest not in others and len(others) == 3


def test_variants_that_run_one_graph_are_computed_once_with_the_same_figures(cache_on, fp32_onnx, int8_onnx,
                                                                              monkeypatch):
    fused = cache_on / "fused.onnx"
    rnopt.optimize(fp32_onnx, fused)
    from rnopt.backends.onnxruntime.backend import OrtSession

    calls = []
    run = OrtSession.run
    monkeypatch.setattr(OrtSession, "run", lambda self, prepared: calls.append(self.source[0]) or run(self, prepared))
    once = _evaluate(fp32_onnx, fused, int8_onnx)
    assert {str(fp32_onnx), str(int8_onnx)} == set(calls) and any("runs the same graph" in w for w in once.warnings)
    monkeypatch.setenv("RNOPT_PREDICTION_CACHE", "0")
    calls.clear()
    each = _evaluate(fp32_onnx, fused, int8_onnx)
    assert str(fused) in calls and _figures(each) == _figures(once)


def test_each_variant_runs_a_run_of_batches_in_a_row(fp32_onnx, int8_onnx, monkeypatch):
    """Runtimes switch once per run of batches, not at every batch (one's spinning threads slow the next)."""
    from rnopt.backends.onnxruntime.backend import OrtSession

    order = []
    predict = OrtSession.predict
    monkeypatch.setattr(OrtSession, "predict", lambda self, batch: order.append(self.source[0]) or predict(self, batch))
    specs = rnopt.plan([rnopt.artifact(str(p)) for p in (fp32_onnx, int8_onnx)], ["onnxruntime"])
    rnopt.evaluate(specs, rnopt.EvalConfig(limit=LIMIT, batch_size=100))
    assert order == [str(fp32_onnx)] * 3 + [str(int8_onnx)] * 3
