import pytest
import torch
from safetensors.torch import save_file

from rnopt.errors import RnoptError
from rnopt.models import count_params_and_macs, create_model, get_spec, list_models
from rnopt.models.registry import bundled_weights_path


def test_registry_lists_every_depth():
    names = list_models()
    for depth in (18, 34, 50, 101, 152):
        assert f"resnet{depth}" in names
    for depth in (20, 32, 44, 56, 110):
        assert f"resnet{depth}_cifar10" in names


def test_parameter_counts_match_published_architectures():
    # torchvision's documented counts, and the CIFAR paper's 0.27M / 0.85M.
    assert count_params_and_macs(get_spec("resnet50"))[0] == 25_557_032
    assert count_params_and_macs(get_spec("resnet18"))[0] == 11_689_512
    assert count_params_and_macs(get_spec("resnet20_cifar10"))[0] == 269_722
    assert count_params_and_macs(get_spec("resnet56_cifar10"))[0] == 853_018
    assert abs(count_params_and_macs(get_spec("resnet50"))[1] / 1e9 - 4.09) < 0.01


def test_imagenet_names_are_torchvisions():
    keys = create_model("resnet50").module.state_dict().keys()
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer1.0.conv3.weight",
                "layer4.2.bn3.bias", "fc.weight", "fc.bias"):
        assert key in keys


def test_bundled_weights_load_and_random_model_warns():
    model = create_model("resnet20_cifar10")
    assert model.weights_source == "bundled" and model.trained and not model.warnings
    random = create_model("resnet32_cifar10")
    assert not random.trained and "meaningless" in random.warnings[0]


@pytest.mark.parametrize("layout", ["plain", "nested", "model_key", "safetensors"])
def test_checkpoint_layouts_load_identically(tmp_path, resnet20, layout):
    state = {k: v for k, v in resnet20.module.state_dict().items()}
    if layout == "plain":
        path = tmp_path / "w.pth"
        torch.save(state, path)
    elif layout == "nested":
        path = tmp_path / "w.th"
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 1.0}, path)
    elif layout == "model_key":
        path = tmp_path / "w.pt"
        torch.save({"model": state, "epoch": 3}, path)
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = create_model("resnet20_cifar10", weights=path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), resnet20.module(x))
    assert loaded.weights_sha256 and loaded.weights_source == str(path)


def test_transfer_learning_checkpoint_sets_classes_and_labels(tmp_path, resnet20):
    state = dict(resnet20.module.state_dict())
    state["linear.weight"] = torch.randn(4, 64)
    state["linear.bias"] = torch.zeros(4)
    torch.save(state, tmp_path / "ft.pt")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\nfish\n")
    loaded = create_model("resnet20_cifar10", weights=tmp_path / "ft.pt", labels=tmp_path / "labels.txt")
    assert loaded.class_names == ["cat", "dog", "bird", "fish"]
    assert loaded.module(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(RnoptError, match="names 4 classes but the model has 10"):
        create_model("resnet20_cifar10", labels=tmp_path / "labels.txt")
    with pytest.raises(RnoptError, match="wrong shapes linear.weight"):
        create_model("resnet20_cifar10", weights=tmp_path / "ft.pt", num_classes=10)


def test_checkpoint_of_another_architecture_names_keys():
    with pytest.raises(RnoptError, match="unexpected keys layer1.3"):
        create_model("resnet20_cifar10", weights=bundled_weights_path(get_spec("resnet56_cifar10")))


def test_truncated_and_foreign_checkpoints(tmp_path):
    data = bundled_weights_path(get_spec("resnet20_cifar10")).read_bytes()
    (tmp_path / "cut.th").write_bytes(data[: len(data) // 2])
    with pytest.raises(RnoptError, match="not a readable PyTorch checkpoint"):
        create_model("resnet20_cifar10", weights=tmp_path / "cut.th")
    (tmp_path / "notes.pt").write_text("hello")
    with pytest.raises(RnoptError, match="not a PyTorch checkpoint or safetensors file"):
        create_model("resnet20_cifar10", weights=tmp_path / "notes.pt")
    torch.save({"step": 3, "lr": 0.1}, tmp_path / "opt.pt")
    with pytest.raises(RnoptError, match="no state dict of tensors"):
        create_model("resnet20_cifar10", weights=tmp_path / "opt.pt")
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(RnoptError, match="not a readable safetensors"):
        create_model("resnet20_cifar10", weights=tmp_path / "x.safetensors")
