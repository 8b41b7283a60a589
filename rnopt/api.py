"""rnopt's public Python API: build specs, export, optimize, quantize, bench, evaluate, run. Each returns a
typed `Record` (rnopt.results) that `to_dict()`s into the JSON the CLI writes. The CLI is a thin layer
over these functions.

    import rnopt
    specs = rnopt.plan([rnopt.artifact("resnet20_cifar10")], runtimes=["onnxruntime", "torch"])
    timing = rnopt.bench(specs, rnopt.BenchConfig(batch_sizes=[1], min_time=0.2))
    accuracy = rnopt.evaluate(specs, rnopt.EvalConfig(data="cifar10", limit=500))
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnopt.artifacts import ArtifactStore, ModelOptions, artifact_for
from rnopt.bench import BenchConfig, summarize_warnings
from rnopt.errors import RnoptError
from rnopt.fileio import check_writable_output, replacing
from rnopt.plan import artifact_warnings, plan
from rnopt.notices import collecting
from rnopt.progress import listening
from rnopt.results import EmbedSummary, ModelEntry, Record, RuntimeEntry, machines_of
from rnopt.spec import ArtifactSpec, VariantSpec, spec_entries

if TYPE_CHECKING:
    import numpy as np

    from rnopt.accuracy import AccuracyMeasure, ValidationSet
    from rnopt.execute import Executor
    from rnopt.configs import (CompareConfig, EmbedConfig, EvalConfig, ExportConfig, OptimizeConfig, QuantizeConfig,
                               SensitivityConfig)
    from rnopt.progress import Listener
    from rnopt.onnx_model import ModelMeta
    from rnopt.results import AccuracyAwareResult, LayerCost, QuantizeResult, SensitivityResult

Progress = Callable[[str], None]
Advance = Callable[[int], None]


def _with_notices(verb: Callable[..., Record]) -> Callable[..., Record]:
    """The verb's record with the library's notices given while it ran among its warnings (see rnopt.notices)."""
    @functools.wraps(verb)
    def wrapper(*args: Any, **kwargs: Any) -> Record:
        with collecting() as heard:
            record = verb(*args, **kwargs)
        record.warnings = list(dict.fromkeys(record.warnings + heard))
        return record
    return wrapper


def list_models() -> list[str]:
    """The built-in model names (`rnopt models` shows them with their parameters and bundled weights)."""
    from rnopt.models import list_models as names

    return names()


def list_runtimes() -> list[RuntimeEntry]:
    """Every registered runtime (built-in or added with rnopt.backends.register_runtime): its devices and
    precisions here, or why it cannot run (`rnopt backends`)."""
    from rnopt.backends import describe_backends

    return [RuntimeEntry(**entry) for entry in describe_backends()]


def describe_models() -> Record:
    """Every built-in model with its size and bundled weights (`rnopt models`), as a record."""
    from rnopt.models import MODELS, count_params_and_macs

    catalog = []
    for name, spec in MODELS.items():
        params, macs = count_params_and_macs(spec)
        weights = spec.weights
        catalog.append(ModelEntry(name, spec.family, spec.preprocessing.crop, params, macs, weights is not None,
                                  weights.jpeg_top1 if weights else None))
    return Record("models", catalog=catalog).capture_environment()


def describe_runtimes() -> Record:
    """`list_runtimes()` as a record, with this machine's description (`rnopt backends`)."""
    return Record("backends", runtimes=list_runtimes()).capture_environment()


def compare_runs(baseline: str | Path, current: str | Path, config: "CompareConfig | None" = None) -> Record:
    """Two runs' result files joined variant by variant (by spec id; labels for older files): every figure's
    change and the regressions beyond `config`'s tolerances and the noise."""
    from rnopt.configs import CompareConfig
    from rnopt.report.compare import compare_runs as compare

    config = config or CompareConfig()
    outcome = compare(_one_side(baseline), _one_side(current), config.latency_tolerance,
                      config.accuracy_tolerance, config.memory_tolerance, config.allow_missing)
    return Record("compare", warnings=list(outcome.environment_differences), comparison=outcome).capture_environment()


