"""Per-layer int8 sensitivity of an ONNX Runtime QDQ model: which quantized tensors cost accuracy.

Two passes, as ONNX Runtime's own debugging tool (`onnxruntime.quantization.qdq_loss_debug`) suggests:

- cheap: for every quantized tensor, SQNR in dB (higher is better) between a tensor and its int8 rounding.
  Local: the int8 model's tensor before vs after its own quantize-dequantize, the error this quantizer adds;
  accumulated: the float model's tensor vs the int8 model's, all error from the input up to here. Weights:
  float vs dequantized. ORT's helpers pair the tensors; the sums are accumulated batch by batch here, because
  `collect_activations` would hold every activation of every image at once.
- ground truth for the worst K: the accuracy gained when only that tensor's group of nodes is kept in float
  (the int8 model edited as ORT's `nodes_to_exclude` would have built it, nothing else changed), on the
  validation images.

A tensor stays float only when no quantized node touches it: its `nodes` (its producer and consumers) are
the group accuracy-aware int8 reverts together.
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import (
    create_activation_matching,
    create_weight_matching,
    modify_model_output_intermediate_tensors,
)

from rnopt.accuracy import AccuracyMeasure, ValidationSet
from rnopt.errors import RnoptError, first_line
from rnopt.backends.onnxruntime.session import create_session
from rnopt.onnx_model import load_onnx
from rnopt.results import QuantizerSensitivity, SensitivityResult

SQNR_BATCH = 25
RUN_BATCH = 250
SCORE_EPSILON = np.finfo(np.float32).eps
QUANTIZED_SUFFIX = "_quantized"  # ORT's name for a quantized initializer


@dataclass
class _Norms:
    """Running sums of squares, so SQNR over many batches equals SQNR over their concatenation."""

    signal: float = 0.0
    noise: float = 0.0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        reference, candidate = reference.astype(np.float64), candidate.astype(np.float64)
        self.signal += float(np.square(reference).sum())
        self.noise += float(np.square(reference - candidate).sum())

    def db(self) -> float:
        """As ORT's compute_signal_to_quantization_noice_ratio: 20 log10 of the norm ratio, floored at eps."""
        signal, noise = max(math.sqrt(self.signal), SCORE_EPSILON), max(math.sqrt(self.noise), SCORE_EPSILON)
        return 20 * math.log10(signal / noise)


@dataclass
class _TensorNorms:
    local: _Norms = field(default_factory=_Norms)
    accumulated: _Norms = field(default_factory=_Norms)


def run_outputs(model: str | Path | bytes, images: np.ndarray, batch: int = RUN_BATCH,
                opt_level: str = "all") -> np.ndarray:
    """The model's first output on every image, as deployed (ORT's full graph optimization)."""
    try:
        session = create_session(model if isinstance(model, bytes) else str(model), opt_level=opt_level)
    except RnoptError as exc:
        if isinstance(model, bytes):  # the message would hold the whole serialized model
            raise RnoptError("onnxruntime cannot load an edited int8 model: " + str(exc).rsplit(": ", 1)[-1]) from None
        raise
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i:i + batch]})[0] for i in range(0, len(images), batch)])


def quantized_activations(int8: onnx.ModelProto) -> list[str]:
    """Tensors the int8 model quantizes on the fly (weights, quantized ahead, are not among them)."""
    constants = {i.name for i in int8.graph.initializer}
    return list(dict.fromkeys(n.input[0] for n in int8.graph.node
                              if n.op_type == "QuantizeLinear" and n.input[0] not in constants))


def revert_groups(float_model: onnx.ModelProto, tensors: list[str]) -> dict[str, list[str]]:
    """For each tensor, the nodes that must stay float for it to stay float: every node that reads or writes it."""
    touching: dict[str, list[str]] = {}
    for node in float_model.graph.node:
        for name in [*node.input, *node.output]:
            touching.setdefault(name, [])
            if node.name not in touching[name]:
                touching[name].append(node.name)
    return {t: touching.get(t, []) for t in tensors}


