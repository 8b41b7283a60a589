"""Accuracy-aware int8 with ONNX Runtime: quantize, validate, and put the most sensitive layers back to float
until the accuracy drop is within the bound.

Greedy, as NNCF's accuracy control: rank the quantized tensors by the noise they add (sensitivity.py), then revert
them one group at a time (a tensor's producer and consumers: the nodes that must be float for it to be
float), re-validating on the whole validation set after each step. A step that makes things no better is
undone. It stops when the bound is met, when nothing is left to revert, or after `max_steps`. The model
written is the best found.

A revert edits the full int8 model (sensitivity.keep_nodes_float: the nodes read float inputs and weights)
rather than re-quantizing with ORT's `nodes_to_exclude`: excluding a node there leaves its input quantized
whenever the node producing that input is still quantized, so the damage stays. The edit is also what the
sensitivity ground truth measures, so the two agree.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import onnx

from rnopt.accuracy import AccuracyBound, ValidationSet
from rnopt.onnx_model import ModelMeta, load_onnx
from rnopt.quantization.base import RevertedModel
from rnopt.quantization.sensitivity import Scorer, folded_relus, keep_nodes_float, layer_table, sqnr_pass
from rnopt.results import AccuracyAwareResult, QuantizeResult, QuantizerSensitivity, RevertStep

SQNR_IMAGES = 200  # images the ranking's SQNR pass runs on (every decision is validated on the whole set)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclass
class _State:
    float_nodes: list[str]
    score: float
    path: Path


def quantized_layers(int8: onnx.ModelProto) -> list[str]:
    """Nodes that run on int8 inputs (any input dequantized): the model's quantized layers."""
    dequantized = {n.output[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in int8.graph.node
            if n.op_type not in QDQ_OPS and any(i in dequantized for i in n.input)]


class Builder(Protocol):
    """What the loop needs of a prepared quantization (quantize.onnxruntime.PreparedQuantization)."""

    float_path: Path
    folder: Path  # scratch space that lives as long as the builder
    excluded: list[str]

    def build(self) -> Path: ...

    def write(self, int8: Path, output: Path, meta: ModelMeta, excluded: list[str], start: float,
              extra_history: str = "") -> QuantizeResult: ...


def accuracy_aware_int8(prepared: Builder, output: Path, meta: ModelMeta, bound: AccuracyBound,
                        validation: ValidationSet, max_steps: int | None = None,
                        on_progress: Callable[[str], None] | None = None, start: float | None = None
                        ) -> QuantizeResult:
    """Write the int8 model that meets `bound` on `validation` (or the best found) to `output`, with every
    step in its result."""
    say = on_progress or (lambda _: None)
    start = time.perf_counter() if start is None else start
    say(f"validating float and int8 on {len(validation)} images")
    scorer = Scorer.for_float(bound.measure_object(), validation, prepared.float_path)
    reference = scorer.float_score()
    full = prepared.build()
    full_score = scorer.score(full)
    edits = _Editor(prepared.float_path, full, prepared.folder)
    best, steps = _revert_greedily(edits, prepared, scorer, bound, reference, _State([], full_score, full),
                                   max_steps, say)
    layers = quantized_layers(load_onnx(full))
    reverted_layers = [n for n in best.float_nodes if n in layers]
    report = AccuracyAwareResult(
        "onnxruntime", bound.measure, bound.describe(), bound.limit, bound.drop_type, validation.name,
        len(validation), reference, full_score, best.score, bound.drop(reference, best.score),
        bound.met(reference, best.score), len(layers), reverted_layers, steps,
        "ONNX Runtime runs the reverted layers in fp32")
    result = prepared.write(best.path, output, meta, [*prepared.excluded, *best.float_nodes], start,
                            f"; accuracy-aware ({bound.describe()} on {validation.name}): "
                            f"{len(reverted_layers)} of {len(layers)} layers float")
    result.accuracy_aware = report
    return result


class _Editor:
    """The full int8 model with some nodes in float (sensitivity.keep_nodes_float), saved in scratch space."""

    def __init__(self, float_path: Path, full: Path, folder: Path) -> None:
        self.float_model, self.full, self.folder = load_onnx(float_path), load_onnx(full), folder
        self.count = 0

    def with_float(self, nodes: list[str]) -> Path:
        self.count += 1
        path = self.folder / f"reverted-{self.count}.onnx"
        onnx.save(keep_nodes_float(self.full, self.float_model, nodes), str(path))
        return path


def _revert_greedily(edits: _Editor, prepared: Builder, scorer: Scorer, bound: AccuracyBound, reference: float,
                     state: _State, max_steps: int | None, say: Callable[[str], None]
                     ) -> tuple[_State, list[RevertStep]]:
    if bound.met(reference, state.score):
        return state, []
    say(f"ranking quantized tensors by SQNR on {min(SQNR_IMAGES, len(scorer.data))} images")
    float_model, int8_model = load_onnx(prepared.float_path), load_onnx(state.path)
    norms = sqnr_pass(prepared.float_path, state.path, scorer.data.images[:SQNR_IMAGES],
                      folded_relus(float_model, int8_model))
    ranked = revert_order(layer_table(float_model, int8_model, prepared.float_path, state.path, norms))

    def try_float(nodes: list[str]) -> tuple[float, Path]:
        trial = edits.with_float(nodes)
        return scorer.score(trial), trial

    return revert_loop(ranked, try_float, bound, reference, state, max_steps, prepared.excluded, say)


def revert_order(layers: list[QuantizerSensitivity]) -> list[QuantizerSensitivity]:
    """The order groups go back to float: the most noise added first (the cheap pass's ranking)."""
    return sorted(layers, key=QuantizerSensitivity.cheap_rank)


def revert_loop(ranked: list[QuantizerSensitivity], try_float: Callable[[list[str]], tuple[float, Path]],
                bound: AccuracyBound, reference: float, state: _State, max_steps: int | None,
                excluded: list[str], say: Callable[[str], None] = lambda _: None) -> tuple[_State, list[RevertStep]]:
    """Revert `ranked` groups in order, each on top of the best so far; keep a step only when its score (from
    `try_float`, on the validation images) beats the best; stop once the bound holds or after `max_steps`."""
    steps: list[RevertStep] = []
    for row in ranked:
        if bound.met(reference, state.score) or (max_steps is not None and len(steps) >= max_steps):
            break
        added = [n for n in row.nodes if n not in state.float_nodes and n not in excluded]
        if not added:
            continue
        say(f"step {len(steps) + 1}: {row.tensor} in float")
        score, trial = try_float([*state.float_nodes, *added])
        kept = score > state.score
        steps.append(RevertStep(len(steps) + 1, row.tensor, added, score, bound.drop(reference, score), kept))
        if kept:
            state = _State([*state.float_nodes, *added], score, trial)
    return state, steps


MAX_TIMED_GROUPS = 10


def reverted_groups(report: AccuracyAwareResult, float_path: Path, full: Path, final: Path,
                    scratch: Path) -> list[RevertedModel]:
    """The model written, and full int8 with each group the loop kept in float alone in float (at most
    MAX_TIMED_GROUPS). `float_path`: the pre-processed float model `full` was quantized from."""
    edits = _Editor(float_path, full, scratch)
    models: list[RevertedModel] = [("final", final, report.kept_float)]
    for step in [s for s in report.steps if s.kept and s.nodes != report.kept_float][:MAX_TIMED_GROUPS]:
        models.append((f"only {step.target}", edits.with_float(step.nodes), step.nodes))
    return models
