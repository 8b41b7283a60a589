"""Result dataclasses: the JSON contract. Every command returns one `Record`; tables, Markdown and HTML are
rendered from records (by `rnopt.report`, which this module never imports).

Results that belong to a variant carry its spec id (`rnopt.spec.VariantSpec.id`): bench and eval results
are joined on it, never on the display label. Schema version 2; `rnopt.report.loading` still reads version 1.
"""
from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, replace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rnopt.environment import Environment, snapshot
from rnopt.schema import FRACTION, INTERVAL, LOADERS, NON_NEGATIVE, POSITIVE, RANGES, build
from rnopt.spec import VariantSpec, spec_entries

# 3: spec ids are stable (rnopt.spec.ID_SCHEME: content, no paths), so results of two runs join on them;
# 2: ids hashed paths (results join on labels); 1: no record, no ids. rnopt.report.loading reads all three.
# 4: a file rnopt builds is named by its recipe (source + steps; spec.ID_SCHEME 4), so ids of schema 3 and 4
# differ for the same variant and join only within one schema.
# 5: the same ids as 4; every accuracy figure a fraction (4 wrote tune's, accuracy-aware int8's and sensitivity's
# in points); specs typed; no free-form "details" (each kind's own typed field). `Record.from_dict` reads 2 to 4.
SCHEMA_VERSION = 5
ID_SCHEMES = {3: 3, 4: 4, 5: 4}  # the spec-id scheme (rnopt.spec.ID_SCHEME) each schema's ids follow; 1, 2: paths


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
    machine: str | None = None  # on a cluster with --nodes: the machine type it was timed on (its selector)

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
    model: str = ""  # the model it is a variant of (a search over several models: `tune --model a,b`)
    depth: int | None = None  # that model's depth (layers with weights), where the registry knows it
    on_front: bool = False  # no other timed candidate is at least as fast and scores at least as well


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
    model: str = ""  # the model searched ("" in records before `tune --model a,b`)
    # Across models: the models whose finalists were timed together and judged by one bound, against the best
    # float reference of them all (empty: one model's own search)
    models: list[str] = field(default_factory=list)
    floor: float | None = None  # across models: the lowest validation score within the bound
    budget_minutes: float | None = None  # `--budget-minutes`: the search screened, and stopped when it ended
    budget_ended_in: str = ""  # the stage the budget ended in: the choice is the best found so far


@dataclass
class Failure:
    """A variant that could not be built, loaded or run: the others went on without it."""

    spec_id: str
    label: str
    stage: str  # load, bench, eval, memory
    reason: str


@dataclass
class ModelUsed:
    """The model a `rnopt run` or `tune` started from."""

    name: str
    weights: str | None = None
    weights_sha256: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    created: str = ""


@dataclass
class ModelEntry:
    """One built-in model, as `rnopt models` lists it."""

    name: str
    family: str
    input_size: int
    parameters: int
    multiply_adds: int
    bundled_weights: bool
    top1_cifar10_jpeg: float | None = None  # the bundled weights' top-1 on the CIFAR-10 JPEG test set


@dataclass
class RuntimeEntry:
    """One registered runtime on this machine, as `rnopt backends` lists it."""

    name: str
    devices: list[str]
    precisions: list[str]
    version: str | None = None
    notes: str = ""


@dataclass
class MetricChange:
    """One figure of a variant in two runs (`rnopt compare-runs`)."""

    key: str
    metric: str
    baseline: float | None
    current: float | None
    change: float | None  # latency, memory: relative (0.1 = 10 % more); accuracy: fraction (-0.01 = 1 point lost)
    noise: float | None  # latency: relative change the noise alone could explain
    verdict: str


@dataclass
class RunComparison:
    """Two runs joined variant by variant: every figure's change, and those beyond tolerance and noise."""

    rows: list[MetricChange] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    environment_differences: list[str] = field(default_factory=list)


@dataclass
class EmbedSummary:
    """What `rnopt embed` wrote: the vectors file, how many, and how fast."""

    output: str
    images: int
    dim: int
    backend: str
    precision: str
    batch_size: int
    images_per_s: float | None  # by the model alone
    images_per_s_with_decoding: float | None
    skipped: list[str] = field(default_factory=list)  # "path: reason" of each image left out


@dataclass
class MergedFrom:
    """A report merged from several result files (`rnopt report -o x.json`): what it was merged from."""

    sources: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    models: list[ModelUsed] = field(default_factory=list)


def machines_of(outcome: Any) -> dict[str, Environment]:
    """A timing's machine types (a cluster's --nodes) with each one's environment, typed."""
    return {selector: build(Environment, env) for selector, env in outcome.machines.items()}


