import pytest

from conftest import loaded_variant
from rnopt.data import load_dataset
from rnopt.errors import RnoptError
from rnopt.evaluation import evaluate
from rnopt.onnx_model import load_onnx, op_counts, read_meta
from rnopt.fusion import optimize_model
from rnopt.quantization import QuantRecipe, quantize_file


def test_extended_fusion_fuses_conv_relu_and_keeps_numerics(tmp_path, fp32_onnx):
    result = optimize_model(fp32_onnx, tmp_path / "fused.onnx", "extended")
    assert result.ops_after.get("com.microsoft.FusedConv", 0) > 0
    assert result.ops_after["Relu"] < result.ops_before["Relu"]
    assert result.max_abs_diff < 1e-4 and result.top1_agreement == 1.0
    assert read_meta(load_onnx(tmp_path / "fused.onnx")).variant == "fused"


def test_basic_level_stays_standard_onnx(tmp_path, fp32_onnx):
    optimize_model(fp32_onnx, tmp_path / "basic.onnx", "basic")
    assert all("." not in op for op in op_counts(load_onnx(tmp_path / "basic.onnx")))


def test_quantized_model_is_qdq_per_channel_with_metadata(int8_onnx, fp32_onnx):
    model = load_onnx(int8_onnx)
    ops = op_counts(model)
    assert ops["QuantizeLinear"] > 10 and ops["DequantizeLinear"] > 10
    meta = read_meta(model)
    assert meta.variant == "int8" and meta.model == "resnet20_cifar10"
    assert any(h.startswith("quantize:ort-static-qdq:minmax:cifar10-calib") for h in meta.history)
    assert int8_onnx.stat().st_size < fp32_onnx.stat().st_size / 2
    # per-channel: a weight scale is a vector, not a scalar
    scales = {i.name: i for i in model.graph.initializer}
    conv_scale_dims = [list(scales[n.input[1]].dims) for n in model.graph.node
                       if n.op_type == "DequantizeLinear" and n.input[1] in scales and scales[n.input[1]].dims]
    assert conv_scale_dims, "expected per-channel weight scales"


def test_int8_accuracy_within_one_point_on_2000_images(fp32_onnx, int8_onnx):
    variants = [loaded_variant(p, "onnxruntime") for p in (fp32_onnx, int8_onnx)]
    data = load_dataset("cifar10").subset(2000)
    results, [comparison] = _results_and_comparisons(evaluate(variants, data, read_meta(load_onnx(fp32_onnx)).preprocessing, 250))
    assert results[0].n == 2000
    assert results[0].top1 > 0.75
    assert abs(comparison.top1_delta) <= 0.01
    # each model's own output was scored: int8 disagrees on a few images and its logits differ
    assert 0.95 < comparison.agreement < 1.0 and comparison.max_abs_logit_diff > 0.01
    assert results[0].top1 != results[1].top1 or comparison.agreement < 1.0


