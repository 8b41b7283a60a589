"""`rnopt run`: export -> check -> fuse -> quantize -> bench -> eval -> report, on one model, every runtime."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from rnopt import progress
from rnopt.accuracy import ValidationSet, default_validation_data, validation_set
from rnopt.artifacts import ArtifactStore, artifact_for
from rnopt.backends import backend_class, config_class
from rnopt.bench import BenchConfig, summarize_warnings, sweep_config
from rnopt.configs import RunOptions
from rnopt.data import ImageDataset, load_dataset
from rnopt.errors import RnoptError
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.base import Executor
from rnopt.execute.cluster import RayExecutor
from rnopt.execute.tasks import DataRef, EvalOutcome, evaluation_task
from rnopt.onnx_export import meta_for
from rnopt.onnx_model import ModelMeta
from rnopt.fileio import write_json
from rnopt.notices import collecting
from rnopt.models.registry import LoadedModel
from rnopt.plan import RUN_RUNTIMES, artifact_warnings, can_use_cuda, eval_order, int8_files, loaded_formats, \
    plan_variants
from rnopt.quantization.base import CalibrationData, QuantRecipe
from rnopt.recipes import optimize_step, quantize_aware_step, quantize_step
from rnopt.quantization.calibration import calibration_data
from rnopt.results import BenchResult, ModelUsed, Record, machines_of
from rnopt.spec import ArtifactSpec, Step, VariantSpec

CALIB_SIZE = 500
EVAL_BATCH = 250  # large batches amortise per-call overhead: the full test set in seconds
RUN_BACKENDS = RUN_RUNTIMES
RUN_DEVICES = ("cpu", "cuda")


def run_dir(base: Path, model: str) -> Path:
    """A fresh folder `<model>-<UTC timestamp>`; never reuses one that exists."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, n = base / f"{model}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = base / f"{model}-{stamp}-{n}"
    return candidate


Render = Callable[[Record, Path], None]


def write_record(record: Record, out: Path) -> None:
    """The run's report.json: what `rnopt run` and `rnopt tune` write themselves (their callers render the rest)."""
    write_json(out / "report.json", record.to_dict())


def run_pipeline(opts: RunOptions, render: Render = write_record) -> tuple[Record, Path]:
    """The run, in a fresh folder under opts.output; `render` writes the report files into it (the JSON record by
    default; the API adds Markdown and HTML) before the folder counts as finished."""
    backends, skipped = run_backends(opts.backends)
    devices, not_on_cuda = run_devices(opts.devices, backends)
    model = artifact_for(opts.model, opts.weights, opts.num_classes, opts.labels, opts.head, normalize=opts.normalize)
    store = ArtifactStore()
    loaded = store.loaded(model)
    data_name = opts.data or ("cifar10" if loaded.spec.family == "cifar10" else None)
    # Fail on bad data before the long steps: every image of a user's folder is checked now.
    dataset = load_dataset(data_name) if data_name else None
    if dataset is not None and opts.data:
        dataset.subset(opts.eval_limit).verify()
    with progress.task("reading calibration images", CALIB_SIZE) as advance:
        calibration = calibration_data(meta_for(loaded), opts.calib_data, CALIB_SIZE, advance)
    if opts.accuracy is not None:  # a bad bound or missing validation data fails now, not after the export
        opts.accuracy.bound(meta_for(loaded))
        load_dataset(opts.accuracy.data or default_validation_data(meta_for(loaded)))
    with run_folder(opts.output, loaded.name) as out, collecting() as heard:
        record = _run_steps(opts, backends, devices, skipped + not_on_cuda, model, store, dataset, calibration, out)
        record.folder = str(out)
        record.warnings = list(dict.fromkeys(record.warnings + heard))  # the library's notices, in report.json too
        render(record, out)
        return record, out


def run_backends(asked: list[str] | None) -> tuple[list[str], list[str]]:
    """The backends to compare, and a warning for each default one that is not installed.

    Asked-for backends must all be usable (checked before any long step); by default a missing
    OpenVINO or PyTorch runtime is skipped with a warning.
    """
    if asked:
        unknown = [name for name in asked if name not in RUN_BACKENDS]
        if unknown:
            raise RnoptError(f"rnopt run compares {', '.join(RUN_BACKENDS)}, not {', '.join(unknown)}")
        for name in asked:
            backend_class(name)  # a clear error now if its runtime is missing
        return [name for name in RUN_BACKENDS if name in asked], []
    usable, skipped = [], []
    for name in RUN_BACKENDS:
        try:
            backend_class(name)
            usable.append(name)
        except RnoptError as exc:
            skipped.append(f"{name} skipped: {exc}")
    return usable, skipped


