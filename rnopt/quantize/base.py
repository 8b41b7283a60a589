"""The quantizer interface: one signature for every int8 toolkit, and the calibration data they share.

Calibration images are decoded and preprocessed once (`CalibrationData`), so every toolkit of a run sees
the same inputs and no run decodes them twice.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from rnopt.results import QuantizeResult


@dataclass(frozen=True)
class QuantRecipe:
    """How to quantize; each toolkit reads the fields it supports and refuses the others."""

    method: str = "minmax"  # calibration: minmax, entropy, percentile (ONNX Runtime)


@dataclass
class CalibrationData:
    name: str  # the dataset it came from (cifar10-calib, a folder)
    images: np.ndarray  # N x 3 x H x W float32, preprocessed as the model expects

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, size: int) -> list[np.ndarray]:
        return [self.images[i:i + size] for i in range(0, len(self.images), size)]


class Quantizer(ABC):
    name: ClassVar[str]  # the registry name, which is also the runtime it targets
    suffix: ClassVar[str]  # the output file's extension

    @abstractmethod
    def quantize(self, source: str | Path, output: str | Path, calibration: CalibrationData,
                 recipe: QuantRecipe = QuantRecipe(), on_batch: Callable[[int], None] | None = None) -> QuantizeResult:
        """Write the int8 model of the float ONNX file `source` to `output`, atomically."""