def test_quantize_refuses_quantized_and_fused_inputs(tmp_path, fp32_onnx, int8_onnx):
    with pytest.raises(RnoptError, match="already quantized"):
        quantize_file(int8_onnx, tmp_path / "again.onnx")
    optimize_model(fp32_onnx, tmp_path / "fused.onnx", "extended")
    with pytest.raises(RnoptError, match="runtime-specific fused ops"):
        quantize_file(tmp_path / "fused.onnx", tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


# Entropy is the one that needed rnopt to drive ORT's calibrator itself: through quantize_static it keeps as many
# histogram bins as quantized bins and returns minmax's ranges exactly (rnopt/quantization/onnxruntime.py).
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods_choose_other_ranges(tmp_path, fp32_onnx, method):
    """The method reaches the calibrator: its activation scales differ from minmax's on the same images."""
    minmax = quantize_file(fp32_onnx, tmp_path / "m.onnx", calib_size=100)
    result = quantize_file(fp32_onnx, tmp_path / f"{method}.onnx", calib_size=100, recipe=QuantRecipe(method))
    assert result.calib_size == minmax.calib_size == 100 and result.method == method
    assert _activation_scales(tmp_path / f"{method}.onnx") != _activation_scales(tmp_path / "m.onnx")


def _histograms(fp32_onnx, tmp_path) -> dict:
    """Activation histograms of the shapes a calibration meets: ResNet-20's own (ReLU outputs, convolutions) from
    10 calibration images, ORT's collector widening its range (bins added on both sides) as later batches exceed it,
    a Gaussian and two heavy-tailed tensors, and an all-zero one (no candidate range has a non-zero bin)."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import HistogramCollector, create_calibrator

    from rnopt.quantization.calibration import calibration_data
    from rnopt.quantization.onnxruntime import ENTROPY_OPTIONS

    class Images(CalibrationDataReader):
        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            return next(({"input": b} for b in self.batches), None)

    images = calibration_data(read_meta(load_onnx(fp32_onnx)), None, 10).batches(10)
    calibrator = create_calibrator(fp32_onnx, None, augmented_model_path=str(tmp_path / "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy, extra_options=ENTROPY_OPTIONS)
    calibrator.collect_data(Images(images))
    real = dict(list(calibrator.collector.histogram_dict.items())[:4])
    rng = np.random.default_rng(0)
    made = HistogramCollector("entropy", False, 256, 32, 99.9, "same")
    for scale in (1.0, 3.0, 0.5):  # the second batch widens the range, the third merges into it
        made.collect({"gauss": [rng.normal(0, scale, 5000).astype(np.float32)],
                      "heavy": [rng.standard_t(2, 5000).astype(np.float32) * scale],
                      "zeros": [np.zeros(100, np.float32)]})
    # many samples of a heavy tail: the least divergent range clips it, so every count near its ends matters
    made.collect({"wide": [np.random.default_rng(1).standard_t(3, 50000).astype(np.float32)]})
    return {**{("2048/128", k): v for k, v in real.items()}, **{("256/32", k): v for k, v in made.histogram_dict.items()}}


def test_entropy_ranges_are_orts_own_computed_faster(fp32_onnx, tmp_path):
    """rnopt replaces ORT's entropy search only for speed: every range it returns is ORT's own, to the bit."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    from rnopt.quantization.onnxruntime import entropy_threshold

    histograms = _histograms(fp32_onnx, tmp_path)
    assert len(histograms) == 8 and any(len(h[0]) > 256 for (bins, _), h in histograms.items() if bins == "256/32")
    for (bins, name), histogram in histograms.items():
        quantized_bins = int(bins.split("/")[1])
        orts = HistogramCollector.get_entropy_threshold(None, histogram, quantized_bins)
        ours = entropy_threshold(histogram, quantized_bins)
        assert [(float(v), v.dtype) for v in ours] == [(float(v), v.dtype) for v in orts], (bins, name)


def _activation_scales(path) -> list[float]:
    import numpy as np
    from onnx import numpy_helper

    model = load_onnx(path)
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [round(float(values[n.input[1]]), 6) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in values and np.ndim(values[n.input[1]]) == 0]


def test_calibration_takes_a_flat_folder_of_images(tmp_path, fp32_onnx, image_folder):
    result = quantize_file(fp32_onnx, tmp_path / "flat.onnx", calib_data=str(image_folder / "cat"), calib_size=6)
    assert result.calib_size == 6 and (tmp_path / "flat.onnx").exists()


def test_run_refuses_a_model_without_calibration_data_before_working(cli, tmp_path):
    r = cli("run", "--model", "resnet18", "--output", tmp_path / "runs")
    assert r.code == 1 and "pass --calib-data DIR" in r.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _initializers(path):
    from onnx import numpy_helper

    model = load_onnx(path)
    return model, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_per_tensor_symmetric_s8_recipe(tmp_path, fp32_onnx):
    import numpy as np

    recipe = QuantRecipe(per_channel=False, symmetric_activations=True, activation_type="s8")
    result = quantize_file(fp32_onnx, tmp_path / "t.onnx", calib_size=100, recipe=recipe)
    assert (result.per_channel, result.activation_type) == (False, "int8") and "per-tensor" in result.recipe
    model, values = _initializers(tmp_path / "t.onnx")
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in values]
    weight_scales = [values[n.input[1]] for n in dq if values[n.input[0]].ndim == 4]
    assert weight_scales and all(np.ndim(s) == 0 for s in weight_scales)  # one scale per weight tensor
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert q and all(values[n.input[2]].dtype == np.int8 and int(values[n.input[2]]) == 0 for n in q)


def test_excluded_nodes_stay_float(tmp_path, fp32_onnx):
    result = quantize_file(fp32_onnx, tmp_path / "x.onnx", calib_size=100, recipe=QuantRecipe(exclude=("*linear*",)))
    assert result.excluded == ["node_linear"]
    model, values = _initializers(tmp_path / "x.onnx")
    [gemm] = [n for n in model.graph.node if n.name == "node_linear"]
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers.get(gemm.input[1]) != "DequantizeLinear" and gemm.input[1] in values  # float weights
    with pytest.raises(RnoptError, match="matches no node of the model"):
        quantize_file(fp32_onnx, tmp_path / "y.onnx", calib_size=50, recipe=QuantRecipe(exclude=("nothing*",)))


