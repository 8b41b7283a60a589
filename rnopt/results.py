"""Result dataclasses: the JSON contract. Every command returns one `Record`; tables, Markdown and HTML are
rendered from records (by `rnopt.report`, which this module never imports).

Results that belong to a variant carry its spec id (`rnopt.spec.VariantSpec.id`): bench and eval results
are joined on it, never on the display label. Schema version 2; `rnopt.report.loading` still reads version 1.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import types
import typing
from dataclasses import asdict, dataclass, field
from collections.abc import Callable, Iterator
from typing import Any

from rnopt.environment import Environment, snapshot

# 3: spec ids are stable (rnopt.spec.ID_SCHEME: content, no paths), so results of two runs join on them;
# 2: ids hashed paths (results join on labels); 1: no record, no ids. rnopt.report.loading reads all three.
# 4: a file rnopt builds is named by its recipe (source + steps; spec.ID_SCHEME 4), so ids of schema 3 and 4
# differ for the same variant and join only within one schema.
SCHEMA_VERSION = 4


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
    speed_tolerance: float = 0.0  # %: candidates this close to the fastest counted as fast as it
    speed_only: bool = False  # accuracy not measured: bounded by agreement with the float model's outputs


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
    environment: Environment = field(default_factory=Environment.unrecorded)  # capture_environment() sets it
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
    folder: str | None = None  # `rnopt run` / `rnopt tune`: the folder holding its model files and reports
    step_times_s: dict[str, float] = field(default_factory=dict)  # `rnopt run` / `tune`: each step's wall time

    @contextlib.contextmanager
    def timing(self, step: str) -> Iterator[None]:
        """Record how long the block took as `step` (added to what that step already took)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.step_times_s[step] = round(self.step_times_s.get(step, 0.0) + time.perf_counter() - start, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    def add_step_result(self, result: "ExportResult | OptimizeResult | QuantizeResult") -> None:
        """A model-file step's own result, in the section of its kind."""
        section = {ExportResult: self.exports, OptimizeResult: self.optimizations}.get(type(result),
                                                                                   self.quantizations)
        section.append(result)  # type: ignore[arg-type]

    def add_evaluation(self, section: "EvalSection | EmbeddingSection", failures: list["Failure"]) -> None:
        """An evaluation's figures, in the section of its kind (classifier or embedding model), and its failures."""
        if isinstance(section, EmbeddingSection):
            self.embeddings = [section]
        else:
            self.evals = [section]
        self.failures += failures

    def capture_environment(self) -> "Record":
        """This machine and its library versions, recorded with the results (an explicit call: making or loading
        a record probes nothing)."""
        self.environment = snapshot()
        return self

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "Record":
        return build(cls, payload)



# The ranges readers rely on: a result file may come from anywhere and say anything, so these are checked when it
# is read (besides every field's type), and a file that breaks one is refused by name rather than crashing a
# renderer or a division later.
_POSITIVE, _NON_NEGATIVE, _FRACTION, _INTERVAL = "positive", "zero or more", "a fraction (0 to 1)", "interval"
_RANGES: dict[str, dict[str, str]] = {
    "LatencyStats": {**{f: _POSITIVE for f in ("mean", "p50", "p90", "p95", "p99", "min", "max")},
                     "stdev": _NON_NEGATIVE},
    "BenchResult": {"batch_size": _POSITIVE, "iterations": _POSITIVE, "throughput_ips": _POSITIVE,
                    "streams": _POSITIVE, "threads": _NON_NEGATIVE, "p50_ci_ms": _INTERVAL, "p50_ci": _NON_NEGATIVE,
                    "total_time_s": _NON_NEGATIVE, "rounds": _NON_NEGATIVE},
    "EvalResult": {"top1": _FRACTION, "top5": _FRACTION, "n": _POSITIVE},
    "Comparison": {"agreement": _FRACTION},
    "RetrievalResult": {"n": _POSITIVE, "dim": _POSITIVE},
    "Candidate": {"p50_ci_ms": _INTERVAL, "p50_ms": _POSITIVE, "throughput_ips": _POSITIVE, "batch_size": _POSITIVE},
}
MAX_DEPTH = 32  # free-form objects (settings, listings) nested deeper than this are refused
MAX_MAGNITUDE = 1e300  # numbers beyond it (10**400 as an integer) are refused, not overflowed later


def build(cls: type, data: Any) -> Any:
    """Instantiate dataclass `cls` from plain JSON data, recursing into nested dataclasses and lists; every
    field's type and the ranges in `_RANGES` are checked (TypeError or ValueError naming the field).

    Unknown keys are ignored, so files from a newer rnopt with extra fields still load.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects an object, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    ranges = _RANGES.get(cls.__name__, {})
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            try:
                kwargs[f.name] = _convert(hints[f.name], data[f.name])
                _check_range(ranges.get(f.name), kwargs[f.name])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{cls.__name__}.{f.name}: {exc}") from None
    try:
        return cls(**kwargs)
    except TypeError:  # a required field left out
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        raise TypeError(f"{cls.__name__} lacks {', '.join(missing)}") from None


def _check_range(rule: str | None, value: Any) -> None:
    if rule is None or value is None:
        return
    if rule == _INTERVAL:
        if len(value) != 2 or not 0 <= value[0] <= value[1]:
            raise ValueError(f"expected an interval [low, high] with 0 <= low <= high, got {_shown(value)}")
        return
    ok = {_POSITIVE: value > 0, _NON_NEGATIVE: value >= 0, _FRACTION: 0 <= value <= 1}[rule]
    if not ok:
        raise ValueError(f"expected {rule}, got {_shown(value)}")


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value!r:.40}"


def _convert(hint: Any, value: Any, depth: int = 0) -> Any:
    """`value` as `hint` says, checked: result files are read from anywhere, so their types are not trusted."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if hint is Any:
        return _free_form(value, depth)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise TypeError("expected a value, got null")
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, depth) if len(inner) == 1 else _free_form(value, depth)
    if value is None:
        raise TypeError(f"expected {_type_name(hint)}, got null")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {_shown(value)}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, depth + 1) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_shown(value)}")
        _, item = typing.get_args(hint)
        return {_convert(str, k, depth + 1): _convert(item, v, depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):  # an instance checked itself when it was made
        return value if isinstance(value, hint) else build(hint, value)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise TypeError(f"expected a finite number, got {_shown(value)}")
        if hint is int and not isinstance(value, int):
            raise TypeError(f"expected a whole number, got {_shown(value)}")
        return value
    if hint is str and not isinstance(value, str):
        raise TypeError(f"expected text, got {_shown(value)}")
    if hint is bool and not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_shown(value)}")
    return value


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value) and abs(float(value)) <= MAX_MAGNITUDE
    except OverflowError:  # an integer too large for a float
        return False


def _free_form(value: Any, depth: int) -> Any:
    """JSON of any shape (settings, listings): only JSON's own types, finite numbers, bounded depth."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {_convert(str, k, depth + 1): _free_form(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_free_form(v, depth + 1) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
        raise TypeError(f"expected a finite number, got {_shown(value)}")
    return value


def _type_name(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return f"an object ({hint.__name__})"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(hint, "a value")


def check_fields(obj: Any) -> None:
    """The public constructors' check (BenchConfig, RunOptions, TuneOptions, AccuracyControl, specs): every field
    of dataclass `obj` holds its annotated type, else one RnoptError naming the field. A path field also takes
    text, turned into a Path."""
    from pathlib import Path

    from rnopt.errors import RnoptError

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if Path in (hint, *typing.get_args(hint)) and isinstance(value, (str, Path)):
            object.__setattr__(obj, f.name, Path(value))
            continue
        if dataclasses.is_dataclass(hint) and isinstance(value, hint) or typing.get_origin(hint) is Callable:
            continue
        try:
            _convert(hint, value)
        except (TypeError, ValueError) as exc:
            raise RnoptError(f"{type(obj).__name__}.{f.name}: {exc}") from None
