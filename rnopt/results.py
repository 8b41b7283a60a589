"""Result dataclasses: the JSON contract. Every command returns one `Record`; tables, Markdown and HTML are
rendered from records (by `rnopt.report`, which this module never imports).

Results that belong to a variant carry its spec id (`rnopt.spec.VariantSpec.id`): bench and eval results
are joined on it, never on the display label. Schema version 2; `rnopt.report.loading` still reads version 1.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from rnopt.environment import Environment, snapshot

SCHEMA_VERSION = 2


@dataclass
class LatencyStats:
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    stdev: float


@dataclass
class BenchResult:
    model: str  # the variant's display label (for people; joins use spec_id)
    backend: str
    device: str
    precision: str
    batch_size: int
    threads: int
    iterations: int
    latency_ms: LatencyStats
    cv: float
    throughput_ips: float
    total_time_s: float
    model_size_bytes: int | None = None
    load_time_s: float | None = None
    first_inference_ms: float | None = None
    streams: int = 1  # batches in flight per timed call; throughput counts all of them
    settings: str = ""  # backend-specific: provider, performance hint, memory format...
    peak_rss_mb: float | None = None  # the process's peak resident memory when this result was taken
    peak_gpu_mb: float | None = None  # the process's peak GPU memory allocated (PyTorch on CUDA)
    # Measured in a fresh process running only this variant (rnopt/memory.py): its peak resident memory,
    # and how much of it loading and running this variant added over the bare runtime.
    memory_process_mb: float | None = None
    memory_mb: float | None = None
    memory_gpu_mb: float | None = None  # that process's peak GPU memory (PyTorch on CUDA)
    warnings: list[str] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)  # every timed iteration, for distributions
    spec_id: str = ""  # the VariantSpec that ran (empty in version-1 files)
    # The precision of the median (rnopt/stats.py): its 95 % interval, and that interval's half-width
    # relative to the median (0.004 = "± 0.4 %"). Absent in version-1 files.
    p50_ci_ms: list[float] | None = None  # [low, high]
    p50_ci: float | None = None
    ci_method: str = ""
    rounds: int = 0  # interleaved rounds it took part in
    round_medians_ms: list[float] = field(default_factory=list)
    drift: float | None = None  # median of the last third of the rounds over the first third's, minus 1
    drift_detected: bool = False  # that step is beyond both thirds' intervals and the noise threshold
    outlier_share: float | None = None  # the fraction of calls over 3x the median
    converged: bool | None = None  # with --target-ci: whether the interval reached the target

    @property
    def runtime(self) -> str:
        """"torch fp16", or "torch fp16 cuda" off the CPU: what ran the variant, for tables and headlines."""
        return f"{self.backend} {self.precision}" + (f" {self.device}" if self.device != "cpu" else "")


@dataclass
class ExportCheck:
    batch_size: int
    max_abs_diff: float
    top1_agreement: float
    max_rel_diff: float | None = None  # max |diff| / max |PyTorch logit| (absent in version-1 files)


@dataclass
class ExportResult:
    model: str
    output: str
    opset: int
    dynamic_batch: bool
    atol: float | None  # an absolute bound, when one was asked for
    checks: list[ExportCheck]
    passed: bool
    weights_sha256: str | None
    size_bytes: int
    export_time_s: float
    rtol: float | None = None  # the relative bound: max |diff| / max |logit|
    head: str = "logits"


@dataclass
class OptimizeResult:
    input: str
    output: str
    level: str
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    max_abs_diff: float
    top1_agreement: float
    max_rel_diff: float | None = None


@dataclass
class QuantizeResult:
    input: str
    output: str
    method: str
    calib_data: str
    calib_size: int
    format: str
    per_channel: bool
    activation_type: str
    weight_type: str
    size_before_bytes: int
    size_after_bytes: int
    quantize_time_s: float
    quantizer: str = ""  # the registered quantizer (onnxruntime, openvino)
    recipe: str = ""  # the whole recipe in one line
    reduce_range: bool | None = None
    excluded: list[str] = field(default_factory=list)  # nodes kept in float
    accuracy_aware: AccuracyAwareResult | None = None  # with --max-drop: how the bound was met, step by step


@dataclass
class RevertStep:
    """One step of accuracy-aware int8: a group of nodes put back to float, and the drop after it."""

    step: int
    target: str  # the quantized tensor (ORT) or operation (NNCF) whose group was reverted
    nodes: list[str]  # the nodes that group adds to the float set
    score: float  # the accuracy measure on the validation data after this step
    drop: float  # float's score minus this one (points), or relative to float's (%) with drop_type relative
    kept: bool  # False: it made things no better, so it was undone


@dataclass
class LayerCost:
    """Latency cost of keeping some layers in float: a model with them reverted vs the full int8 one."""

    label: str
    reverted: list[str]  # the nodes in float in the timed model
    p50_ms: float
    p50_ci: float  # the 95 % interval of that median, as a fraction of it
    int8_p50_ms: float
    cost: float  # p50 over the full int8 model's p50, minus 1 (0.05: 5 % slower)


@dataclass
class AccuracyAwareResult:
    toolkit: str  # onnxruntime (rnopt's greedy loop) or openvino (nncf.quantize_with_accuracy_control)
    measure: str  # top-1, mAP, cosine
    bound: str  # the bound in words, e.g. "top-1 drop <= 0.05 points"
    max_drop: float
    drop_type: str  # absolute (points) or relative (% of the float model's score)
    data: str  # the validation data every decision was tuned on
    images: int
    float_score: float
    int8_score: float  # before any revert
    final_score: float
    final_drop: float
    met: bool
    layers_quantized: int  # quantized compute layers of the full int8 model (M)
    kept_float: list[str]  # the nodes the final model keeps in float (K of them)
    steps: list[RevertStep] = field(default_factory=list)
    runs_float_as: str = ""  # where the reverted layers actually run (e.g. OpenVINO's bf16 on this CPU)
    test_data: str | None = None  # the untuned final figures
    test_float_score: float | None = None
    test_int8_score: float | None = None  # the full int8 model
    test_score: float | None = None  # the model written
    layer_costs: list[LayerCost] = field(default_factory=list)


@dataclass
class QuantizerSensitivity:
    """One quantized tensor: how much error its int8 rounding adds, and (for the worst) what it costs."""

    tensor: str
    kind: str  # activation or weight
    order: int  # position in the network (topological)
    nodes: list[str]  # the nodes that must stay float for this tensor to stay float
    module: str  # the PyTorch module it came from, where the export recorded it
    sqnr_db: float  # local: the tensor vs its own quantize-dequantize
    sqnr_accumulated_db: float | None = None  # float model's tensor vs the int8 model's: all error up to here
    # The noise-to-signal ratio this layer adds: the accumulated ratio here minus the largest at its inputs.
    # Unlike local SQNR it sees a layer whose rounding is harmless here but ruins what comes next (an
    # outlier channel that takes the whole range).
    noise_added: float | None = None
    score_change: float | None = None  # ground truth: measure gained by keeping only this group float (points)

    def cheap_rank(self) -> tuple[float, float]:
        """Sort key, worst first, from the cheap pass alone: noise added, then (weights) local SQNR."""
        return (-(self.noise_added if self.noise_added is not None else -1.0), self.sqnr_db)


@dataclass
class SensitivityResult:
    float_model: str
    int8_model: str
    data: str
    images: int  # images the SQNR pass ran on
    measure: str
    float_score: float
    int8_score: float
    ground_truth_images: int  # images each ground-truth re-validation ran on
    layers: list[QuantizerSensitivity] = field(default_factory=list)  # in network order

    def ranked(self) -> list[QuantizerSensitivity]:
        """Worst first: by ground truth where measured (largest gain from keeping float), then by the cheap pass."""
        return sorted(self.layers, key=lambda q: (q.score_change is None, -(q.score_change or 0.0), q.cheap_rank()))


@dataclass
class EvalResult:
    model: str  # display label
    top1: float
    top5: float
    n: int
    backend: str = ""
    precision: str = ""
    spec_id: str = ""
    device: str = "cpu"


@dataclass
class Comparison:
    reference: str
    candidate: str
    top1_delta: float
    agreement: float
    mean_abs_logit_diff: float
    max_abs_logit_diff: float
    max_rel_logit_diff: float | None = None  # max |diff| / max |reference logit|
    reference_id: str = ""
    candidate_id: str = ""


def variant_key(result: "BenchResult | EvalResult") -> str:
    """What joins a variant's bench and eval results: its spec id (version-1 files: its label)."""
    return result.spec_id or result.model


