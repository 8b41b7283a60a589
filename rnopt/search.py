"""`rnopt tune`: search one model's variants for the fastest whose accuracy stays within a bound.

    model files (export, fuse, int8 by each search recipe, NNCF's int8) ──> candidate specs on every runtime
      ──validate──> each scored on validation images (never the test set); over the bound: out
      ──when every int8 candidate is out──> accuracy-aware int8 (layers back to float until the bound holds)
        from minmax (ORT) and NNCF, validated the same way
      ──bench──> the rest timed together, interleaved, at one batch size
      ──choose──> the fastest by the objective; among those the timing cannot tell apart from it (95 %
                  intervals overlap), the most accurate on validation
      ──> the chosen variant and the float reference on the test set (untuned figures); one record

The building blocks are `rnopt run`'s (planner, artifact store, executor, accuracy bound, quantizers): this
module only builds the search space and decides.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

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

CALIB_SIZE = 500
VALIDATION_BATCH = 250
FLOAT_FILES = ("model.onnx", "model.fused.onnx")


def tune(opts: TuneOptions, render: Render = write_record) -> tuple[Record, Path]:
    """Build the candidates, validate, time, choose; `render` writes the report files into the fresh folder (the JSON
    record by default; the API adds Markdown and HTML)."""
    backends, skipped = run_backends(opts.backends)
    devices, not_on_cuda = run_devices(opts.devices, backends)
    model = artifact_for(opts.model, opts.weights, opts.num_classes, opts.labels, opts.head, normalize=opts.normalize)
    store = ArtifactStore()
    loaded = store.loaded(model)
    meta = meta_for(loaded)
    why_speed_only = speed_only_reason(opts, meta, model)
    bound = AccuracyBound.min_cosine(opts.control.min_cosine or DEFAULT_MIN_COSINE) if why_speed_only else \
        opts.control.bound(meta)
    check_batch_fits(VALIDATION_BATCH, meta.input_size)
    test_name = None if why_speed_only and not opts.control.test_data else opts.control.test_set(meta)
    if test_name:
        test = load_dataset(test_name)  # a missing test folder fails now, not after the search
        if meta.fits_bundled_cifar:
            refuse_mixed_roles(test, final=True)
    with progress.task("decoding validation images") as advance:
        validation = validation_set(meta, _images_given(opts, meta) if why_speed_only else opts.control.data,
                                    opts.control.limit, on_batch=advance, unlabelled_ok=bool(why_speed_only))
    calib_source, calib_note = opts.calib_data, ""
    if why_speed_only and not calib_source and not meta.fits_bundled_cifar:  # no bundled images fit: the given ones
        calib_source = _images_given(opts, meta)
        calib_note = (f"int8 was calibrated on the images the outputs were compared on ({calib_source}): give "
                      f"--calib-data DIR for images of their own")
    with progress.task("reading calibration images", CALIB_SIZE) as advance:
        calibration = calibration_data(meta, calib_source, CALIB_SIZE, advance)
    with run_folder(opts.output, f"{loaded.name}-tune") as out:
        record = Record("tune", warnings=list(loaded.warnings) + skipped + not_on_cuda,
                        model=model_section(loaded)).capture_environment()
        if why_speed_only:
            record.warnings.append(f"speed only: accuracy was not measured ({why_speed_only}); each candidate's "
                                   f"outputs were bounded by {bound.describe()} on {len(validation)} images of "
                                   f"{validation.name}, and the fastest within it chosen")
            record.warnings += [calib_note] if calib_note else []
        with collecting() as heard:
            _search(opts, record, backends, devices, model, store, bound, validation, calibration, test_name, out)
        record.folder = str(out)
        record.warnings = list(dict.fromkeys(record.warnings + heard))  # the library's notices, in report.json too
        render(record, out)
        return record, out


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


def _search(opts: TuneOptions, record: Record, backends: list[str], devices: list[str], model: ArtifactSpec,
            store: ArtifactStore, bound: AccuracyBound, validation: ValidationSet, calibration: CalibrationData,
            test_name: str | None, out: Path) -> None:
    start = time.perf_counter()
    with record.timing("model files: export, fusion, int8"):
        files = _build_files(opts, backends, model, store, calibration, out, record)
    store.data.add(validation)  # the validation tasks read these images from here, by content
    executor: Executor = RayExecutor(opts.cluster) if opts.cluster else InProcessExecutor(store)
    try:
        specs, scores, files = _validated(opts, record, backends, devices, model, files, store, bound, validation,
                                          calibration, out, executor)
        _time_and_choose(opts, record, specs, scores, files, bound, validation, test_name, out, executor, start)
    finally:
        executor.close()


def _validated(opts: TuneOptions, record: Record, backends: list[str], devices: list[str], model: ArtifactSpec,
               files: dict[str, ArtifactSpec], store: ArtifactStore, bound: AccuracyBound, validation: ValidationSet,
               calibration: CalibrationData, out: Path, executor: Executor
               ) -> tuple[list[VariantSpec], dict[str, float], dict[str, ArtifactSpec]]:
    """The candidates that ran on the validation images (the float reference first) and their scores; with
    accuracy-aware int8 when no plain int8 candidate kept the bound (its files added)."""
    planned = plan_candidates(model, files, backends, devices, opts.objective, opts.threads)
    if isinstance(executor, InProcessExecutor):  # loaded ahead here (a failure comes back from validation)
        with progress.task("loading candidates", None), record.timing("loading the variants"):
            executor.load(planned)
    validator = Validator(validation, bound)
    with progress.task(f"validating on {validation.name}", len(planned) * len(validation)) as advance, \
            record.timing("validation"):
        specs, scores = validator.scores(executor, planned, record.failures, advance)
    if opts.accuracy_aware and _any_int8(specs) and not _int8_within(specs, scores, bound):
        with record.timing("accuracy-aware int8"):
            aware = _accuracy_aware_files(opts, files, store, bound, validation, calibration, out, record)
        planned = [s for s in plan_candidates(model, aware, backends, ["cpu"], opts.objective, opts.threads)
                   if s.artifact != model]
        with progress.task("validating accuracy-aware int8", len(planned) * len(validation)) as advance:
            more, more_scores = validator.scores(executor, planned, record.failures, advance)
        specs, scores = specs + more, scores | more_scores
        files = {**files, **aware}
    return specs, scores, files


def _time_and_choose(opts: TuneOptions, record: Record, specs: list[VariantSpec], scores: dict[str, float],
                     files: dict[str, ArtifactSpec], bound: AccuracyBound, validation: ValidationSet,
                     test_name: str | None, out: Path, executor: Executor, start: float) -> None:
    """The candidates within the bound timed, the fastest chosen (ties: the better score), verdicts given, and
    the final figures of the reference and the choice on the test set."""
    record.specs = list(specs)
    reference, reference_score = specs[0], scores[specs[0].id]
    candidates = {s.id: _candidate(s, scores.get(s.id), reference_score, bound) for s in specs}
    with progress.task("timing the candidates within the bound", None) as advance, record.timing("timing"):
        outcome = time_candidates(executor, [s for s in specs if candidates[s.id].met], opts,
                                  on_progress=lambda note: advance(1, note))
    record.bench, record.bench_config = outcome.results, opts.bench.to_dict()
    record.failures += outcome.failures
    figures = peaks(outcome.results, opts.objective)
    chosen = choose(figures, opts.objective, {i: c.score for i, c in candidates.items()}, opts.speed_tolerance)
    give_verdicts(candidates, figures, chosen, opts.objective, record.failures, opts.speed_tolerance)
    chosen_spec = next(s for s in specs if s.id == chosen.spec_id)
    record.searches = [SearchResult(opts.objective, opts.bench.batch_sizes[0], bound.describe(), bound.measure,
                                    validation.name, len(validation), reference.label, reference.id,
                                    reference_score, list(candidates.values()), chosen.spec_id,
                                    _file_of(chosen_spec, files, out),
                                    round(time.perf_counter() - start, 1), opts.speed_tolerance,
                                    any(w.startswith("speed only:") for w in record.warnings))]
    if test_name:
        with record.timing("final figures (test set)"):
            _test_figures(record, [reference] + ([chosen_spec] if chosen_spec != reference else []), test_name,
                          executor)
    record.warnings = list(dict.fromkeys(record.warnings + summarize_warnings(record.bench)
                                         + [f"skipped {f.label}: {f.reason}" for f in record.failures]
                                         + artifact_warnings(specs)))


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


def _accuracy_aware_files(opts: TuneOptions, files: dict[str, ArtifactSpec], store: ArtifactStore, bound: AccuracyBound, validation: ValidationSet,
                          calibration: CalibrationData, out: Path, record: Record) -> dict[str, ArtifactSpec]:
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


def _candidate(spec: VariantSpec, score: float | None, reference: float, bound: AccuracyBound) -> Candidate:
    if score is None:
        return Candidate(spec.id, spec.label)
    drop = bound.drop(reference, score)
    return Candidate(spec.id, spec.label, score, drop, bound.met(reference, score))


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
            candidate.p50_ms, candidate.p50_ci_ms = result.latency_ms.p50, result.p50_ci_ms
            candidate.throughput_ips, candidate.batch_size = result.throughput_ips, result.batch_size
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