def run_devices(asked: list[str] | None, backends: list[str]) -> tuple[list[str], list[str]]:
    """The devices to run on, and a warning for each chosen runtime that cannot use CUDA when CUDA runs.

    By default: the CPU, and CUDA too when one of the chosen runtimes can use a CUDA device here
    (PyTorch with a GPU, an onnxruntime with the CUDA provider). OpenVINO runs on the CPU only here.
    """
    if asked:
        unknown = [name for name in asked if name not in RUN_DEVICES]
        if unknown:
            raise RnoptError(f"--device takes {', '.join(RUN_DEVICES)}, not {', '.join(unknown)}")
    on_cuda = [name for name in backends if can_use_cuda(name)]
    chosen = asked or (["cpu", "cuda"] if on_cuda else ["cpu"])
    if "cuda" in chosen and not on_cuda:
        raise RnoptError(f"--device cuda: none of {', '.join(backends)} can use a CUDA device here (rnopt runs CUDA "
                         "through PyTorch on a GPU, or onnxruntime-gpu): use --device cpu, or leave it out")
    # OpenVINO never runs on NVIDIA GPUs: say so only when CUDA was asked for by name.
    skipped = [f"{name} not run on cuda: {config_class(name).not_on_cuda}" for name in backends
               if "cuda" in chosen and name not in on_cuda and (asked or config_class(name).cuda_variants)]
    return [device for device in RUN_DEVICES if device in chosen], skipped


@contextlib.contextmanager
def run_folder(base: Path, model: str) -> Iterator[Path]:
    """A fresh run folder under `base` (made with its missing parents). If the block fails or is interrupted, the
    folder goes, and so do the parents this made (when nothing else was put in them meanwhile)."""
    if base.exists() and not base.is_dir():
        raise RnoptError(f"--output {base} is a file, not a folder: give a folder for the reports")
    made = [p for p in [base, *base.parents] if not p.exists()]
    try:
        base.mkdir(parents=True, exist_ok=True)
        out = run_dir(base, model)
        out.mkdir()
    except OSError as exc:
        raise RnoptError(f"cannot create a report folder in {base}: {exc.strerror}") from None
    try:
        yield out
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-finished run folder left behind
        for parent in made:  # deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise


def _run_steps(opts: RunOptions, backends: list[str], devices: list[str], skipped: list[str], model: ArtifactSpec,
               store: ArtifactStore, dataset: ImageDataset | None, calibration: CalibrationData,
               out: Path) -> Record:
    loaded = store.loaded(model)
    record = Record("run", warnings=list(loaded.warnings) + skipped,
                    model=model_section(loaded)).capture_environment()
    executor: Executor = RayExecutor(opts.cluster, opts.nodes) if opts.cluster else InProcessExecutor(store)
    try:
        if isinstance(executor, InProcessExecutor) and opts.bench.memory and not store.has_entry(model):
            # PyTorch's variants need no model file: their probe processes run beside the export (not cached), which
            # uses one core. (A cluster probes on its nodes, after the timing.)
            executor.measure_ahead(plan_variants(model, {}, backends, devices, opts.threads), opts.bench.batch_sizes)
        with record.timing("model files: export, fusion, int8"):
            files = _make_files(opts, backends, model, store, calibration, out, record)
        specs = plan_variants(model, files, backends, devices, opts.threads)
        record.specs = list(specs)
        _time_and_evaluate(opts, record, specs, executor, dataset)
    finally:
        executor.close()
    if dataset is None:
        record.warnings.append(f"no labelled data for {loaded.name}: accuracy not measured (pass --data DIR)")
    record.warnings = list(dict.fromkeys(record.warnings + artifact_warnings(specs)))
    return record