def candidate_key(comparison: Comparison) -> str:
    return comparison.candidate_id or comparison.candidate


def reference_key(comparison: Comparison) -> str:
    return comparison.reference_id or comparison.reference


@dataclass
class EvalSection:
    dataset: str
    results: list[EvalResult]
    comparisons: list[Comparison]


@dataclass
class RetrievalResult:
    """An embedding model's retrieval quality, and its fidelity to the reference variant's embeddings."""

    model: str  # display label
    n: int
    dim: int
    precision_at: dict[str, float]  # "1", "5", "10": same-class share of the k nearest neighbours
    map: float | None  # mean average precision, same-class images relevant
    backend: str = ""
    precision: str = ""
    device: str = "cpu"
    spec_id: str = ""
    reference: str | None = None  # None: this is the reference
    reference_id: str = ""
    cosine_mean: float | None = None  # of each image's two embeddings (reference vs this)
    cosine_p1: float | None = None
    cosine_min: float | None = None
    overlap_at: dict[str, float] = field(default_factory=dict)  # share of the reference's k nearest kept


@dataclass
class EmbeddingSection:
    dataset: str
    results: list[RetrievalResult]


@dataclass
class Candidate:
    """One variant a search (`rnopt tune`) considered: its validation score, and its speed if it was timed."""

    spec_id: str
    label: str
    score: float | None = None  # the bound's measure on the validation images (None: it could not run)
    drop: float | None = None  # from the float reference, in the bound's unit
    met: bool = False  # within the bound: it was timed
    p50_ms: float | None = None  # at `batch_size`: the search's, or a swept candidate's peak
    p50_ci_ms: list[float] | None = None
    throughput_ips: float | None = None
    batch_size: int | None = None
    verdict: str = ""  # chosen, tied, slower, over the bound, failed: ...