def _one_side(path: str | Path) -> "ReportData":  # noqa: F821 - rnopt.report.loading
    """A result file, or `FILE#TYPE`: one machine type's timings of a cluster run (--nodes)."""
    from rnopt.report.loading import load_results, machine_results

    text = str(path)
    if "#" in text and not Path(text).exists():
        file, _, machine = text.rpartition("#")
        return machine_results(load_results([file]), machine, file)
    return load_results([path])


def merge_results(paths: list[str | Path]) -> Record:
    """Result files rnopt wrote (any kind, any schema it reads), merged into one record of kind "report":
    `record.to_html()`, `to_markdown()` or `save()` write the merged report."""
    from rnopt.report.loading import load_results, to_record

    return to_record(load_results(paths))


def artifact(model: str, options: ModelOptions | None = None) -> ArtifactSpec:
    """A built-in model name (with its weights, classes and head from `options`) or a .onnx / .xml file, as an
    artifact spec. `ModelOptions(head="features")` (with `normalize` for L2-normalised vectors) makes a built-in
    name an embedding model."""
    if not isinstance(model, (str, Path)):
        raise RnoptError(f"artifact() takes a built-in model name or a model file path, got {model!r:.40}")
    return (options or ModelOptions()).artifact(str(model))


@_with_notices
def export(model: str, output: str | Path, source: ModelOptions | None = None, config: "ExportConfig | None" = None,
           force: bool = False) -> Record:
    """Export a model to ONNX and check it against PyTorch; an existing `output` is replaced only with `force`.

    Built through the artifact store (the same recipe is exported once, and `rnopt run`'s export is this one),
    except with a tolerance of its own or a fixed batch above 1, which no recipe names: then exported here."""
    from rnopt.models import create_model
    from rnopt.onnx_export import RTOL, export_model
    from rnopt.configs import ExportConfig

    source, config = source or ModelOptions(), config or ExportConfig()
    check_writable_output(output, force)
    if config.is_recipe:
        artifact = dataclasses.replace(source.artifact(model, config.opset), dynamic_batch=config.static_batch is None)
        store = ArtifactStore()
        loaded = store.loaded(artifact)
        result = _built_into(store, artifact, output, force)
        return Record("export", warnings=list(loaded.warnings), exports=[result]).capture_environment()
    loaded = create_model(model, source.weights, source.num_classes, source.labels, source.head or "logits",
                          source.normalize)
    with replacing(force):
        result = export_model(loaded, output, config.opset, config.static_batch, config.rtol or RTOL, config.atol)
    return Record("export", warnings=list(loaded.warnings), exports=[result]).capture_environment()


def _built_into(store: ArtifactStore, artifact: ArtifactSpec, output: str | Path, force: bool,
                source: str | Path | None = None) -> Any:
    """The artifact built by its recipe (or taken from the cache) and copied to `output`; its step's result, naming
    the user's files (`source`, `output`) rather than the cache's."""
    store.model_file(artifact)  # built before anything is written: a failed build leaves no output
    with replacing(force):
        store.copy_to(artifact, Path(output))
    paths = {"output": str(output)} | ({"input": str(source)} if source is not None else {})
    return dataclasses.replace(store.results[artifact].result, **paths)


@_with_notices
def optimize(source: str | Path, output: str | Path, config: OptimizeConfig | None = None,
             force: bool = False) -> Record:
    """ONNX Runtime's offline fusion, built through the artifact store (fused once per file and level); an existing
    `output` is replaced only with `force`."""
    from rnopt.configs import OptimizeConfig
    from rnopt.recipes import optimize_step

    config = config or OptimizeConfig()
    _check_output(source, output, force)
    artifact = artifact_for(str(source)).then(optimize_step(config.level))
    return Record("optimize", optimizations=[_built_into(ArtifactStore(), artifact, output, force, source)]
                  ).capture_environment()