def _module_of(node: onnx.NodeProto) -> str:
    """The PyTorch module the exporter recorded for a node, with its op (e.g. "layer2.1.bn1 (Conv)")."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip(" '\"") for s in prop.value.strip("[]").split(",")][:-1]  # last: the fx node
            named = [s for s in scopes if s]
            return f"{named[-1] if named else 'model'} ({node.op_type})"
    return node.op_type


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def folded_relus(float_model: onnx.ModelProto, int8: onnx.ModelProto) -> set[str]:
    """Tensors a Relu writes in the float model whose Relu the QDQ quantizer dropped: the int8 range starting at
    zero does its clipping. Before its quantize-dequantize such a tensor still holds the negative values."""
    float_producers, int8_producers = _producers(float_model), _producers(int8)
    return {t for t, node in float_producers.items()
            if node.op_type == "Relu" and t in int8_producers and int8_producers[t].op_type != "Relu"}


def _augmented(model_path: Path, folder: Path, name: str) -> Path:
    """The model with every intermediate float tensor as an extra output (ORT's debugging augmentation)."""
    out = folder / f"{name}.augmented.onnx"
    modify_model_output_intermediate_tensors(str(model_path), str(out))
    return out


def _batch_activations(session, input_name: str, batch: np.ndarray) -> dict[str, list[np.ndarray]]:  # noqa: ANN001
    from onnxruntime.quantization.qdq_loss_debug import _TENSOR_SAVE_POSTFIX

    outputs = session.run(None, {input_name: batch})
    return {o.name[:-len(_TENSOR_SAVE_POSTFIX)]: [v] for o, v in zip(session.get_outputs(), outputs)
            if o.name.endswith(_TENSOR_SAVE_POSTFIX)}


def sqnr_pass(float_path: Path, int8_path: Path, images: np.ndarray, relus: set[str] = frozenset(),
              on_batch: Callable[[int], None] | None = None) -> dict[str, _TensorNorms]:
    """Local and accumulated error sums of every quantized activation over `images`, batch by batch. For the
    `relus` (folded_relus), the local error is measured after the ReLU the quantizer folded away."""
    norms: dict[str, _TensorNorms] = {}
    with tempfile.TemporaryDirectory(prefix="rnopt-sqnr-") as scratch:
        folder = Path(scratch)
        sessions = [create_session(str(_augmented(p, folder, n)), opt_level="disable")
                    for p, n in ((float_path, "float"), (int8_path, "int8"))]
        input_name = sessions[0].get_inputs()[0].name
        for start in range(0, len(images), SQNR_BATCH):
            batch = images[start:start + SQNR_BATCH]
            float_acts, int8_acts = (_batch_activations(s, input_name, batch) for s in sessions)
            for tensor, match in create_activation_matching(int8_acts, float_acts).items():
                entry = norms.setdefault(tensor, _TensorNorms())
                before = match["pre_qdq"][0]
                entry.local.add(np.maximum(before, 0) if tensor in relus else before, match["post_qdq"][0])
                if "float" in match:
                    entry.accumulated.add(match["float"][0], match["post_qdq"][0])
            if on_batch:
                on_batch(len(batch))
    return norms


def keep_nodes_float(int8: onnx.ModelProto, float_model: onnx.ModelProto, nodes: list[str]) -> onnx.ModelProto:
    """A copy of the int8 model with `nodes` in float, as ORT's `nodes_to_exclude` would have left them: they read
    float inputs (the tensor before its quantize-dequantize; float weights) and their outputs are quantized only
    for other, still quantized consumers. A ReLU the quantizer folded into an input's range is put back."""
    model = onnx.ModelProto()
    model.CopyFrom(int8)
    producers = _producers(model)
    relus = folded_relus(float_model, int8)
    floats = {i.name: i for i in float_model.graph.initializer}
    constants = {i.name for i in model.graph.initializer}
    targets = [n for n in model.graph.node if n.name in set(nodes)]
    if not targets:
        raise RnoptError(f"none of {', '.join(nodes)} is a node of the int8 model")
    for node in targets:
        for index, name in enumerate(node.input):
            dequantize = producers.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            source = dequantize.input[0]
            if source in constants:  # a weight: use the float one
                original = source[:-len(QUANTIZED_SUFFIX)] if source.endswith(QUANTIZED_SUFFIX) else source
                if original not in floats or original in producers:
                    continue  # an int32 bias (its dequantized output has the float name) or no float copy
                if original not in constants:
                    model.graph.initializer.append(floats[original])
                    constants.add(original)
                node.input[index] = original
            else:  # an activation: read the tensor the QuantizeLinear read
                tensor = producers[source].input[0]
                node.input[index] = _with_relu(model, tensor, producers) if tensor in relus else tensor
    _drop_dead_nodes(model)
    return model


def _with_relu(model: onnx.ModelProto, tensor: str, producers: dict[str, onnx.NodeProto]) -> str:
    """`tensor` after the ReLU the quantizer folded into its int8 range (added once)."""
    name = tensor + "_float_relu"
    if name not in producers:
        relu = onnx.helper.make_node("Relu", [tensor], [name], name=name)
        producer = producers[tensor]
        model.graph.node.insert(list(model.graph.node).index(producer) + 1, relu)
        producers[name] = relu
    return name


def _drop_dead_nodes(model: onnx.ModelProto) -> None:
    """Remove quantize/dequantize nodes nothing reads any more."""
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in read for o in n.output)]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def layer_table(float_model: onnx.ModelProto, int8_model: onnx.ModelProto, float_path: Path, int8_path: Path,
                norms: dict[str, _TensorNorms]) -> list[QuantizerSensitivity]:
    """Every quantized tensor (activations and weights) with its SQNR, group and module, in network order."""
    order = {}
    modules = {}
    for index, node in enumerate(float_model.graph.node):
        for name in [*node.output, *node.input]:
            order.setdefault(name, index)
            modules.setdefault(name, _module_of(node))
    activations = [t for t in quantized_activations(int8_model) if t in norms]
    weights = _weight_sqnr(float_path, int8_path)
    groups = revert_groups(float_model, activations + list(weights))
    rows = [QuantizerSensitivity(t, "activation", order.get(t, -1), groups[t], modules.get(t, ""),
                                 norms[t].local.db(), norms[t].accumulated.db()) for t in activations]
    _add_noise_added(rows, float_model, norms)
    rows += [QuantizerSensitivity(w, "weight", order.get(w, -1), groups[w], modules.get(w, ""), float(db))
             for w, db in weights.items()]
    return sorted(rows, key=lambda r: (r.order, r.kind != "activation"))


