"""What a model outputs: class logits (its own forward), or the pooled features an image search indexes.

`--head features` cuts the classifier off: the backbone up to global average pooling (64-d for the CIFAR
ResNets, 512-d for ResNet-18/34, 2048-d for ResNet-50/101/152), L2-normalised with `--normalize`. Any
classifier checkpoint gives its embedding model this way, unchanged.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rnopt.errors import RnoptError
from rnopt.preprocessing import HEADS


class FeatureExtractor(nn.Module):
    """A ResNet's `forward_features`, optionally L2-normalised, as a module of its own (for export and eval)."""

    def __init__(self, backbone: nn.Module, normalize: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(x)
        return F.normalize(features, dim=1) if self.normalize else features


def with_head(module: nn.Module, head: str, normalize: bool = False) -> nn.Module:
    if head not in HEADS:
        raise RnoptError(f"unknown head {head!r}: choose one of {', '.join(HEADS)}")
    if normalize and head != "features":
        raise RnoptError("--normalize applies to --head features (an L2-normalised embedding)")
    return FeatureExtractor(module, normalize).eval() if head == "features" else module