@_with_notices
def quantize(source: str | Path, output: str | Path, config: QuantizeConfig | None = None,
             on_batch: Advance | None = None, on_progress: Progress | None = None, force: bool = False) -> Record:
    """int8 as `config` says (toolkit, calibration, recipe). With `config.control`, accuracy-aware: layers go back
    to float until its bound holds on the validation data (the result's `accuracy_aware` says how; with
    `config.time_reverts`, what the float layers cost in latency)."""
    from rnopt.configs import QuantizeConfig

    config = config or QuantizeConfig()
    _check_output(source, output, force)
    return Record("quantize", quantizations=[_quantized_by_recipe(source, output, config, on_batch, on_progress, force)]
                  ).capture_environment()


def _quantized_by_recipe(source: str | Path, output: str | Path, config: QuantizeConfig, on_batch: Advance | None,
                         on_progress: Progress | None, force: bool) -> QuantizeResult:
    """int8 (accuracy-aware with `config.control`) built through the artifact store and copied to `output`."""
    from rnopt.onnx_model import open_float_model
    from rnopt.quantization import QUANTIZERS
    from rnopt.quantization.calibration import calibration_data
    from rnopt.recipes import DataSource, quantize_aware_step, quantize_step
    from rnopt.spec import format_suffix

    _, _, _, meta = open_float_model(source, output, "quantize")  # refuses an int8 input before calibrating
    if format_suffix(QUANTIZERS[config.toolkit].format) == ".xml" and Path(output).suffix != ".xml":
        raise RnoptError(f"the {config.toolkit} quantizer writes an OpenVINO IR: the output must end in .xml (the "
                         f"weights go beside it as .bin), got {output}")
    model = artifact_for(str(source))
    calibration = calibration_data(meta, config.calib_data, config.calib_size, on_batch)
    store = ArtifactStore(data=DataSource())
    store.data.add(calibration)
    full = model.then(quantize_step(config.toolkit, config.recipe, calibration))
    if config.control is None:
        return _built_into(store, full, output, force, source)
    from rnopt.accuracy import validation_set

    bound = config.control.bound(meta)
    validation = validation_set(meta, config.control.data, config.control.limit)
    store.data.add(validation)
    aware = model.then(quantize_aware_step(config.toolkit, config.recipe, calibration, bound, validation,
                                           config.control.max_steps))
    final = store.model_file(aware).path
    report = copy.deepcopy(store.results[aware].result.accuracy_aware)  # the store keeps its own
    # Nothing reverted: the model written is full int8 (no need to build that too).
    full_int8 = store.model_file(full).path if report.kept_float else final
    _measure_reverts(report, config, meta, Path(source), full_int8, final, on_progress or (lambda _: None))
    result = _built_into(store, aware, output, force, source)
    return dataclasses.replace(result, accuracy_aware=report)


def _measure_reverts(report: AccuracyAwareResult, config: QuantizeConfig, meta: ModelMeta, source: Path,
                     full_int8: Path, final: Path, say: Progress) -> None:
    """What the recipe's result does not hold: the untuned figures of float, full int8 and the model written on
    the test data, and (with `config.time_reverts`) what the layers put back in float cost in latency."""
    import tempfile

    from rnopt.accuracy import validation_set
    from rnopt.predictions import file_outputs
    from rnopt.quantization import get_quantizer

    quantizer, test_name = get_quantizer(config.toolkit), config.control.test_set(meta)
    if test_name:
        test = validation_set(meta, test_name, allow_test=True)
        say(f"final figures on the untuned test data ({len(test)} images)")

        def outputs(model: Path) -> np.ndarray:  # the same bytes on the same images before: the same bits, stored
            return file_outputs(quantizer.name, model, test.sha256, lambda: quantizer.outputs(model, test.images))

        quantizer.untuned_figures(report, config.control.bound(meta), test, source, full_int8, final, outputs)
    if config.time_reverts and report.kept_float:
        say("timing the reverted layers against full int8")
        with tempfile.TemporaryDirectory(prefix="rnopt-reverts-") as scratch:
            reverted = quantizer.reverted_models(report, source, full_int8, final, Path(scratch))
            report.layer_costs = _revert_costs(config.toolkit, full_int8, reverted)