def _weight_sqnr(float_path: Path, int8_path: Path) -> dict[str, float]:
    """SQNR of every int8 weight (int32 biases left out: their rounding is negligible) against its float self.
    ORT pairs them; the ratio is computed here, as ORT's own fails on single-value tensors."""
    result = {}
    for name, match in create_weight_matching(str(float_path), str(int8_path)).items():
        original, dequantized = np.asarray(match["float"]), np.asarray(match["dequantized"])
        if original.ndim < 2 or original.size != dequantized.size:
            continue
        norms = _Norms()
        norms.add(original.reshape(-1), dequantized.reshape(-1))
        result[name] = norms.db()
    return result


def _noise_ratio(db: float | None) -> float:
    return 0.0 if db is None else 10 ** (-db / 10)


def _add_noise_added(rows: list[QuantizerSensitivity], float_model: onnx.ModelProto,
                     norms: dict[str, _TensorNorms]) -> None:
    """Each activation's accumulated noise-to-signal ratio minus the largest among the quantized tensors it is
    computed from (found by walking up through unquantized tensors; the model input has none)."""
    producers = _producers(float_model)
    accumulated = {r.tensor: r.sqnr_accumulated_db for r in rows}

    def upstream(tensor: str, seen: set[str]) -> list[str]:
        node = producers.get(tensor)
        if node is None:
            return []
        found = []
        for name in node.input:
            if name in seen:
                continue
            seen.add(name)
            found += [name] if name in norms else upstream(name, seen)
        return found

    for row in rows:
        inputs = upstream(row.tensor, set())
        before = max((_noise_ratio(accumulated.get(t)) for t in inputs), default=0.0)
        row.noise_added = max(_noise_ratio(row.sqnr_accumulated_db) - before, 0.0)


# Node groups to keep in float -> the outputs of the int8 model so edited, on the validation images, in order.
Probe = Callable[[list[list[str]]], list[np.ndarray]]


def probe_outputs(float_path: Path, int8_path: Path, nodes: list[str], images: np.ndarray) -> np.ndarray:
    """The int8 model with `nodes` kept in float, run on `images` (one ground truth: what a probe task runs).
    `float_path` is the pre-processed float model `int8_path` was quantized from."""
    edited = keep_nodes_float(load_onnx(int8_path), load_onnx(float_path), nodes)
    return run_outputs(edited.SerializeToString(), images)


