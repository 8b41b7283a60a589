"""Write ResNet-20 weights with one deliberately hard-to-quantize layer, to see sensitivity and accuracy-aware
int8 find it (the bundled ResNets lose almost nothing to int8, so there is nothing to find otherwise).

    .venv/bin/python scripts/damage_layer.py damaged.pt
    rnopt export resnet20_cifar10 --weights damaged.pt -o damaged.onnx

One output channel of layer1.0's first conv is scaled x1000 (through its BatchNorm) and the next conv's input
weights for that channel are divided by 1000. ReLU is positively homogeneous, so the float model computes the
same function; but that activation's int8 range is now 1000x too wide for the other channels (an "outlier
channel"), and the next conv's weights for it round to zero. Every int8 toolkit is hurt the same way.
"""
from __future__ import annotations

import sys

import torch

from rnopt.models import create_model

CHANNEL, FACTOR = 3, 1000.0


def damage(module: torch.nn.Module, block_name: str = "layer1.0") -> torch.nn.Module:
    """Give `module` (a CIFAR ResNet) an outlier channel in `block_name`'s first conv, in place; its float outputs
    stay the same."""
    block = module.get_submodule(block_name)
    with torch.no_grad():
        block.bn1.weight[CHANNEL] *= FACTOR
        block.bn1.bias[CHANNEL] *= FACTOR
        block.conv2.weight[:, CHANNEL] /= FACTOR
    return module


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: scripts/damage_layer.py OUT.pt")
    torch.save(damage(create_model("resnet20_cifar10").module).state_dict(), sys.argv[1])
    print(f"wrote {sys.argv[1]}: ResNet-20 with an outlier channel in layer1.0")
