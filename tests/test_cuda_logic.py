"""The CUDA paths' CPU-side logic: device selection, dtype handling, clear errors when CUDA is absent.

The paths themselves run on a real GPU through benchmarks/gpu_check.sh.
"""
import pytest
import torch

from rnopt.backends import BackendOptions, TorchModel, get_backend
from rnopt.backends.onnxruntime import available_providers
from rnopt.environment import snapshot
from rnopt.errors import RnoptError

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="these check the behaviour without CUDA")


def test_torch_lists_only_cpu_and_refuses_cuda(resnet20):
    assert get_backend("torch").devices() == ["cpu"]
    with pytest.raises(RnoptError, match="CUDA was asked for but this PyTorch sees no CUDA device"):
        get_backend("torch").load(TorchModel(resnet20), BackendOptions(device="cuda", precision="fp16"))


def test_cuda_only_options_say_so(resnet20):
    with pytest.raises(RnoptError, match="CUDA graphs need --device cuda"):
        get_backend("torch").load(TorchModel(resnet20), BackendOptions(cuda_graphs=True))
    with pytest.raises(RnoptError, match="fp16 runs on CUDA only"):
        get_backend("torch").load(TorchModel(resnet20), BackendOptions(precision="fp16"))
    with pytest.raises(RnoptError, match="does not run precision 'int8'"):
        get_backend("torch").load(TorchModel(resnet20), BackendOptions(precision="int8"))


def test_ort_gpu_providers_are_refused_with_the_list_present(fp32_onnx):
    from rnopt.backends import open_model

    model = open_model(str(fp32_onnx))
    for provider in ("cuda", "tensorrt"):
        if provider in available_providers():
            continue
        with pytest.raises(RnoptError, match=f"no '{provider}' execution provider: it has cpu"):
            get_backend("onnxruntime").load(model, BackendOptions(device="cuda", ort_provider=provider))
    with pytest.raises(RnoptError, match="does not run on device 'cpu'"):
        get_backend("onnxruntime").load(model, BackendOptions(device="cpu", ort_provider="tensorrt"))


def test_environment_has_no_gpu_here():
    assert snapshot().gpu is None
