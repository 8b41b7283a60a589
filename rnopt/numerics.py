"""Comparing a candidate's outputs with a reference's: the one place rnopt decides whether two models agree.

The difference is reported in absolute terms and relative to the reference's largest |output|, because
an absolute tolerance alone fails honest fp32 rounding on a model with large logits (a fine-tuned
classifier with logits near 200 differs from PyTorch by 3e-4 in absolute terms, a relative 1e-6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class OutputDiff:
    max_abs_diff: float
    max_rel_diff: float  # max |diff| / max |reference|
    mean_abs_diff: float
    top1_agreement: float
    n: int  # rows (images) compared


class OutputComparer:
    """Accumulates the comparison over batches (an evaluation set) without keeping the outputs."""

    def __init__(self) -> None:
        self.max_abs = self.ref_max = self.abs_sum = 0.0
        self.values = self.agree = self.rows = 0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
        if reference.shape != candidate.shape:
            raise ValueError(f"outputs differ in shape: {reference.shape} vs {candidate.shape}")
        delta = np.abs(reference - candidate)
        self.max_abs = max(self.max_abs, float(delta.max()))
        self.ref_max = max(self.ref_max, float(np.abs(reference).max()))
        self.abs_sum += float(delta.sum())
        self.values += delta.size
        self.agree += int((reference.argmax(-1) == candidate.argmax(-1)).sum())
        self.rows += reference.shape[0]

    def result(self) -> OutputDiff:
        rel = self.max_abs / self.ref_max if self.ref_max else (0.0 if self.max_abs == 0 else float("inf"))
        return OutputDiff(self.max_abs, rel, self.abs_sum / max(self.values, 1), self.agree / max(self.rows, 1),
                          self.rows)


def compare_outputs(reference: np.ndarray, candidate: np.ndarray) -> OutputDiff:
    comparer = OutputComparer()
    comparer.add(reference, candidate)
    return comparer.result()


def compare_onnx_files(reference: str, candidate: str, input_size: int, batch_sizes: tuple[int, ...] = (1, 3),
                       seed: int = 0) -> OutputDiff:
    """Two ONNX files on the same random inputs, over `batch_sizes`."""
    from rnopt.backends.onnxruntime.session import create_session, run_once  # here: comparing outputs needs no onnxruntime

    ref, cand = create_session(reference), create_session(candidate)
    rng = np.random.default_rng(seed)
    comparer = OutputComparer()
    for batch in batch_sizes:
        x = rng.standard_normal((batch, 3, input_size, input_size), dtype=np.float32)
        comparer.add(run_once(ref, x), run_once(cand, x))
    return comparer.result()