@dataclass
class Scorer:
    """Scores models on the validation images with one accuracy measure (the float model's outputs kept as the
    reference a cosine needs)."""

    measure: AccuracyMeasure
    data: ValidationSet
    reference: np.ndarray

    @classmethod
    def for_float(cls, measure: AccuracyMeasure, data: ValidationSet, float_model: str | Path | bytes) -> "Scorer":
        return cls(measure, data, run_outputs(float_model, data.images))

    def score(self, model: str | Path | bytes) -> float:
        return self.score_outputs(run_outputs(model, self.data.images))

    def score_outputs(self, outputs: np.ndarray) -> float:
        return self.measure.score(outputs, self.data.labels, self.reference)

    def float_score(self) -> float:
        return self.measure.score(self.reference, self.data.labels, self.reference)


def check_same_graph(float_model: onnx.ModelProto, int8_model: onnx.ModelProto, int8_name: str) -> None:
    """The int8 model must have been quantized from this float model (after ORT's pre-processing)."""
    float_tensors = {t for n in float_model.graph.node for t in [*n.input, *n.output]}
    quantized = quantized_activations(int8_model)
    if not quantized:
        raise RnoptError(f"{int8_name} holds no QuantizeLinear nodes: give an ONNX Runtime QDQ model "
                         f"(rnopt quantize writes one)")
    if not any(t in float_tensors for t in quantized):
        raise RnoptError(f"{int8_name} was not quantized from this float model (no tensor names in common): "
                         f"give the float model it came from, or leave it out and let rnopt quantize")
    # Same names are not enough (two ResNets name their layers alike): the layers and their weights' shapes too.
    qdq = ("QuantizeLinear", "DequantizeLinear")
    float_nodes = {n.name for n in float_model.graph.node}
    int8_nodes = {n.name for n in int8_model.graph.node if n.op_type not in qdq}
    shapes = {t.name: tuple(t.dims) for t in float_model.graph.initializer}
    clashing = [t.name for t in int8_model.graph.initializer
                if shapes.get(t.name.removesuffix("_quantized"), tuple(t.dims)) != tuple(t.dims)]
    if int8_nodes - float_nodes or clashing:
        differs = sorted(int8_nodes - float_nodes)[:2] or clashing[:2]
        raise RnoptError(f"{int8_name} was not quantized from this float model (its layers differ: "
                         f"{', '.join(differs)}): give the float model it came from, or leave it out and let "
                         f"rnopt quantize")


def analyze(float_path: Path, int8_path: Path, scorer: Scorer, sqnr_images: int, top_k: int,
            float_name: str, int8_name: str, on_progress: Callable[[str], None] | None = None,
            probe: Probe | None = None) -> SensitivityResult:
    """Both passes: SQNR of every quantized tensor over the first `sqnr_images` validation images, then the
    ground truth for the `top_k` tensors the cheap pass ranks worst (most noise added). `float_path` is the
    pre-processed float model `int8_path` was quantized from. `probe` runs the ground truths elsewhere (probe
    tasks on an executor): given each one's nodes to keep in float, the edited int8 model's outputs."""
    float_model, int8_model = load_onnx(float_path), load_onnx(int8_path)
    check_same_graph(float_model, int8_model, int8_name)
    say = on_progress or (lambda _: None)
    say(f"SQNR of every quantized tensor on {min(sqnr_images, len(scorer.data))} images")
    norms = sqnr_pass(float_path, int8_path, scorer.data.images[:sqnr_images], folded_relus(float_model, int8_model))
    layers = layer_table(float_model, int8_model, float_path, int8_path, norms)
    int8_score = scorer.score(int8_path)
    worst = sorted(layers, key=QuantizerSensitivity.cheap_rank)[:top_k]
    if probe is not None and worst:  # the ground truths as tasks, all at once (a cluster runs them side by side)
        say(f"ground truth: {len(worst)} tensors, each kept in float, as tasks")
        for row, outputs in zip(worst, probe([row.nodes for row in worst])):
            row.score_change = scorer.score_outputs(outputs) - int8_score
    for row in worst if probe is None else []:
        say(f"ground truth: {row.tensor} kept in float")
        reverted = keep_nodes_float(int8_model, float_model, row.nodes)
        row.score_change = scorer.score(reverted.SerializeToString()) - int8_score
    return SensitivityResult(float_name, int8_name, scorer.data.name, min(sqnr_images, len(scorer.data)),
                             scorer.measure.name, scorer.float_score(), int8_score, len(scorer.data), layers)



def pre_process(source: Path, output: Path) -> None:
    """ORT's quantization pre-processing, exactly as `rnopt quantize` runs it (so tensor names match)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(output), skip_symbolic_shape=False)
    except Exception as exc:
        raise RnoptError(f"pre-processing {source} failed: {first_line(exc)}") from None
