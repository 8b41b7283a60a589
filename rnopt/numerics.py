"""Comparing two ONNX models' outputs on the same random inputs."""
from __future__ import annotations

import numpy as np

from rnopt.backends.onnxruntime import create_session


def compare_onnx_outputs(reference: str, candidate: str, input_size: int,
                         batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> tuple[float, float]:
    """Max abs logit difference and top-1 agreement between two ONNX files, over `batch_sizes`."""
    ref, cand = create_session(reference), create_session(candidate)
    rng = np.random.default_rng(seed)
    worst, agree, total = 0.0, 0, 0
    for batch in batch_sizes:
        x = rng.standard_normal((batch, 3, input_size, input_size), dtype=np.float32)
        a = ref.run(None, {ref.get_inputs()[0].name: x})[0]
        b = cand.run(None, {cand.get_inputs()[0].name: x})[0]
        worst = max(worst, float(np.abs(a - b).max()))
        agree += int((a.argmax(1) == b.argmax(1)).sum())
        total += batch
    return worst, agree / total
