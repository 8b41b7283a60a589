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
    assert comparison.agreement > 0.95


def test_quantize_refuses_quantized_and_fused_inputs(tmp_path, fp32_onnx, int8_onnx):
    with pytest.raises(RnoptError, match="already quantized"):
        quantize_file(int8_onnx, tmp_path / "again.onnx")
    optimize_model(fp32_onnx, tmp_path / "fused.onnx", "extended")
    with pytest.raises(RnoptError, match="runtime-specific fused ops"):
        quantize_file(tmp_path / "fused.onnx", tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_entropy_calibration_on_a_small_set(tmp_path, fp32_onnx):
    result = quantize_file(fp32_onnx, tmp_path / "e.onnx", calib_size=100, recipe=QuantRecipe("entropy"))
    assert result.calib_size == 100 and result.method == "entropy"


def test_calibration_takes_a_flat_folder_of_images(tmp_path, fp32_onnx, image_folder):
    result = quantize_file(fp32_onnx, tmp_path / "flat.onnx", calib_data=str(image_folder / "cat"), calib_size=6)
    assert result.calib_size == 6 and (tmp_path / "flat.onnx").exists()


def test_run_refuses_a_model_without_calibration_data_before_working(cli, tmp_path):
    r = cli("run", "--model", "resnet18", "--output", tmp_path / "runs")
    assert r.code == 1 and "pass --calib-data DIR" in r.err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