def _time_and_evaluate(opts: RunOptions, record: Record, specs: list[VariantSpec], executor: Executor,
                       dataset: ImageDataset | None) -> None:
    """The variants timed together (loaded first where they run in this process), then evaluated."""
    if isinstance(executor, InProcessExecutor):
        with progress.task("loading", None), record.timing("loading the variants"):
            executor.load(specs)
    with progress.task("benchmarking", None) as advance, record.timing("timing"):
        outcome = executor.bench(specs, opts.bench, on_progress=lambda note: advance(1, note))
    record.bench, record.failures, record.bench_config = outcome.results, outcome.failures, opts.bench.to_dict()
    record.machines = machines_of(outcome)
    with record.timing("timing"):
        record.bench += _cuda_sweep(executor, specs, outcome.results, opts.bench)
    record.warnings += summarize_warnings(record.bench) + [f"skipped {f.label}: {f.reason}" for f in outcome.failures]
    if dataset is None:
        return
    ran = {r.spec_id: r.precision for r in outcome.results}
    to_eval = eval_order([s for s in specs if s.id in ran], ran)
    with progress.task(f"evaluating on {dataset.name}", len(dataset.subset(opts.eval_limit))) as advance, \
            record.timing("accuracy"):
        evaluated = executor.run(evaluation_task(to_eval, DataRef.of(dataset, opts.eval_limit), EVAL_BATCH),
                                 to_eval, advance)
    assert isinstance(evaluated, EvalOutcome)
    record.add_evaluation(evaluated.section, evaluated.failures)


def sweep_targets(specs: list[VariantSpec], ran: list[BenchResult]) -> list[VariantSpec]:
    """The variants whose offline peak a batch sweep finds: those that ran on a GPU."""
    timed = {r.spec_id for r in ran}
    return [s for s in specs if s.device == "cuda" and s.id in timed]


def _cuda_sweep(executor: Executor, specs: list[VariantSpec], ran: list[BenchResult],
                config: BenchConfig) -> list[BenchResult]:
    """On a GPU the run also sweeps batch sizes (doubling until images/s stops improving) for its CUDA
    variants; the sizes already timed are not repeated."""
    targets = sweep_targets(specs, ran)
    if not targets:
        return []
    with progress.task("offline batch sweep on CUDA", None) as advance:
        swept = executor.bench(targets, sweep_config(config), on_progress=lambda note: advance(1, note))
    done = {(r.spec_id, r.batch_size) for r in ran}
    return [r for r in swept.results if (r.spec_id, r.batch_size) not in done]


def _make_files(opts: RunOptions, backends: list[str], model: ArtifactSpec, store: ArtifactStore,
                calibration: CalibrationData, out: Path, record: Record) -> dict[str, ArtifactSpec]:
    """The recipes the runtimes load: fp32 export, ORT-fused, ORT int8, and NNCF int8 with OpenVINO; each built
    through the store (a recipe built before is taken from its cache) and copied into the run folder."""
    store.data.add(calibration)
    with progress.task("exporting and checking", None):
        meta = store.model_file(model).meta
    validation = _validation(opts, meta)
    store.data.add(validation)
    formats = loaded_formats(backends)
    files = {"model.onnx": model}
    if "onnx-ort" in formats:
        files["model.fused.onnx"] = model.then(optimize_step())
    for name, (toolkit, _) in int8_files(formats, record.warnings).items():
        files[name] = model.then(_int8_step(opts, toolkit, meta, calibration, validation))
    return build_into(store, files, out, record)


def build_into(store: ArtifactStore, files: dict[str, ArtifactSpec], out: Path, record: Record
               ) -> dict[str, ArtifactSpec]:
    """Each recipe built (or taken from the cache), copied into `out` under its name, its step's result in the
    record; the specs come back with the sha256 of the bytes they gave, so a rebuild elsewhere is checked."""
    built = {}
    for name, artifact in files.items():
        store.copy_to(artifact, out / name)
        outcome = store.results[artifact]
        record.add_step_result(outcome.result)
        built[name] = replace(artifact, built_sha256=outcome.sha256, built_with=outcome.made_with)
    return built


def _validation(opts: RunOptions, meta: ModelMeta) -> ValidationSet | None:
    """The validation images accuracy-aware int8 tunes on, decoded once for every toolkit (None: no bound)."""
    if opts.accuracy is None:
        return None
    with progress.task("decoding validation images") as advance:
        return validation_set(meta, opts.accuracy.data, on_batch=advance)


def _int8_step(opts: RunOptions, toolkit: str, meta: ModelMeta, calibration: CalibrationData,
               validation: ValidationSet | None) -> Step:
    """Plain int8, or accuracy-aware int8 when the run has a bound (tuned on validation images; the run's own
    evaluation gives the test-set figures)."""
    if opts.accuracy is None or validation is None:
        return quantize_step(toolkit, QuantRecipe(), calibration)
    return quantize_aware_step(toolkit, QuantRecipe(), calibration, opts.accuracy.bound(meta), validation)


def model_section(loaded: LoadedModel) -> ModelUsed:
    return ModelUsed(loaded.name, loaded.weights_source, loaded.weights_sha256, len(loaded.class_names),
                     loaded.spec.preprocessing.crop, datetime.now(timezone.utc).isoformat(timespec="seconds"))