def test_reduce_range_is_on_exactly_without_int8_acceleration(monkeypatch):
    from types import SimpleNamespace

    from rnopt import environment
    from rnopt.quantization.onnxruntime import reduce_range_here

    for accelerated in (True, False):
        monkeypatch.setattr(environment, "snapshot", lambda a=accelerated: SimpleNamespace(has_int8_acceleration=a))
        assert reduce_range_here(QuantRecipe()) is (not accelerated)
        assert reduce_range_here(QuantRecipe(reduce_range=True)) is True
        assert reduce_range_here(QuantRecipe(reduce_range=False)) is False


def test_recipe_options_are_refused_where_they_do_not_apply(cli, tmp_path, fp32_onnx):
    r = cli("quantize", fp32_onnx, "-o", tmp_path / "m.xml", "--backend", "openvino", "--per-tensor")
    assert r.code == 1 and "apply to the onnxruntime quantizer" in r.err and not (tmp_path / "m.xml").exists()
    r = cli("quantize", fp32_onnx, "-o", tmp_path / "m.onnx", "--method", "percentile", "--percentile", "0")
    assert r.code == 1 and "--percentile must be in (0, 100]" in r.err


def _results_and_comparisons(section):
    return section.results, section.comparisons


TELEMETRY = """
import os, sys
from rnopt.privacy import import_nncf
import_nncf()
import nncf.telemetry.decorator
print(type(nncf.telemetry.decorator.telemetry).__name__, os.environ.get("CI"), os.environ.get("NNCF_CI"))
"""


def test_nncf_sends_no_telemetry_unless_the_user_opted_in(tmp_path, fp32_onnx):
    """NNCF sends usage events by default (a forked process per event) and writes a client id into ~/intel: rnopt
    turns that off, unless OpenVINO's consent file says yes. Outside pytest (NNCF silences itself under pytest),
    in a home of its own."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RNOPT_CACHE_DIR": str(tmp_path / "cache"), "CI": "false"}
    env.pop("NNCF_CI", None)
    quantize = subprocess.run([sys.executable, "-m", "rnopt", "quantize", str(fp32_onnx), "-o", str(tmp_path / "m.xml"),
                               "--backend", "openvino", "--calib-size", "16", "--quiet"],
                              capture_output=True, text=True, env=env, timeout=300)
    assert quantize.returncode == 0 and (tmp_path / "m.xml").exists(), quantize.stderr
    assert not (home / "intel").exists()  # no client id, no stats: nothing was sent
    silent = subprocess.run([sys.executable, "-c", TELEMETRY], capture_output=True, text=True, env=env, timeout=120)
    assert silent.stdout.split() == ["MagicMock", "false", "None"], silent.stderr  # NNCF's stub; the environment kept
    (home / "intel").mkdir()
    (home / "intel" / "openvino_telemetry").write_text("1")
    opted_in = subprocess.run([sys.executable, "-c", TELEMETRY], capture_output=True, text=True, env=env, timeout=120)
    assert opted_in.stdout.split()[0] == "NNCFTelemetry", opted_in.stderr


OV_TELEMETRY = """
import os
import rnopt.backends.openvino.backend
import openvino.tools.ovc
print(openvino.tools.ovc.telemetry.consent, os.environ.get("CI"))
"""


def test_openvino_sends_no_telemetry_unless_the_user_opted_in(tmp_path, fp32_onnx):
    """`import openvino` itself sends an "import" event to Google Analytics and writes a client id into ~/intel when
    no consent file says otherwise: rnopt imports it silenced, in every command that runs OpenVINO (here `rnopt
    bench`), unless the consent file says yes. Outside pytest, in a home of its own."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RNOPT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CI", None)
    bench = subprocess.run([sys.executable, "-m", "rnopt", "bench", str(fp32_onnx), "--backend", "openvino",
                            "--batch-size", "1", "--iterations", "3", "--no-memory", "--quiet"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert bench.returncode == 0, bench.stderr
    assert not (home / "intel").exists()  # no client id: nothing was sent
    silent = subprocess.run([sys.executable, "-c", OV_TELEMETRY], capture_output=True, text=True, env=env, timeout=120)
    assert silent.stdout.split() == ["False", "None"], silent.stderr  # telemetry off; the environment kept
    (home / "intel").mkdir()
    (home / "intel" / "openvino_telemetry").write_text("1")
    opted_in = subprocess.run([sys.executable, "-c", OV_TELEMETRY], capture_output=True, text=True, env=env, timeout=120)
    assert opted_in.stdout.split() == ["True", "None"], opted_in.stderr