def load_spec(path: str | Path, spec_id: str | None = None) -> VariantSpec:
    """A variant spec from JSON: a spec file (a variant's or an artifact's), or a record rnopt wrote, where
    `spec_id` picks one of its specs (default: what `rnopt tune` chose, or its only spec)."""
    import json

    from rnopt.fileio import readable_file

    source = readable_file(path, "spec file")
    try:
        payload = json.loads(source.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RnoptError(f"{path} is not JSON ({type(exc).__name__}): give a spec or a report.json") from None
    if not isinstance(payload, dict):
        raise RnoptError(f"{path} holds no spec: give a spec file or a report.json rnopt wrote")
    if "schema_version" in payload:
        try:
            record = Record.from_dict(payload)
        except (TypeError, ValueError) as exc:
            raise RnoptError(f"{path} is not a record rnopt can read ({exc})") from None
        chosen = [s.chosen_id for s in record.searches if s.chosen_id]
        wanted = spec_id or (chosen[0] if chosen else None)
        entries = [s for s in record.specs if wanted in (None, s.id)]
        if len(entries) != 1:
            ids = ", ".join(s.id for s in record.specs) or "none"
            raise RnoptError(f"{path}: {'no spec ' + repr(wanted) if wanted else 'several specs'} in it "
                             f"(its specs: {ids}): pick one with --id")
        return entries[0]
    if "artifact" in payload:
        return VariantSpec.from_dict(payload)
    if "source" in payload:
        from rnopt.plan import default_runtime
        from rnopt.spec import artifact_from_dict

        try:
            artifact = artifact_from_dict(payload)
        except TypeError as exc:
            raise RnoptError(f"{path} is not an artifact spec ({exc})") from None
        return VariantSpec(artifact, default_runtime(artifact))
    raise RnoptError(f"{path} holds no spec (no \"artifact\" or \"source\" key): give a spec or a report.json")


@_with_notices
def build(spec: VariantSpec, output: str | Path, force: bool = False) -> Record:
    """Build the file `spec` runs by its recipe (taken from the artifact cache where it was built before) and copy
    it into the folder `output` as model.onnx (or model.xml and model.bin), with the spec beside it (spec.json).
    Files already in `output` are replaced only with `force`."""
    from rnopt.artifacts import ArtifactStore
    from rnopt.fileio import write_json

    artifact, folder = spec.artifact, Path(output)
    if folder.exists() and not folder.is_dir():
        raise RnoptError(f"{folder} is a file: give a folder to build into")
    model = folder / f"model{artifact.file_suffix}"
    if folder.is_dir():
        for target in [model, folder / "spec.json"] + ([model.with_suffix(".bin")] if model.suffix == ".xml" else []):
            check_writable_output(target, force)
    store = ArtifactStore()
    store.model_file(artifact)  # built (or found) before the folder is made: a failed build leaves no folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RnoptError(f"cannot create {folder}: {exc.strerror}") from None
    with replacing(force):
        store.copy_to(artifact, model)
        write_json(folder / "spec.json", spec_entries([spec])[0])
    record = Record("build", specs=[spec], warnings=artifact_warnings([spec])).capture_environment()
    chain = [artifact]
    while chain[-1].steps:
        chain.append(chain[-1].parent())
    for outcome in [store.results[a] for a in reversed(chain) if a in store.results]:  # export first
        record.add_step_result(outcome.result)
    record.folder = str(folder)
    return record


def _check_output(source: str | Path, output: str | Path, force: bool) -> None:
    """The output is not the input model (force or not) and exists only if `force`."""
    if Path(source).exists() and Path(output).exists() and Path(source).resolve() == Path(output).resolve():
        raise RnoptError(f"output {output} is the same file as the input: choose another output path")
    check_writable_output(output, force)


REVERT_BENCH = BenchConfig(batch_sizes=[1], warmup=20, min_time=2.0)


def _revert_costs(runtime: str, full: Path, models: list[tuple[str, Path, list[str]]]) -> list["LayerCost"]:
    """The p50 latency of each model with layers in float against the full int8 model: one interleaved bench."""
    from rnopt.results import LayerCost

    specs = plan([artifact_for(str(full))] + [artifact_for(str(path)) for _, path, _ in models], [runtime])
    outcome = bench(specs, REVERT_BENCH)
    by_id = {r.spec_id: r for r in outcome.bench}
    baseline = by_id.get(specs[0].id)
    if baseline is None:
        return []
    costs = []
    for (label, _, nodes), spec in zip(models, specs[1:]):
        if (row := by_id.get(spec.id)) is not None:
            costs.append(LayerCost(label, nodes, row.latency_ms.p50, row.p50_ci or 0.0, baseline.latency_ms.p50,
                                   row.latency_ms.p50 / baseline.latency_ms.p50 - 1))
    return costs


@_with_notices
def sensitivity(float_model: str | Path, int8_model: str | Path | None = None,
                config: "SensitivityConfig | None" = None, on_progress: Progress | None = None,
                executor: "str | Executor | None" = None) -> Record:
    """Per-layer int8 sensitivity of an ONNX Runtime QDQ model (quantized here from `float_model` with
    `config.recipe` when `int8_model` is not given): SQNR of every quantized tensor, and for the `config.top` worst,
    the accuracy gained by keeping only it in float, on validation images (never the test set). With `executor` (a
    name in `rnopt.execute.EXECUTORS` or an executor, a Ray cluster for one) the ground truths run there as probe
    tasks, side by side, and the int8 model is built by its recipe where it is not given."""
    import tempfile

    from rnopt.accuracy import MEASURES, checked_measure, validation_set
    from rnopt.fileio import readable_file
    from rnopt.quantization.calibration import calibration_data
    from rnopt.quantization.onnxruntime import PreparedQuantization, open_for_quantization
    from rnopt.quantization.sensitivity import Scorer, analyze, pre_process
    from rnopt.configs import SensitivityConfig

    config = config or SensitivityConfig()
    say, recipe, top, sqnr_images = on_progress or (lambda _: None), config.recipe, config.top, config.sqnr_images
    int8_path = readable_file(int8_model, "int8 model") if int8_model is not None else None
    with tempfile.TemporaryDirectory(prefix="rnopt-sensitivity-") as scratch:
        source, _, meta = open_for_quantization(float_model, Path(scratch) / "unused.onnx", recipe)
        chosen = MEASURES[checked_measure(config.measure, meta)]()
        say("decoding validation images")
        validation = validation_set(meta, config.data, config.limit)
        if executor is not None:
            result = _sensitivity_by_tasks(source, int8_path, validation, chosen, config, str(float_model), say,
                                           executor, Path(scratch))
        elif int8_path is not None:  # the float model pre-processed as `rnopt quantize` does: tensor names match
            prepped = Path(scratch) / "float.onnx"
            pre_process(source, prepped)
            scorer = Scorer.for_float(chosen, validation, prepped)
            result = analyze(prepped, int8_path, scorer, sqnr_images, top, str(float_model), str(int8_model), say)
        else:
            say("quantizing")
            calibration = calibration_data(meta, config.calib_data, config.calib_size)
            with PreparedQuantization(source, calibration, recipe) as prepared:
                scorer = Scorer.for_float(chosen, validation, prepared.float_path)
                result = analyze(prepared.float_path, prepared.build(), scorer, sqnr_images, top, str(float_model),
                                 f"int8 of {float_model} ({recipe.describe()})", say)
    return Record("sensitivity", sensitivity=[result]).capture_environment()


def _sensitivity_by_tasks(source: Path, int8_path: Path | None, validation: "ValidationSet",
                          measure: "AccuracyMeasure", config: "SensitivityConfig", float_name: str, say: Progress,
                          executor: "str | Executor", scratch: Path) -> "SensitivityResult":
    """Sensitivity with its ground truths as probe tasks on `executor`: the specs name the float file and the
    int8 file (given, or built by its recipe through the artifact store, so that any worker can rebuild it)."""
    from rnopt.artifacts import ArtifactStore
    from rnopt.execute import using
    from rnopt.execute.tasks import probe_task
    from rnopt.quantization.calibration import calibration_data
    from rnopt.quantization.sensitivity import Scorer, analyze, pre_process
    from rnopt.recipes import quantize_step

    recipe = config.recipe
    float_spec = VariantSpec(artifact_for(str(source)), "onnxruntime")
    if int8_path is not None:
        int8_spec, int8_name = VariantSpec(artifact_for(str(int8_path)), "onnxruntime"), str(int8_path)
    else:
        say("quantizing (by recipe, through the artifact store)")
        store = ArtifactStore()
        calibration = calibration_data(store.model_file(float_spec.artifact).meta, config.calib_data,
                                       config.calib_size)
        store.data.add(calibration)
        int8_spec = VariantSpec(float_spec.artifact.then(quantize_step("onnxruntime", recipe, calibration)),
                                "onnxruntime")
        int8_path, int8_name = store.model_file(int8_spec.artifact).path, f"int8 of {float_name} ({recipe.describe()})"
    prepped = scratch / "float.onnx"
    pre_process(source, prepped)
    scorer = Scorer.for_float(measure, validation, prepped)
    with using(executor) as runner:
        def probe(groups: list[list[str]]) -> list["np.ndarray"]:
            tasks = [probe_task(int8_spec, float_spec, validation, nodes) for nodes in groups]
            return [outcome.outputs[int8_spec.id] for outcome in runner.run_all(tasks, [int8_spec, float_spec])]

        return analyze(prepped, int8_path, scorer, config.sqnr_images, config.top, float_name, int8_name, say, probe)


@_with_notices
def bench(specs: list[VariantSpec], config: BenchConfig | None = None, executor: "str | Executor" = "inprocess",
          on_progress: Progress | None = None, scenario: str | None = None) -> Record:
    """Time every spec; a spec that cannot run is recorded in `failures` and the others go on. `executor`: a
    name in `rnopt.execute.EXECUTORS` (inprocess, subprocess, ray) or an executor."""
    from rnopt.execute import using

    config = config or BenchConfig()
    with using(executor) as runner:
        outcome = runner.bench(specs, config, on_progress)
    warnings = artifact_warnings(specs) + summarize_warnings(outcome.results) + \
        [f"skipped {f.label}: {f.reason}" for f in outcome.failures]
    return Record("bench", warnings=warnings, specs=list(specs), scenario=scenario,
                  bench_config=config.to_dict(), bench=outcome.results, failures=outcome.failures,
                  machines=machines_of(outcome)).capture_environment()


@_with_notices
def evaluate(specs: list[VariantSpec], config: "EvalConfig | None" = None, on_batch: Advance | None = None,
             executor: "str | Executor" = "inprocess") -> Record:
    """Top-1/top-5 of every spec on the labelled images `config` names; the first spec that loads is the reference.
    `executor`: where the evaluation task runs (a name in `rnopt.execute.EXECUTORS`, or an executor)."""
    from rnopt.configs import EvalConfig
    from rnopt.data import load_dataset
    from rnopt.execute import DataRef, using
    from rnopt.execute.tasks import EvalOutcome, evaluation_task

    config = config or EvalConfig()
    dataset = load_dataset(config.data)  # bad data is told before any loading
    task = evaluation_task(specs, DataRef.of(dataset, config.limit), config.batch_size)
    with using(executor) as runner:
        outcome = runner.run(task, specs, _counting(on_batch))
    assert isinstance(outcome, EvalOutcome)
    ran = {r.spec_id for r in outcome.section.results}
    warnings = artifact_warnings(specs) + [f"skipped {f.label}: {f.reason}" for f in outcome.failures]
    record = Record("eval", warnings=warnings, specs=[s for s in specs if s.id in ran])
    record.add_evaluation(outcome.section, outcome.failures)
    return record.capture_environment()


def _counting(on_batch: Advance | None) -> Callable[..., None] | None:
    """A task's progress (images done, and notes) for a caller that counts images."""
    if on_batch is None:
        return None
    return lambda n=1, note=None: on_batch(n) if n else None


def run(options: "RunOptions", on_progress: "Listener | None" = None) -> Record:  # noqa: F821 - rnopt.pipeline
    """The whole pipeline (`rnopt run`): export, fuse, quantize, bench, evaluate, report files in a fresh folder
    (`record.folder`). `on_progress` hears every step's progress (`rnopt.progress.Update`)."""
    from rnopt.pipeline import run_pipeline
    from rnopt.report.files import write_reports

    with _listening(on_progress):
        return run_pipeline(options, write_reports)[0]


def tune(options: "TuneOptions", on_progress: "Listener | None" = None) -> Record:  # noqa: F821 - rnopt.search
    """The search (`rnopt tune`): the fastest variant whose accuracy on validation images stays within a bound.
    `on_progress` hears every step's progress (`rnopt.progress.Update`)."""
    from rnopt.report.files import write_reports
    from rnopt.search import tune as search

    with _listening(on_progress):
        return search(options, write_reports)[0]


def _listening(on_progress: "Listener | None") -> contextlib.AbstractContextManager:
    """`on_progress` hears the steps' progress; None: whoever listens already (the CLI's bars) still does."""
    return listening(on_progress) if on_progress is not None else contextlib.nullcontext()


__all__ = ["BenchConfig", "Record", "VariantSpec", "ArtifactSpec", "artifact", "bench", "build", "compare_runs",
           "describe_models", "describe_runtimes", "embed", "evaluate",
           "export", "list_models", "load_spec", "list_runtimes", "optimize", "plan", "quantize", "run", "sensitivity", "tune"]


@_with_notices
def embed(spec: VariantSpec, data: str, output: str | Path, config: "EmbedConfig | None" = None,
          on_batch: Advance | None = None, force: bool = False, executor: "str | Executor" = "inprocess") -> Record:
    """Embed a folder of images (or a bundled set) with one variant of an embedding model into a .npz; an
    existing `output` is replaced only with `force`, and never when it lies inside `data`."""
    from rnopt.configs import EmbedConfig
    from rnopt.data import load_dataset
    from rnopt.embedding import Embedded, write_vectors
    from rnopt.execute import DataRef, using
    from rnopt.execute.tasks import embedding_task

    config = config or EmbedConfig()
    check_writable_output(output, force)
    if Path(data).is_dir() and Path(output).exists() and Path(output).resolve().is_relative_to(Path(data).resolve()):
        raise RnoptError(f"{output} lies inside {data}, which is being embedded: choose an output path outside it")
    dataset = load_dataset(data, unlabelled_ok=True)
    task = embedding_task(spec, DataRef.of(dataset, unlabelled_ok=True), config.batch_size, config.skip_bad)
    with using(executor) as runner:
        embedded = runner.run(task, [spec], _counting(on_batch))
    assert isinstance(embedded, Embedded)
    with replacing(force):
        write_vectors(output, embedded)
    n = len(embedded.paths)
    summary = EmbedSummary(str(output), n, int(embedded.vectors.shape[1]), embedded.backend, embedded.precision,
                           config.batch_size, n / embedded.inference_s if embedded.inference_s else None,
                           n / embedded.wall_s if embedded.wall_s else None, list(embedded.skipped))
    warnings = artifact_warnings([spec]) + ([f"skipped {len(embedded.skipped)} unreadable image(s)"]
                                           if embedded.skipped else [])
    return Record("embed", warnings=warnings, specs=[spec], embedded=summary).capture_environment()