@dataclass
class Record:
    """What every rnopt command returns and writes as JSON: the specs it ran and its typed results.

    Every accuracy figure in it (top-1, mAP, a validation score, a drop) is a fraction: 0.9132, never 91.32."""

    kind: str
    command: str = field(default_factory=lambda: _INVOKED_AS.get())  # the command line, where one ran it
    environment: Environment = field(default_factory=Environment.unrecorded)  # capture_environment() sets it
    warnings: list[str] = field(default_factory=list)
    specs: list[VariantSpec] = field(default_factory=list)  # every variant run (JSON: each with its id)
    model: ModelUsed | None = None  # `rnopt run` / `tune`: the model it started from
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
    catalog: list[ModelEntry] = field(default_factory=list)  # `rnopt models`
    runtimes: list[RuntimeEntry] = field(default_factory=list)  # `rnopt backends`
    comparison: RunComparison | None = None  # `rnopt compare-runs`
    embedded: EmbedSummary | None = None  # `rnopt embed`
    merged: MergedFrom | None = None  # `rnopt report -o x.json`
    folder: str | None = None  # `rnopt run` / `rnopt tune`: the folder holding its model files and reports
    step_times_s: dict[str, float] = field(default_factory=dict)  # `rnopt run` / `tune`: each step's wall time
    # timed on a cluster's machine types (--nodes): each type's selector and the machine that timed for it
    machines: dict[str, Environment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wrong = [type(s).__name__ for s in self.specs if not isinstance(s, VariantSpec)]
        if wrong:  # a dict here would only fail when the record is written, far from the mistake
            raise TypeError(f"Record.specs holds VariantSpecs, got {wrong[0]}")

    @contextlib.contextmanager
    def timing(self, step: str) -> Iterator[None]:
        """Record how long the block took as `step` (added to what that step already took)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.step_times_s[step] = round(self.step_times_s.get(step, 0.0) + time.perf_counter() - start, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(replace(self, specs=[])), "specs": spec_entries(self.specs)}

    def save(self, path: "str | Path", force: bool = False) -> Path:
        """Write this record as JSON to `path` (atomically; an existing file is replaced only with `force`)."""
        from rnopt.fileio import check_writable_output, replacing, write_json

        check_writable_output(path, force)
        with replacing(force):
            write_json(path, self.to_dict())
        return Path(path)

    def to_markdown(self) -> str:
        """This record as a Markdown report (what `rnopt report x.json -o x.md` writes)."""
        return _render("markdown", self)

    def to_html(self) -> str:
        """This record as a self-contained HTML report, plots inlined (what `rnopt report x.json` writes)."""
        return _render("html", self)

    def spec(self, spec_id: str) -> VariantSpec:
        """The spec of this record with id `spec_id`."""
        from rnopt.errors import RnoptError

        for spec in self.specs:
            if spec.id == spec_id:
                return spec
        raise RnoptError(f"no spec {spec_id!r} in this {self.kind} record (its specs: "
                         f"{', '.join(s.id for s in self.specs) or 'none'})")

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
        """A record from its JSON, checked field by field; files of schema 2 to 4 are read in today's shape."""
        version = payload.get("schema_version") if isinstance(payload, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and 2 <= version < SCHEMA_VERSION:
            payload = upgraded(payload, version)
        return build(cls, payload)


# The command line that invoked the library (set by the CLI around its call; empty for a plain API call): the records
# made meanwhile say what made them, so the API's verbs need no `command` parameter.
_INVOKED_AS: ContextVar[str] = ContextVar("rnopt_invoked_as", default="")


@contextlib.contextmanager
def invoked_as(command: str) -> Iterator[None]:
    """Records made inside the block carry `command` (what `rnopt ...` the user typed)."""
    token = _INVOKED_AS.set(command)
    try:
        yield
    finally:
        _INVOKED_AS.reset(token)


# Renderers register themselves here when their module (rnopt.report.html, rnopt.report.markdown) is imported. This
# module never imports them by name: results are the contract the renderers read, and nothing that computes a
# result depends on how it is drawn.
RENDERERS: dict[str, Callable[[Record], str]] = {}


def _render(fmt: str, record: Record) -> str:
    if fmt not in RENDERERS:
        import importlib

        importlib.import_module(f"rnopt.report.{fmt}")  # the renderer, loaded only when a report is asked for
    return RENDERERS[fmt](record)


# What each kind of record kept in its "details" object before schema 5 typed it.
_DETAILS = {"models": ("catalog", "models"), "backends": ("runtimes", "backends"), "embed": ("embedded", None),
            "report": ("merged", None), "compare": ("comparison", None)}
_IN_POINTS = ("top-1", "mAP")  # measures whose scores schema 4 and older wrote in points (91.3, not 0.913)


def upgraded(payload: dict[str, Any], version: int) -> dict[str, Any]:
    """A record of an older schema in today's shape: its specs dropped where their ids followed another scheme,
    its "details" in the typed field of its kind, and accuracy in points turned into fractions."""
    payload = dict(payload)
    if version < 4:  # ids hashed paths (2) or content before recipes (3): no spec of today rebuilds from them
        payload["specs"] = []
    details = payload.pop("details", None)
    if isinstance(details, dict) and payload.get("kind") in _DETAILS:
        name, key = _DETAILS[payload["kind"]]
        payload[name] = details.get(key) if key else details
    return _scores_as_fractions(payload)


def _scores_as_fractions(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 and older: tune, accuracy-aware int8 and sensitivity wrote top-1 and mAP in points."""
    def scaled(obj: Any, fields: tuple[str, ...], measure: Any, relative: bool = False) -> Any:
        if not isinstance(obj, dict) or (measure not in _IN_POINTS and not relative):
            return obj
        return {k: v / 100 if k in fields and isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for k, v in obj.items()}

    def each(items: Any) -> list:
        return items if isinstance(items, list) else []

    searches = []
    for s in each(payload.get("searches")):
        if isinstance(s, dict):
            s = scaled(s, ("reference_score",), s.get("measure"))
            relative = "% of float" in str(s.get("bound"))
            s["candidates"] = [scaled(scaled(c, ("score",), s.get("measure")), ("drop",), s.get("measure"), relative)
                               for c in each(s.get("candidates"))]
        searches.append(s)
    quantizations = []
    for q in each(payload.get("quantizations")):
        aware = q.get("accuracy_aware") if isinstance(q, dict) else None
        if isinstance(aware, dict):
            m, relative = aware.get("measure"), aware.get("drop_type") == "relative"
            aware = scaled(aware, ("float_score", "int8_score", "final_score", "test_float_score", "test_int8_score",
                                   "test_score"), m)
            aware = scaled(aware, ("final_drop", "max_drop"), m, relative)
            aware["steps"] = [scaled(scaled(step, ("score",), m), ("drop",), m, relative)
                              for step in each(aware.get("steps"))]
            q = {**q, "accuracy_aware": aware}
        quantizations.append(q)
    sensitivity = []
    for r in each(payload.get("sensitivity")):
        if isinstance(r, dict):
            r = scaled(r, ("float_score", "int8_score"), r.get("measure"))
            r["layers"] = [scaled(q, ("score_change",), r.get("measure")) for q in each(r.get("layers"))]
        sensitivity.append(r)
    return {**payload, **{k: v for k, v in (("searches", searches), ("quantizations", quantizations),
                                            ("sensitivity", sensitivity)) if k in payload}}


def _spec_entry(entry: dict[str, Any]) -> VariantSpec:
    """A record's spec entry; its stored id must be the one its content hashes to (a hand edit is refused)."""
    from rnopt.errors import RnoptError

    spec = VariantSpec.from_dict(entry)
    if "id" in entry and entry["id"] != spec.id:
        raise RnoptError(f"spec {entry['id']!r:.20} does not match its content (which hashes to {spec.id}): "
                         f"the file was edited, or written under another id scheme")
    return spec


LOADERS[VariantSpec] = _spec_entry


RANGES.update({
    "LatencyStats": {**{f: POSITIVE for f in ("mean", "p50", "p90", "p95", "p99", "min", "max")},
                     "stdev": NON_NEGATIVE},
    "BenchResult": {"batch_size": POSITIVE, "iterations": POSITIVE, "throughput_ips": POSITIVE,
                    "streams": POSITIVE, "threads": NON_NEGATIVE, "p50_ci_ms": INTERVAL, "p50_ci": NON_NEGATIVE,
                    "total_time_s": NON_NEGATIVE, "rounds": NON_NEGATIVE},
    "EvalResult": {"top1": FRACTION, "top5": FRACTION, "n": POSITIVE},
    "Comparison": {"agreement": FRACTION},
    "RetrievalResult": {"n": POSITIVE, "dim": POSITIVE},
    "Candidate": {"p50_ci_ms": INTERVAL, "p50_ms": POSITIVE, "throughput_ips": POSITIVE, "batch_size": POSITIVE},
})
