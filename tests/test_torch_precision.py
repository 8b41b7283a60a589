"""PyTorch reduced precision as real models (BatchNorm folded, weights converted once), the autocast option
kept for comparison, and torch.compile's modes: the CPU side of the GPU paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._inductor  # list_mode_options: what each torch.compile mode turns on

from rnopt.backends import get_backend
from rnopt.backends.base import TorchModel
from rnopt.backends.torch.config import TorchConfig
from rnopt.backends.torch.reduced import fold_batchnorm, reduced_precision_module
from rnopt.environment import snapshot
from rnopt.errors import RnoptError
from rnopt.models import create_model

from conftest import settings


def count_batchnorms(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


@pytest.mark.parametrize("name, size", [("resnet20_cifar10", 32), ("resnet18", 224)])
def test_batchnorm_folds_into_the_convolutions_without_changing_the_outputs(name, size):
    module = create_model(name).module.eval()
    folded, ok = fold_batchnorm(module)
    assert ok and count_batchnorms(folded) == 0 and count_batchnorms(module) > 0  # the original is untouched
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        a, b = module(x), folded(x)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-5


def test_an_untraceable_model_is_converted_unfolded():
    class DataDependent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.conv(x)) if x.sum() > 0 else x  # control flow on values: fx cannot trace it

    model, ok = reduced_precision_module(DataDependent().eval(), "bf16")
    assert not ok and count_batchnorms(model) == 1 and model.conv.weight.dtype == torch.bfloat16


@pytest.mark.skipif(not snapshot().has_bf16, reason="this CPU has no native bf16")
def test_bf16_runs_a_converted_model_and_autocast_stays_an_option(resnet20, batch):
    from rnopt.data import load_dataset

    images, _ = next(load_dataset("cifar10").subset(64).batches(64, resnet20.spec.preprocessing))
    with torch.inference_mode():
        reference = resnet20.module(torch.from_numpy(images)).numpy()
    backend = get_backend("torch")
    real = backend.load(TorchModel(resnet20), settings("torch", precision="bf16"))
    weights = {p.dtype for p in real.module.parameters()}
    assert weights == {torch.bfloat16} and count_batchnorms(real.module) == 0
    assert real.prepare(batch).dtype == torch.bfloat16 and "bf16 model" in real.describe()
    auto = backend.load(TorchModel(resnet20), settings("torch", precision="bf16", autocast=True))
    assert {p.dtype for p in auto.module.parameters()} == {torch.float32} and "autocast" in auto.describe()
    assert auto.prepare(batch).dtype == torch.float32
    for session in (real, auto):  # 64 real CIFAR-10 test images
        out = session.predict(images)
        assert out.dtype == np.float32 and np.abs(out - reference).max() / np.abs(reference).max() < 0.05
        assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.95
    assert {p.dtype for p in resnet20.module.parameters()} == {torch.float32}  # the caller's model is untouched


def test_compile_mode_is_validated(cli):
    with pytest.raises(RnoptError, match="--compile-mode must be one of"):
        TorchConfig(compile=True, compile_mode="fastest")
    with pytest.raises(RnoptError, match="add --compile"):
        TorchConfig(compile_mode="max-autotune")
    assert TorchConfig(compile=True, compile_mode="reduce-overhead").describe() == \
        "compile,compile_mode=reduce-overhead"
    r = cli("bench", "resnet20_cifar10", "--backend", "torch", "--compile-mode", "max-autotune")
    assert r.code == 1 and "add --compile" in r.err and len(r.err.strip().splitlines()) == 1


def test_inductor_graphs_never_nest_in_rnopt_graphs(cli):
    """reduce-overhead and max-autotune capture CUDA graphs inside torch.compile; rnopt's --cuda-graphs captures
    the compiled module whole; graph captures are never nested."""
    assert TorchConfig(compile=True, compile_mode="max-autotune").inductor_mode() == "max-autotune"
    graphs = TorchConfig(compile=True, compile_mode="max-autotune", cuda_graphs=True)
    assert graphs.inductor_mode() == "max-autotune-no-cudagraphs"
    assert torch._inductor.list_mode_options(graphs.inductor_mode()).get("triton.cudagraphs") is not True
    assert TorchConfig(compile=True, cuda_graphs=True).inductor_mode() == "default"
    r = cli("bench", "resnet20_cifar10", "--backend", "torch", "--compile", "--compile-mode", "reduce-overhead",
            "--cuda-graphs")
    assert r.code == 1 and "drop --cuda-graphs" in r.err and len(r.err.strip().splitlines()) == 1
