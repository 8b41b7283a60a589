"""OpenVINO models compiled and run outside a timed variant (NNCF's accuracy control scores its candidates on
validation images here): the runtime's own module, so that no code outside `backends/` compiles a model."""
from __future__ import annotations

from typing import Any

import numpy as np

from rnopt.privacy import import_openvino

ov = import_openvino()  # never `import openvino` first: it sends a usage event (rnopt.privacy)

SCORE_BATCH = 250


def outputs_on_cpu(core: ov.Core, model: Any, images: np.ndarray, batch: int = SCORE_BATCH) -> np.ndarray:
    """`model` (an ov.Model or a file's path as text) compiled for the CPU: its first output on every image."""
    return outputs_of(core.compile_model(model, "CPU"), images, batch)


def outputs_of(compiled: Any, images: np.ndarray, batch: int = SCORE_BATCH) -> np.ndarray:
    """A compiled model's first output on every image, `batch` at a time, in order."""
    return np.concatenate([compiled(images[i:i + batch])[0] for i in range(0, len(images), batch)])