@dataclass
class SearchResult:
    """What `rnopt tune` searched, on which images, and what it chose (`chosen_id`: a spec of the record)."""

    objective: str  # latency (lowest median) or throughput (most images/s)
    batch_size: int
    bound: str  # the accuracy bound, in words
    measure: str
    data: str  # the validation images every decision was made on (never the test set)
    images: int
    reference: str  # the float model the drops are measured from
    reference_id: str
    reference_score: float
    candidates: list[Candidate] = field(default_factory=list)
    chosen_id: str = ""
    chosen_file: str = ""  # the chosen model's file ("" for a PyTorch variant)
    search_time_s: float = 0.0


@dataclass
class Failure:
    """A variant that could not be built, loaded or run: the others went on without it."""

    spec_id: str
    label: str
    stage: str  # load, bench, eval, memory
    reason: str


@dataclass
class Record:
    """What every rnopt command returns and writes as JSON: the specs it ran and its typed results."""

    kind: str
    command: str = ""
    environment: Environment = field(default_factory=snapshot)
    warnings: list[str] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)  # VariantSpec.to_dict() of every variant run
    model: dict[str, Any] | None = None  # `rnopt run`: the model it started from
    exports: list[ExportResult] = field(default_factory=list)
    optimizations: list[OptimizeResult] = field(default_factory=list)
    quantizations: list[QuantizeResult] = field(default_factory=list)
    scenario: str | None = None
    bench_config: dict[str, Any] | None = None
    bench: list[BenchResult] = field(default_factory=list)
    evals: list[EvalSection] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sensitivity: list[SensitivityResult] = field(default_factory=list)  # per-layer int8 sensitivity
    embeddings: list[EmbeddingSection] = field(default_factory=list)  # embedding models: retrieval fidelity
    searches: list[SearchResult] = field(default_factory=list)  # `rnopt tune`: what it tried and chose
    details: dict[str, Any] = field(default_factory=dict)  # listings: models, backends, compare-runs rows

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "Record":
        return build(cls, payload)



def build(cls: type, data: Any) -> Any:
    """Instantiate dataclass `cls` from plain JSON data, recursing into nested dataclasses and lists.

    Unknown keys are ignored, so files from a newer rnopt with extra fields still load.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            try:
                kwargs[f.name] = _convert(hints[f.name], data[f.name])
            except TypeError as exc:
                raise TypeError(f"{cls.__name__}.{f.name}: {exc}") from None
    built = cls(**kwargs)
    if isinstance(built, LatencyStats) and min(dataclasses.astuple(built)) < 0:
        raise ValueError(f"negative latency in {dataclasses.asdict(built)}")
    return built


def _convert(hint: Any, value: Any) -> Any:
    """`value` as `hint` says, checked: result files are read from anywhere, so their types are not trusted."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r:.40}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {value!r:.40}")
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"expected a finite number, got {value!r:.40}")
        return value
    if hint is str and not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r:.40}")
    if hint is bool and not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r:.40}")
    return value
