import pytest

from conftest import loaded_variant
from rnopt.data import load_dataset
from rnopt.errors import RnoptError
from rnopt.evaluate import evaluate
from rnopt.onnx_model import load_onnx, op_counts, read_meta
from rnopt.optimize import optimize_model
from rnopt.quantize import QuantRecipe, quantize_file


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
    results, [comparison] = evaluate(variants, data, read_meta(load_onnx(fp32_onnx)).preprocessing, 250)
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


# Not "entropy": through quantize_static, ONNX Runtime's entropy calibrator keeps as many histogram bins as
# quantized bins (128 and 128), so it can never clip and picks minmax's ranges (measured: all 37 activation
# scales identical). Noted on the int8 issue.
@pytest.mark.parametrize("method", ["percentile"])
def test_other_calibration_methods_choose_other_ranges(tmp_path, fp32_onnx, method):
    """The method reaches the calibrator: its activation scales differ from minmax's on the same images."""
    minmax = quantize_file(fp32_onnx, tmp_path / "m.onnx", calib_size=100)
    result = quantize_file(fp32_onnx, tmp_path / f"{method}.onnx", calib_size=100, recipe=QuantRecipe(method))
    assert result.calib_size == minmax.calib_size == 100 and result.method == method
    assert _activation_scales(tmp_path / f"{method}.onnx") != _activation_scales(tmp_path / "m.onnx")


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
