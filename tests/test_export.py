import numpy as np
import onnx
import pytest

from rnopt.backends.onnxruntime.session import create_session
from rnopt.errors import RnoptError
from rnopt.onnx_export import export_model
from rnopt.onnx_model import load_onnx, read_meta


def test_export_is_dynamic_self_contained_and_matches_torch(fp32_onnx, resnet20):
    assert not list(fp32_onnx.parent.glob("*.data")), "weights must be inline, not in a .data file"
    model = load_onnx(fp32_onnx)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value, "batch axis must be dynamic"
    session = create_session(str(fp32_onnx))
    import torch

    for batch in (1, 3, 7):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32), dtype=np.float32)
        got = session.run(None, {"input": x})[0]
        with torch.no_grad():
            want = resnet20.module(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - want).max() < 1e-4


def test_metadata_carries_what_later_commands_need(fp32_onnx):
    meta = read_meta(load_onnx(fp32_onnx))
    assert meta.model == "resnet20_cifar10"
    assert meta.weights_sha256.startswith("12fca82f")
    assert (meta.input_size, meta.resize_size) == (32, 32)
    assert meta.mean == [0.485, 0.456, 0.406] and meta.std == [0.229, 0.224, 0.225]
    assert meta.class_names[0] == "airplane" and len(meta.class_names) == 10


def test_static_batch_and_old_opset(tmp_path, resnet20):
    static = export_model(resnet20, tmp_path / "s.onnx", static_batch=4)
    assert not static.dynamic_batch and [c.batch_size for c in static.checks] == [4]
    assert load_onnx(tmp_path / "s.onnx").graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    old = export_model(resnet20, tmp_path / "o13.onnx", opset=13)
    assert old.opset == 13 and onnx.load(str(tmp_path / "o13.onnx")).opset_import[0].version == 13
    # the old-opset file computes what PyTorch computes (the check's own figures, and an independent run)
    assert all(c.max_rel_diff < 1e-5 and c.top1_agreement == 1.0 for c in old.checks + static.checks)
    import torch

    x = np.random.default_rng(7).standard_normal((2, 3, 32, 32), dtype=np.float32)
    got = create_session(str(tmp_path / "o13.onnx")).run(None, {"input": x})[0]
    with torch.no_grad():
        assert np.abs(got - resnet20.module(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_failed_check_writes_nothing(tmp_path, resnet20):
    with pytest.raises(RnoptError, match="of the largest |logit|.*over --rtol 1e-12"):
        export_model(resnet20, tmp_path / "x.onnx", rtol=1e-12)
    with pytest.raises(RnoptError, match="exceeds --atol"):
        export_model(resnet20, tmp_path / "x.onnx", atol=1e-12)
    assert list(tmp_path.iterdir()) == []
