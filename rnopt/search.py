"""`rnopt tune`: search a model's variants (or several models') for the fastest whose accuracy stays within a bound.

    model files (export, fuse, int8 by each search recipe, NNCF's int8) ──> candidate specs on every runtime
      ──validate──> each scored on validation images (never the test set); over the bound: out
      ──when every int8 candidate is out──> accuracy-aware int8 (layers back to float until the bound holds)
        from minmax (ORT) and NNCF, validated the same way
      ──bench──> the rest timed together, interleaved, at one batch size
      ──choose──> the fastest by the objective; among those the timing cannot tell apart from it (95 %
                  intervals overlap, or within the speed tolerance), the most accurate on validation
      ──settings──> the chosen one against itself with its runtime's knobs and fewer threads; one clearly
                    faster replaces it
      ──> the chosen variant and the float reference on the test set (untuned figures); one record

Several models (`--model a,b`): each searched as above against its own float reference, then their finalists
(each model's own front) timed together and judged by one bound against the best float model: the
recommendation leads the record. A budget (`--budget-minutes`): every candidate screened with a short timing
first, validated fastest first while it could still win, and the search stops with the best found so far.

The building blocks are `rnopt run`'s (planner, artifact store, executor, accuracy bound, quantizers): this
module only builds the search space and decides.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rnopt import progress
from rnopt.accuracy import AccuracyBound, ValidationSet, default_validation_data, refuse_mixed_roles, validation_set
from rnopt.artifacts import ArtifactStore, artifact_for
from rnopt.backends import backend_class
from rnopt.bench import CUDA_SWEEP_LIMIT, check_batch_fits, \
    summarize_warnings, sweep_config
from rnopt.configs import SEARCH_RECIPES, TuneOptions
from rnopt.data import load_dataset
from rnopt.errors import RnoptError
from rnopt.execute.base import Executor
from rnopt.execute.cluster import RayExecutor
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.subprocess import SubprocessExecutor
from rnopt.execute.tasks import (BenchOutcome, DataRef, EvalOutcome, OutputsOutcome, evaluation_task,
                                 validation_task)
from rnopt.notices import collecting
from rnopt.onnx_export import meta_for
from rnopt.onnx_model import ModelMeta
from rnopt.pipeline import EVAL_BATCH, Render, build_into, model_section, run_backends, run_devices, \
    run_folder, write_record
from rnopt.plan import artifact_warnings, int8_files, is_quantized, loaded_formats, plan_variants
from rnopt.quantization import QUANTIZERS, QuantRecipe
from rnopt.recipes import optimize_step, quantize_aware_step, quantize_step
from rnopt.quantization.base import CalibrationData
from rnopt.quantization.calibration import calibration_data
from rnopt.results import BenchResult, Candidate, Failure, Record, SearchResult
from rnopt.spec import IN_FRAMEWORK, ArtifactSpec, VariantSpec, format_suffix

if TYPE_CHECKING:
    from rnopt.models.registry import LoadedModel

CALIB_SIZE = 500
VALIDATION_BATCH = 250
FLOAT_FILES = ("model.onnx", "model.fused.onnx")


def tune(opts: TuneOptions, render: Render = write_record) -> tuple[Record, Path]:
    """Build the candidates, validate, time, choose; `render` writes the report files into the fresh folder (the JSON
    record by default; the API adds Markdown and HTML). With several models (`--model a,b`): each searched against
    its own float reference, then their finalists timed together on one front (`_across_models`)."""
    backends, skipped = run_backends(opts.backends)
    devices, not_on_cuda = run_devices(opts.devices, backends)
    store = ArtifactStore()
    budget = Budget.of(opts.budget_minutes)
    searched = [_prepare(one, store) for one in opts.each_model()]
    for one in searched:
        one.budget = budget
    if len(searched) > 1:
        check_comparable(searched)
    name = "-".join(s.loaded.name for s in searched)
    start = time.perf_counter()
    with run_folder(opts.output, f"{name}-tune") as out:
        record = Record("tune", warnings=skipped + not_on_cuda,
                        model=model_section(searched[0].loaded)).capture_environment()
        executor: Executor = RayExecutor(opts.cluster) if opts.cluster else InProcessExecutor(store)
        try:
            with collecting() as heard:
                for one in searched:
                    folder = out if len(searched) == 1 else out / one.loaded.name
                    folder.mkdir(exist_ok=True)
                    one.prefix = "" if len(searched) == 1 else f"{one.loaded.name}/"
                    one.chosen = _search(one, record, backends, devices, store, folder, executor)
                if len(searched) > 1:
                    _across_models(opts, record, searched, executor, start)
                if searched[0].test_name:
                    with record.timing("final figures (test set)"):
                        _test_figures(record, _tested(record, searched), searched[0].test_name, executor)
        finally:
            executor.close()
        record.folder = str(out)
        record.warnings = list(dict.fromkeys(record.warnings + heard + summarize_warnings(record.bench)
                                             + [f"skipped {f.label}: {f.reason}" for f in record.failures]
                                             + artifact_warnings(record.specs)))
        render(record, out)
        return record, out


@dataclass
class Budget:
    """`--budget-minutes`: when the search must end (None: no end). Checked between candidates, never inside one
    task, so a search ends at most one validation or one timing round late."""

    deadline: float | None = None
    ended_in: str = ""  # the stage the budget ran out in ("": it did not)

    @classmethod
    def of(cls, minutes: float | None) -> "Budget":
        return cls(None if minutes is None else time.perf_counter() + minutes * 60.0)

    def left(self) -> float:
        return float("inf") if self.deadline is None else max(0.0, self.deadline - time.perf_counter())

    def spent(self, stage: str) -> bool:
        """Whether the budget has ended, noting the first stage it ended in."""
        if self.left() > 0:
            return False
        self.ended_in = self.ended_in or stage
        return True


@dataclass
class OneModel:
    """One model of a search, ready to search: its options, bound and decoded images."""

    opts: TuneOptions
    model: ArtifactSpec
    loaded: "LoadedModel"
    bound: AccuracyBound
    validation: ValidationSet
    calibration: CalibrationData
    test_name: str | None
    warnings: list[str]
    chosen: VariantSpec | None = None
    files: dict[str, str] = field(default_factory=dict)  # spec id -> its model file in the run folder ("": none)
    budget: Budget = field(default_factory=Budget)  # shared by every model of the search
    planned: list[VariantSpec] = field(default_factory=list)  # every candidate, validated or not
    screen: dict[str, BenchResult] = field(default_factory=dict)  # with a budget: each candidate's short timing
    skipped: dict[str, str] = field(default_factory=dict)  # spec id -> why it was not validated (with a budget)
    prefix: str = ""  # in a search over several models: the model's folder, before each label

    def labelled(self, specs: list[VariantSpec]) -> list[VariantSpec]:
        """The specs with the model's name in their labels where several models share one report (labels are
        for people: the ids do not change)."""
        keep = not self.prefix
        return [s if keep or s.label.startswith(self.loaded.name) else replace(s, label=self.prefix + s.label)
                for s in specs]


def _prepare(opts: TuneOptions, store: ArtifactStore) -> OneModel:
    """The model loaded, its bound, validation and calibration images decoded; a missing test folder fails here,
    not after the search."""
    model = artifact_for(opts.model, opts.weights, opts.num_classes, opts.labels, opts.head, normalize=opts.normalize)
    loaded = store.loaded(model)
    meta = meta_for(loaded)
    why_speed_only = speed_only_reason(opts, meta, model)
    bound = AccuracyBound.min_cosine(opts.control.min_cosine or DEFAULT_MIN_COSINE) if why_speed_only else \
        opts.control.bound(meta)
    check_batch_fits(VALIDATION_BATCH, meta.input_size)
    test_name = None if why_speed_only and not opts.control.test_data else opts.control.test_set(meta)
    if test_name:
        test = load_dataset(test_name)
        if meta.fits_bundled_cifar:
            refuse_mixed_roles(test, final=True)
    with progress.task(f"decoding validation images ({loaded.name})") as advance:
        validation = validation_set(meta, _images_given(opts, meta) if why_speed_only else opts.control.data,
                                    opts.control.limit, on_batch=advance, unlabelled_ok=bool(why_speed_only))
    warnings = list(loaded.warnings)
    calib_source = opts.calib_data
    if why_speed_only:
        warnings.append(f"speed only: accuracy was not measured ({why_speed_only}); each candidate's outputs were "
                        f"bounded by {bound.describe()} on {len(validation)} images of {validation.name}, and the "
                        f"fastest within it chosen")
        if not calib_source and not meta.fits_bundled_cifar:  # no bundled images fit: the given ones
            calib_source = _images_given(opts, meta)
            warnings.append(f"int8 was calibrated on the images the outputs were compared on ({calib_source}): "
                            f"give --calib-data DIR for images of their own")
    with progress.task("reading calibration images", CALIB_SIZE) as advance:
        calibration = calibration_data(meta, calib_source, CALIB_SIZE, advance)
    return OneModel(opts, model, loaded, bound, validation, calibration, test_name, warnings)


def check_comparable(searched: list[OneModel]) -> None:
    """Several models go on one front only when their scores mean the same: accuracy (not agreement with each
    one's own float model), on the same validation images, with the same final test set."""
    first = searched[0]
    for one in searched:
        if one.bound.measure == "cosine":  # agreement with its own float model: no common scale
            raise RnoptError(f"comparing models needs their accuracy on labelled validation images, but "
                             f"{one.loaded.name} would be bounded by {one.bound.describe()}: give every model "
                             f"trained weights and labelled --data")
        if one.validation.name != first.validation.name or one.test_name != first.test_name:
            raise RnoptError(f"{one.loaded.name} and {first.loaded.name} would be validated or tested on different "
                             f"images ({one.validation.name} vs {first.validation.name}): give --data and "
                             f"--test-data that fit both")
        if one.bound.measure != first.bound.measure:
            raise RnoptError(f"{one.loaded.name} and {first.loaded.name} would be bounded by different measures: "
                             f"give --measure")


DEFAULT_MIN_COSINE = 0.99  # speed only: a candidate's outputs keep this mean cosine to the float model's


def speed_only_reason(opts: TuneOptions, meta: ModelMeta, model: ArtifactSpec) -> str:
    """Why this search cannot measure accuracy and bounds agreement with the float model instead ("": it can)."""
    if opts.speed_only:
        return "asked for with --speed-only"
    if not model.is_file and not model.sha256:
        return f"{model.source} has random weights: its accuracy would mean nothing"
    if opts.control.data is None:
        try:
            default_validation_data(meta)
        except RnoptError:
            return f"no labelled validation images fit {meta.model}: give --data DIR with labelled images to measure it"
        return ""
    if not load_dataset(opts.control.data, unlabelled_ok=True).labelled:
        return f"{opts.control.data} holds no labels"
    return ""


def _images_given(opts: TuneOptions, meta: ModelMeta) -> str:
    """The images a speed-only search compares outputs on: --data, else the calibration images."""
    if opts.control.data:
        return opts.control.data
    if opts.calib_data:
        return opts.calib_data
    try:
        return default_validation_data(meta)
    except RnoptError:
        raise RnoptError(f"a speed-only search compares outputs on images: give --data DIR (any images of what "
                         f"{meta.model} will see; labels are not needed)") from None


def within_budget(opts: TuneOptions, budget: Budget) -> TuneOptions:
    """The options with the timing's limit cut to the time the budget has left (unchanged without a budget)."""
    if budget.deadline is None:
        return opts
    return replace(opts, bench=replace(opts.bench, max_time=min(opts.bench.max_time, max(budget.left(), 0.1))))


# A screen: each candidate timed briefly, to order validation and skip candidates that cannot win
SCREEN_ITERATIONS, SCREEN_SECONDS = 20, 0.2


def could_win(screened: BenchResult, best: BenchResult | None, objective: str, tolerance: float) -> bool:
    """Whether a candidate screened at `screened` could still be chosen once `best` (the fastest screened candidate
    known to be within the bound) is: it is faster, or as fast by the choice rule (intervals overlap, or within
    the speed tolerance), where a better score would win."""
    if best is None:
        return True
    return speed(screened, objective) >= speed(best, objective) or screened in tied_with_fastest(
        [best, screened], objective, tolerance)


def _search(one: OneModel, record: Record, backends: list[str], devices: list[str], store: ArtifactStore,
            out: Path, executor: Executor) -> VariantSpec:
    """One model's search into the record: its files in `out`, its candidates validated, timed and judged; the
    chosen variant comes back."""
    start = time.perf_counter()
    record.warnings += one.warnings
    with record.timing("model files: export, fusion, int8"):
        files = _build_files(one.opts, backends, one.model, store, one.calibration, out, record)
    store.data.add(one.validation)  # the validation tasks read these images from here, by content
    specs, scores, files = _validated(one, record, backends, devices, files, store, out, executor)
    return _time_and_choose(one, record, specs, scores, files, out, executor, start)


def _validated(one: OneModel, record: Record, backends: list[str], devices: list[str],
               files: dict[str, ArtifactSpec], store: ArtifactStore, out: Path, executor: Executor
               ) -> tuple[list[VariantSpec], dict[str, float], dict[str, ArtifactSpec]]:
    """The candidates that ran on the validation images (the float reference first) and their scores; with
    accuracy-aware int8 when no plain int8 candidate kept the bound (its files added)."""
    opts, model, bound, validation = one.opts, one.model, one.bound, one.validation
    planned = one.labelled(plan_candidates(model, files, backends, devices, opts.objective, opts.threads))
    one.planned = list(planned)
    if isinstance(executor, InProcessExecutor):  # loaded ahead here (a failure comes back from validation)
        with progress.task("loading candidates", None), record.timing("loading the variants"):
            executor.load(planned)
    validator = Validator(validation, bound)
    if one.budget.deadline is not None:
        specs, scores = _screened_and_validated(one, record, planned, validator, executor)
        return specs, scores, files  # a budget leaves accuracy-aware int8 out: it costs minutes
    with progress.task(f"validating on {validation.name}", len(planned) * len(validation)) as advance, \
            record.timing("validation"):
        specs, scores = validator.scores(executor, planned, record.failures, advance)
    if opts.accuracy_aware and _any_int8(specs) and not _int8_within(specs, scores, bound):
        with record.timing("accuracy-aware int8"):
            aware = _accuracy_aware_files(opts, files, store, bound, validation, one.calibration, out, record)
        planned = one.labelled([s for s in plan_candidates(model, aware, backends, ["cpu"], opts.objective,
                                                           opts.threads) if s.artifact != model])
        with progress.task("validating accuracy-aware int8", len(planned) * len(validation)) as advance:
            more, more_scores = validator.scores(executor, planned, record.failures, advance)
        specs, scores = specs + more, scores | more_scores
        files = {**files, **aware}
    return specs, scores, files


def _screened_and_validated(one: OneModel, record: Record, planned: list[VariantSpec], validator: "Validator",
                            executor: Executor) -> tuple[list[VariantSpec], dict[str, float]]:
    """With a budget: every candidate screened (briefly timed), then validated fastest first, the float reference
    always; a candidate that could no longer win against the fastest within the bound so far is not validated;
    when the budget ends, validation stops there. Each one left out gets its reason in `one.skipped`."""
    opts = one.opts
    config = replace(opts.bench, warmup=5, iterations=SCREEN_ITERATIONS, min_time=SCREEN_SECONDS, target_ci=None,
                     memory=False)
    with progress.task("screening the candidates", None) as advance, record.timing("screening"):
        screen = executor.bench(planned, config, lambda note: advance(1, note))
    record.failures += screen.failures
    one.screen = {r.spec_id: r for r in peaks(screen.results, opts.objective)}
    reference = planned[0]  # validated first, whatever the budget: every drop is measured from it
    order = [reference] + sorted((s for s in planned[1:] if s.id in one.screen),
                                 key=lambda s: -speed(one.screen[s.id], opts.objective))
    specs: list[VariantSpec] = []
    scores: dict[str, float] = {}
    best: BenchResult | None = None
    with progress.task(f"validating on {one.validation.name}", None) as advance, record.timing("validation"):
        for spec in order:
            screened = one.screen.get(spec.id)
            if spec is not reference and one.budget.spent("validation"):
                one.skipped[spec.id] = "not validated: the budget ended"
                continue
            if spec is not reference and screened and not could_win(screened, best, opts.objective,
                                                                      opts.speed_tolerance):
                one.skipped[spec.id] = (f"not validated: screened slower than {_label_of(best, planned)} (within the "
                                        f"bound), it could not win")
                continue
            ran, more = validator.scores(executor, [spec], record.failures, advance)
            specs += ran
            scores |= more
            if ran and screened and validator.bound.met(scores[specs[0].id], more[spec.id]) and (
                    best is None or speed(screened, opts.objective) > speed(best, opts.objective)):
                best = screened
    return specs, scores


def knob_variants(spec: VariantSpec, objective: str, cores: int) -> tuple[list[VariantSpec], list[VariantSpec]]:
    """The chosen variant with other settings: its runtime's knobs (`RuntimeConfig.knobs`, timed together in one
    process) and fewer intra-op threads (each timed in a fresh process: thread pools are per process). Settings
    equal to the variant's own are left out."""
    assert spec.config is not None
    options = []
    for knob in spec.config.knobs(objective, cores):
        variant = replace(spec, config=replace(spec.config, **knob),
                          label=f"{spec.label} + " + ", ".join(f"{k} {_word(v)}" for k, v in knob.items()))
        if variant.id != spec.id and variant.id not in {v.id for v in options}:
            options.append(variant)
    counts = sorted({1, cores // 2} - {0, cores}) if spec.threads is None and spec.device == "cpu" else []
    threads = [replace(spec, threads=n, label=f"{spec.label} + {n} thread{'s' if n > 1 else ''}") for n in counts]
    return options, threads


def _word(value: object) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def _tune_knobs(one: OneModel, record: Record, spec: VariantSpec, chosen: BenchResult,
                candidates: dict[str, Candidate], executor: Executor,
                on_progress: Callable[[str], None]) -> BenchResult:
    """The chosen variant against itself with other settings, timed side by side (runtime options interleaved in
    one process; thread counts each in a fresh process). Another setting replaces the chosen one only when it
    is clearly faster (95 % intervals apart), so the choice does not flip on noise. The file and runtime are the
    same: the validation score carries over (fewer threads can change float sums in the last bits only)."""
    opts = one.opts
    options, threads = knob_variants(spec, opts.objective, os.cpu_count() or 1)
    base = candidates[spec.id]
    best, best_gain = chosen, 1.0  # gains: against the default settings in the same timing
    for group, runner in ((options, executor), (threads, SubprocessExecutor())):
        if not group or isinstance(executor, RayExecutor):  # a cluster's workers: their own cores, not ours
            continue
        outcome = time_candidates(runner, [spec] + group, within_budget(opts, one.budget), on_progress)
        record.failures += outcome.failures
        figures = {r.spec_id: r for r in peaks(outcome.results, opts.objective)}
        reference = figures.get(spec.id)
        for variant in group:
            record.specs.append(variant)
            result = figures.get(variant.id)
            candidate = replace(base, spec_id=variant.id, label=variant.label, verdict="")
            candidates[variant.id] = candidate
            if result is None or reference is None:
                candidate.verdict = "failed: could not be timed"
                continue
            record.bench.append(result)
            _set_speed(candidate, result)
            clear = clear_gain(result, reference, opts.objective)
            if clear is not None and clear > best_gain:
                best, best_gain = result, clear
            gain = _gain(result, reference, opts.objective)
            candidate.verdict = (f"setting: {gain:.2f}x as fast as the default settings timed beside it"
                                 + ("" if clear or gain <= 1 else ", not clearly (95 % intervals overlap)"))
    if best is not chosen:
        candidates[spec.id].verdict = "the same with other settings was clearly faster"
        candidates[best.spec_id].verdict = "chosen"
    best_spec = next((v for v in [spec, *options, *threads] if v.id == best.spec_id), spec)
    # A thread count is timed in a process of its own (PyTorch's is process-wide), its batch sizes too.
    runner = SubprocessExecutor() if best_spec in threads and not isinstance(executor, RayExecutor) else executor
    return _tune_batch(one, record, best_spec, best, candidates[best.spec_id], runner, on_progress)


def batch_knob(spec: VariantSpec, opts: TuneOptions) -> list[int]:
    """The other batch sizes worth timing for the throughput objective: half and double the objective's (a
    candidate swept on CUDA has been judged at its best batch already; latency is judged at batch 1)."""
    if opts.objective != "throughput" or sweep_limit(spec, opts):
        return []
    assert opts.bench is not None
    batch = opts.bench.batch_sizes[0]
    return sorted({max(1, batch // 2), batch * 2} - {batch})


def _tune_batch(one: OneModel, record: Record, spec: VariantSpec, chosen: BenchResult, candidate: Candidate,
                executor: Executor, on_progress: Callable[[str], None]) -> BenchResult:
    """The chosen variant at other batch sizes, interleaved with its own batch in one set of rounds; another size
    replaces it only when clearly faster (95 % intervals apart). Outputs per image do not depend on the batch."""
    opts = within_budget(one.opts, one.budget)
    sizes = batch_knob(spec, opts)
    if not sizes or isinstance(executor, RayExecutor):
        return chosen
    assert opts.bench is not None
    config = replace(opts.bench, batch_sizes=[chosen.batch_size, *sizes], batches_together=True)
    outcome = executor.bench([spec], config, on_progress)
    record.failures += outcome.failures
    by_batch = {r.batch_size: r for r in outcome.results}
    reference = by_batch.get(chosen.batch_size)
    if reference is None:
        return chosen
    best, best_gain, notes = chosen, 1.0, []
    for size in sizes:
        result = by_batch.get(size)
        if result is None:
            continue
        record.bench.append(result)
        clear, gain = clear_gain(result, reference, opts.objective), _gain(result, reference, opts.objective)
        notes.append(f"batch {size} {gain:.2f}x" + ("" if clear or gain <= 1 else " (not clearly: intervals overlap)"))
        if clear is not None and clear > best_gain:
            best, best_gain = result, clear
    candidate.verdict += (f"; other batch sizes timed beside batch {chosen.batch_size} (images/s): "
                          + ", ".join(notes) + (f": batch {best.batch_size} taken" if best is not chosen else ""))
    if best is not chosen:
        _set_speed(candidate, best)
    return best


def clear_gain(result: BenchResult, reference: BenchResult, objective: str) -> float | None:
    """How many times as fast as `reference` (timed beside it) `result` is, where it is clearly faster (95 %
    intervals apart); None where the timing cannot say it is faster."""
    if not _clearly_faster(_as_candidate(result), _as_candidate(reference), objective):
        return None
    return _gain(result, reference, objective)


def _gain(result: BenchResult, reference: BenchResult, objective: str) -> float:
    """How many times as fast as `reference` (timed in the same run)."""
    if objective == "throughput":
        return result.throughput_ips / reference.throughput_ips
    return reference.latency_ms.p50 / result.latency_ms.p50


def _as_candidate(result: BenchResult) -> Candidate:
    candidate = Candidate(result.spec_id, "")
    _set_speed(candidate, result)
    return candidate


def _label_of(result: BenchResult | None, specs: list[VariantSpec]) -> str:
    return next((s.label for s in specs if result and s.id == result.spec_id), "")


def _time_and_choose(one: OneModel, record: Record, specs: list[VariantSpec], scores: dict[str, float],
                     files: dict[str, ArtifactSpec], out: Path, executor: Executor, start: float) -> VariantSpec:
    """The candidates within the bound timed, the fastest chosen (ties: the better score), verdicts given: one
    SearchResult in the record."""
    opts, bound, validation = one.opts, one.bound, one.validation
    record.specs += specs
    reference, reference_score = specs[0], scores[specs[0].id]
    depth = one.loaded.spec.depth
    candidates = {s.id: _candidate(s, scores.get(s.id), reference_score, bound, one.loaded.name, depth)
                  for s in specs}
    within = [s for s in specs if candidates[s.id].met]
    screen_only = one.budget.spent("timing")
    if screen_only:  # the screen's figures are the best known
        outcome = BenchOutcome([one.screen[s.id] for s in within if s.id in one.screen])
    else:
        with progress.task("timing the candidates within the bound", None) as advance, record.timing("timing"):
            outcome = time_candidates(executor, within, within_budget(opts, one.budget),
                                      on_progress=lambda note: advance(1, note))
    record.bench += outcome.results
    record.bench_config = opts.bench.to_dict()
    record.failures += outcome.failures
    figures = peaks(outcome.results, opts.objective)
    # Speed only: the agreement scores differ in the fourth digit, so they should not outweigh speed: the fastest
    # median wins outright (no tolerance; ties by the median, not the score)
    speed_only = any(w.startswith("speed only:") for w in one.warnings)
    tolerance = 0.0 if speed_only else opts.speed_tolerance
    chosen = choose(figures, opts.objective, {i: 0.0 if speed_only else c.score for i, c in candidates.items()},
                    tolerance)
    give_verdicts(candidates, figures, chosen, opts.objective, record.failures, tolerance)
    for candidate in candidates.values() if speed_only else []:
        if candidate.verdict.startswith("as fast as the fastest"):
            candidate.verdict = "as fast as the fastest within the noise; speed only: the fastest median wins"
    if opts.knobs and not one.budget.spent("knobs"):
        with progress.task("timing other settings of the chosen variant", None) as advance, \
                record.timing("knobs"):
            chosen = _tune_knobs(one, record, next(s for s in specs if s.id == chosen.spec_id), chosen,
                                 candidates, executor, lambda note: advance(1, note))
        specs = specs + [s for s in record.specs if s.id in candidates and s not in specs]
    for spec_id, reason in one.skipped.items():
        label = next(s.label for s in one.planned if s.id == spec_id)
        candidates[spec_id] = replace(Candidate(spec_id, label, model=one.loaded.name, depth=depth), verdict=reason)
    record.specs += [s for s in one.planned if s.id in one.skipped]
    if one.budget.ended_in:
        unvalidated = sum(1 for reason in one.skipped.values() if "budget" in reason)
        timed_by = "the screen's short timing" if screen_only else "a timing cut to the budget"
        record.warnings.append(f"the budget of {opts.budget_minutes:g} minutes ended during {one.budget.ended_in}: "
                               f"the choice is the best found so far ({unvalidated} candidates not validated; timed "
                               f"by {timed_by})")
    chosen_spec = next(s for s in specs if s.id == chosen.spec_id)
    one.files = {s.id: _file_of(s, files, out) for s in specs}
    record.searches.append(SearchResult(
        opts.objective, opts.bench.batch_sizes[0], bound.describe(), bound.measure, validation.name, len(validation),
        reference.label, reference.id, reference_score, list(candidates.values()), chosen.spec_id,
        one.files[chosen_spec.id], round(time.perf_counter() - start, 1), tolerance, speed_only,
        model=one.loaded.name,
        budget_minutes=opts.budget_minutes, budget_ended_in=one.budget.ended_in))
    return chosen_spec


def _across_models(opts: TuneOptions, record: Record, searched: list[OneModel], executor: Executor,
                   start: float) -> None:
    """The models' finalists (each model's own front: no faster variant of it scores as well) timed together,
    interleaved, and judged by one bound against the best float reference of them all: the recommendation is
    the fastest that stays within it (the speed tolerance as in one search). Its SearchResult leads the record."""
    searches = record.searches[-len(searched):]
    best = max(searches, key=lambda s: s.reference_score)
    bound = next(one.bound for one in searched if one.loaded.name == best.model)
    finalists = finalists_of(searches, bound, opts.objective)
    specs = [record.spec(c.spec_id) for c in finalists]
    budget = searched[0].budget
    if budget.spent("timing across models"):  # each model's own timing is the best known
        results = [r for r in record.bench if r.spec_id in {c.spec_id for c in finalists}]
    else:
        with progress.task("timing the finalists of every model together", None) as advance, \
                record.timing("timing across models"):
            outcome = time_candidates(executor, specs, within_budget(opts, budget),
                                      on_progress=lambda note: advance(1, note))
        record.failures += outcome.failures
        confirmed = {(r.spec_id, r.batch_size) for r in outcome.results}  # these replace the models' own timings
        record.bench = [r for r in record.bench if (r.spec_id, r.batch_size) not in confirmed] + outcome.results
        results = outcome.results
    chosen = judge(finalists, peaks(results, opts.objective), opts.objective, opts.speed_tolerance, record.failures)
    chosen_file = next(one.files[chosen.spec_id] for one in searched if chosen.spec_id in one.files)
    record.searches.insert(0, SearchResult(
        opts.objective, opts.bench.batch_sizes[0], bound.describe(), bound.measure, best.data, best.images,
        best.reference, best.reference_id, best.reference_score, finalists, chosen.spec_id,
        chosen_file,
        round(time.perf_counter() - start, 1), opts.speed_tolerance, False, model=best.model,
        models=[one.loaded.name for one in searched], floor=bound.score_at(best.reference_score, bound.limit),
        budget_minutes=opts.budget_minutes, budget_ended_in=budget.ended_in))


def finalists_of(searches: list[SearchResult], bound: AccuracyBound, objective: str) -> list[Candidate]:
    """Each model's own front (`own_front`), its drops and `met` now against the best float reference of all the
    searches: the candidates worth timing together."""
    best = max(searches, key=lambda s: s.reference_score).reference_score
    return [replace(c, drop=bound.drop(best, c.score), met=bound.met(best, c.score))
            for search in searches for c in own_front(search.candidates, objective)]


def judge(finalists: list[Candidate], figures: list[BenchResult], objective: str, tolerance: float,
          failures: list[Failure]) -> BenchResult:
    """The recommendation among the finalists timed together: the fastest within the shared bound (ties: the best
    validation score); every finalist gets its verdict, its new speed and its place on the front."""
    candidates = {c.spec_id: c for c in finalists}
    within = [r for r in figures if candidates[r.spec_id].met]
    chosen = choose(within, objective, {i: c.score for i, c in candidates.items()}, tolerance)
    give_verdicts(candidates, within, chosen, objective, failures, tolerance)
    for result in figures:  # those over the shared bound were timed too: their speed belongs on the front
        _set_speed(candidates[result.spec_id], result)
    mark_front(finalists, objective)
    return chosen


def _file_of(spec: VariantSpec, files: dict[str, ArtifactSpec], out: Path) -> str:
    """The run folder's copy of the file `spec` loads ("" for a PyTorch variant, which loads no file)."""
    if IN_FRAMEWORK in backend_class(spec.runtime).formats:
        return ""
    return next((str(out / name) for name, artifact in files.items() if artifact == spec.artifact), "")


def _any_int8(specs: list[VariantSpec]) -> bool:
    return any(is_quantized(s.artifact) for s in specs)


def _int8_within(specs: list[VariantSpec], scores: dict[str, float], bound: AccuracyBound) -> bool:
    """Whether any int8 candidate kept accuracy within the bound."""
    reference = scores[specs[0].id]
    return any(bound.met(reference, scores[s.id]) for s in specs if is_quantized(s.artifact) and s.id in scores)


def _build_files(opts: TuneOptions, backends: list[str], model: ArtifactSpec, store: ArtifactStore,
                 calibration: CalibrationData, out: Path, record: Record) -> dict[str, ArtifactSpec]:
    """The recipes of the search, those the chosen runtimes load: the fp32 export, ONNX Runtime's fused file, one
    int8 file per recipe (ORT's quantizer), NNCF's IR; built through the store (cached by recipe) and copied into
    the run folder."""
    store.data.add(calibration)
    formats = loaded_formats(backends)
    files = {"model.onnx": model}
    if "onnx-ort" in formats:
        files["model.fused.onnx"] = model.then(optimize_step())
    for name, (toolkit, recipe) in int8_files(formats, record.warnings, opts.recipes or list(SEARCH_RECIPES)).items():
        files[name] = model.then(quantize_step(toolkit, SEARCH_RECIPES[recipe] if recipe else QuantRecipe(),
                                               calibration))
    with progress.task("exporting and checking", None):
        store.model_file(model)
    return build_into(store, files, out, record)


def plan_candidates(model: ArtifactSpec, files: dict[str, ArtifactSpec], runtimes: list[str], devices: list[str],
                    objective: str = "latency", threads: int | None = None) -> list[VariantSpec]:
    """Every file on every runtime that loads it, with the options that suit the objective, then the PyTorch
    model (on CUDA too where a GPU is used: the variants `rnopt run` times there). The float ONNX export leads:
    the float reference drops are measured from. A runtime whose default precision is its own (OpenVINO) also runs
    the float export at fp32."""
    return plan_variants(model, files, runtimes, devices, threads, objective, float_at_fp32=True,
                         speed_reference_first=False)


def _accuracy_aware_files(opts: TuneOptions, files: dict[str, ArtifactSpec], store: ArtifactStore,
                          bound: AccuracyBound, validation: ValidationSet, calibration: CalibrationData, out: Path,
                          record: Record) -> dict[str, ArtifactSpec]:
    """Accuracy-aware int8, ONNX Runtime's from the first recipe searched (minmax by default) and NNCF's with
    OpenVINO: each toolkit puts layers back to float until the bound holds on the same validation images. A
    model that still misses the bound is kept: validation scores it like any other candidate.

    Not from the best-scoring recipe: a recipe that clips (entropy) hurts many layers a little, and undoing
    that reverts many layers. Measured on the outlier-channel ResNet-20 (scripts/damage_layer.py): from
    entropy, 16 of 36 layers went back to float in 100 s, and the model ran 2x slower than fp32 on ONNX
    Runtime; from minmax, `rnopt quantize --max-drop` reverts 2 (README "Int8 you can trust")."""
    store.data.add(calibration, validation)
    first = SEARCH_RECIPES[(opts.recipes or list(SEARCH_RECIPES))[0]]
    model = files["model.onnx"]
    toolkits = dict.fromkeys(a.steps[-1].settings["toolkit"] for a in files.values() if a.quantized and a.steps)
    aware = {}
    for toolkit in toolkits:
        entry = QUANTIZERS[toolkit]
        aware[f"model.int8-aware{format_suffix(entry.format)}"] = model.then(quantize_aware_step(
            toolkit, first if entry.takes_recipes else QuantRecipe(), calibration, bound, validation,
            opts.control.max_steps))
    return build_into(store, aware, out, record)


@dataclass
class Validator:
    """Scores variants on the validation images. The float reference comes first in the first call; its outputs
    (which a cosine compares with) are kept, so later candidates are scored without running it again."""

    validation: ValidationSet
    bound: AccuracyBound
    reference: np.ndarray | None = None

    def scores(self, executor: Executor, specs: list[VariantSpec], failures: list[Failure],
               advance: Callable[..., None] | None = None) -> tuple[list[VariantSpec], dict[str, float]]:
        """The specs that ran on the validation images (in the first call, the float reference first: the first
        that ran in fp32) and each one's score; a spec that fails to load or run becomes a Failure."""
        outcome = executor.run(validation_task(specs, self.validation, VALIDATION_BATCH), specs, advance)
        assert isinstance(outcome, OutputsOutcome)
        failures += outcome.failures
        ran = [s for s in specs if s.id in outcome.outputs]
        if self.reference is None:
            reference = next((s for s in ran if outcome.ran[s.id]["precision"] == "fp32"), None)
            if reference is None:
                raise RnoptError("no float (fp32) candidate could run, so accuracy drops have no reference: include "
                                 "onnxruntime or torch in --backend")
            self.reference = outcome.outputs[reference.id]
            ran = [reference] + [s for s in ran if s is not reference]
        measure = self.bound.measure_object()
        return ran, {key: measure.score(out, self.validation.labels, self.reference)
                     for key, out in outcome.outputs.items()}


def _candidate(spec: VariantSpec, score: float | None, reference: float, bound: AccuracyBound, model: str = "",
               depth: int | None = None) -> Candidate:
    if score is None:
        return Candidate(spec.id, spec.label, model=model, depth=depth)
    drop = bound.drop(reference, score)
    return Candidate(spec.id, spec.label, score, drop, bound.met(reference, score), model=model, depth=depth)


def own_front(candidates: list[Candidate], objective: str) -> list[Candidate]:
    """The timed candidates that no other timed one dominates: clearly faster (their 95 % intervals do not
    overlap) and scoring at least as well. A model's finalists.

    Safe for `choose`: a dominated candidate is never its choice while the one dominating it is there (within
    the speed tolerance of the fastest, the other is too; overlapping the fastest's interval, the other's lies
    between and overlaps it too; and then the other's score and speed win), so pruning never drops the best."""
    timed = [c for c in candidates if c.score is not None and c.p50_ms is not None]
    return [c for c in timed if not any(_dominates(other, c, objective) for other in timed)]


def mark_front(candidates: list[Candidate], objective: str) -> None:
    """`on_front` set for the timed candidates no other one dominates (see `own_front`)."""
    front = {c.spec_id for c in own_front(candidates, objective)}
    for c in candidates:
        c.on_front = c.spec_id in front


def _dominates(a: Candidate, b: Candidate, objective: str) -> bool:
    return (a.score or 0.0) >= (b.score or 0.0) and _clearly_faster(a, b, objective)


def _clearly_faster(a: Candidate, b: Candidate, objective: str) -> bool:
    """Whether `a` is faster than `b` and their 95 % intervals do not overlap (`overlaps`, on candidates)."""
    def interval(c: Candidate) -> tuple[float, float]:
        low, high = c.p50_ci_ms or [c.p50_ms, c.p50_ms]
        if objective == "throughput":  # images per median call: the interval follows the latency's, reversed
            return (c.throughput_ips or 0.0) * c.p50_ms / high, (c.throughput_ips or 0.0) * c.p50_ms / low
        return -high, -low  # higher is faster, as `speed`

    return interval(a)[0] > interval(b)[1]


def _set_speed(candidate: Candidate, result: BenchResult) -> None:
    candidate.p50_ms, candidate.p50_ci_ms = result.latency_ms.p50, result.p50_ci_ms
    candidate.throughput_ips, candidate.batch_size = result.throughput_ips, result.batch_size


def _tested(record: Record, searched: list[OneModel]) -> list[VariantSpec]:
    """What the test set scores: each model's float reference and chosen variant, and the recommendation across
    models (the first search's choice), once each."""
    ids = [s.reference_id for s in record.searches] + [s.chosen_id for s in record.searches]
    ordered = [record.spec(i) for i in dict.fromkeys(ids)]
    references = {s.reference_id for s in record.searches}
    return sorted(ordered, key=lambda spec: spec.id not in references)


def sweep_limit(spec: VariantSpec, opts: TuneOptions) -> int | None:
    """How far a candidate's batch is doubled (None: timed at the one batch size): only for throughput; on
    CUDA by default, since a GPU's peak lies far beyond any one batch size."""
    if opts.objective != "throughput":
        return None
    return opts.sweep or (CUDA_SWEEP_LIMIT if spec.device == "cuda" else None)


def time_candidates(executor: Executor, specs: list[VariantSpec], opts: TuneOptions,
                    on_progress: Callable[[str], None] | None = None) -> BenchOutcome:
    """The candidates timed together at the objective's batch size; those swept (`sweep_limit`) from it upward,
    a size at a time (fixed length, as `rnopt run`'s sweep), after the others."""
    assert opts.bench is not None
    swept = [s for s in specs if sweep_limit(s, opts)]
    outcome = executor.bench([s for s in specs if s not in swept], opts.bench, on_progress)
    for spec in swept:
        config = replace(sweep_config(opts.bench, sweep_limit(spec, opts) or 0), batch_sizes=opts.bench.batch_sizes)
        more = executor.bench([spec], config, on_progress)
        outcome.results += more.results
        outcome.failures += more.failures
    return outcome


def peaks(results: list[BenchResult], objective: str) -> list[BenchResult]:
    """Each candidate's figure: its one result, or for a swept candidate the batch size with the most images/s."""
    best: dict[str, BenchResult] = {}
    for result in results:
        if result.spec_id not in best or speed(result, objective) > speed(best[result.spec_id], objective):
            best[result.spec_id] = result
    return list(best.values())


def choose(results: list[BenchResult], objective: str, scores: dict[str, float | None],
           tolerance: float = 0.0) -> BenchResult:
    """The fastest result by the objective; among those as fast as it (`tied_with_fastest`: within `tolerance` %,
    or the timing cannot order them), the one with the best validation score."""
    if not results:
        raise RnoptError("no candidate within the bound could be timed (see the failures above)")

    def score(r: BenchResult) -> float:
        value = scores.get(r.spec_id)
        return -np.inf if value is None else value

    return max(tied_with_fastest(results, objective, tolerance), key=lambda r: (score(r), speed(r, objective)))


def fastest(results: list[BenchResult], objective: str) -> BenchResult:
    return max(results, key=lambda r: speed(r, objective))


def tied_with_fastest(results: list[BenchResult], objective: str, tolerance: float = 0.0) -> list[BenchResult]:
    """The fastest result and every one as fast within the noise (95 % intervals overlap) or within `tolerance` %
    of it (a latency at most that much longer; images/s at most that much fewer)."""
    best = fastest(results, objective)
    return [r for r in results if overlaps(r, best, objective) or within(r, best, objective, tolerance)]


def within(result: BenchResult, best: BenchResult, objective: str, tolerance: float) -> bool:
    """Whether `result` is within `tolerance` % of `best` by the objective."""
    if objective == "throughput":
        return result.throughput_ips >= best.throughput_ips * (1 - tolerance / 100.0)
    return result.latency_ms.p50 <= best.latency_ms.p50 * (1 + tolerance / 100.0)


def speed(result: BenchResult, objective: str) -> float:
    """Higher is better: images/s for throughput, the negated median latency for latency."""
    return result.throughput_ips if objective == "throughput" else -result.latency_ms.p50


def overlaps(a: BenchResult, b: BenchResult, objective: str) -> bool:
    """Whether the two results' medians cannot be told apart (their 95 % intervals overlap). Throughput is
    images per median call, so its interval follows the latency interval (images per call differ: scale)."""
    if a is b:
        return True
    if not a.p50_ci_ms or not b.p50_ci_ms:
        return False
    if objective == "throughput":
        low_a, high_a = (a.throughput_ips * a.latency_ms.p50 / t for t in reversed(a.p50_ci_ms))
        low_b, high_b = (b.throughput_ips * b.latency_ms.p50 / t for t in reversed(b.p50_ci_ms))
        return low_a <= high_b and low_b <= high_a
    return a.p50_ci_ms[0] <= b.p50_ci_ms[1] and b.p50_ci_ms[0] <= a.p50_ci_ms[1]


def give_verdicts(candidates: dict[str, Candidate], results: list[BenchResult], chosen: BenchResult,
                   objective: str, failures: list[Failure], tolerance: float = 0.0) -> None:
    timed = {r.spec_id: r for r in results}
    tied = {r.spec_id for r in tied_with_fastest(results, objective, tolerance)}
    best = fastest(results, objective)
    reasons = {f.spec_id: f"failed ({f.stage}): {f.reason}" for f in failures}
    for key, candidate in candidates.items():
        result = timed.get(key)
        if result is not None:
            _set_speed(candidate, result)
        candidate.verdict = reasons.get(key) or _verdict(candidate, result, chosen, best, key in tied, objective)


def _verdict(candidate: Candidate, result: BenchResult | None, chosen: BenchResult, best: BenchResult, tied: bool,
             objective: str) -> str:
    if not candidate.met:
        return "over the bound"
    if result is None:
        return "not timed"
    if result is chosen:
        return "chosen"
    if tied:
        return "as fast as the fastest (within the noise or the speed tolerance); the chosen scores as well or better"
    if objective == "throughput":
        return f"slower: the fastest does {best.throughput_ips / result.throughput_ips:.2f}x its images/s"
    return f"slower: x{result.latency_ms.p50 / best.latency_ms.p50:.2f} the fastest's latency"


def _test_figures(record: Record, specs: list[VariantSpec], test_name: str, executor: Executor) -> None:
    """The float reference and the chosen variant on the test set: the untuned final figures."""
    dataset = load_dataset(test_name)
    with progress.task(f"final figures on {dataset.name}", len(dataset)) as advance:
        evaluated = executor.run(evaluation_task(specs, DataRef.of(dataset), EVAL_BATCH), specs, advance)
    assert isinstance(evaluated, EvalOutcome)
    record.add_evaluation(evaluated.section, evaluated.failures)


__all__ = ["Validator", "choose", "plan_candidates",
           "tune"]
