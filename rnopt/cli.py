"""The `rnopt` command: parses arguments, calls the library, renders tables. No logic of its own."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from rnopt import progress
from rnopt.bench import CUDA_SWEEP_LIMIT, DEFAULT_SPEED_TOLERANCE
from rnopt.errors import Interrupted, RnoptError, first_line
from rnopt.fileio import check_writable_output, replacing
from rnopt.plan import PRECISIONS, split_list
from rnopt.console import ProgressBars
from rnopt.report.render import console, err_console, print_table, printable
from rnopt.results import Record, invoked_as

if TYPE_CHECKING:  # the CLI imports the runtimes only when a command needs them
    from rnopt.execute import Executor
    from rnopt.spec import VariantSpec


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit status 2), as every other rnopt error."""

    def error(self, message: str) -> NoReturn:
        err_console.print(f"error: {self.prog}: {message} (see {self.prog} --help)", markup=False, soft_wrap=True)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [_positive_int(part) for part in split_list(text, "integer")]
    except RnoptError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _precision_list(text: str) -> list[str]:
    names = split_list(text) if text.strip(", ") else []
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(unknown) or text!r}: choose from "
                                         f"{', '.join(PRECISIONS)}")
    return names


# Options whose values are written, never read: everything else that names an existing path is an input.
_OUTPUT_OPTIONS = ("output", "json")


def _inputs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Every file and every folder this command line reads (positional arguments and options alike, with the
    files a model keeps beside it): no output may be one of those files or lie inside one of those folders."""
    values: list[str] = []
    for key, value in vars(args).items():
        if key in _OUTPUT_OPTIONS or key.startswith("_"):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)) and str(item) and "\0" not in str(item):
                values.append(str(item))
    files, folders = [], []
    for value in values:
        path = Path(value)
        try:
            if path.is_file():
                files += [path] + [p for p in _companions(path) if p.exists()]
            elif path.is_dir():
                folders.append(path)
        except OSError:  # a name too long to be a path: not a path
            continue
    return files, folders


def _companions(path: Path) -> list[Path]:
    """Files written or read together with a model file: OpenVINO's .bin, ONNX external data."""
    if path.suffix == ".xml":
        return [path.with_suffix(".bin")]
    if path.suffix == ".onnx":
        return [path.with_name(path.name + ".data")]
    return []


def _check_outputs(args: argparse.Namespace, *paths: str | Path | None) -> None:
    """Before any work: each output's folder exists; no two outputs, and no output and input, are the same
    file (--force or not); no output replaces a file inside a folder the command reads; an output is not a
    special file; a file the user already has is replaced only with --force."""
    files, folders = _inputs(args)
    outputs = [Path(p) for p in paths if p is not None]
    outputs += [c for p in outputs for c in _companions(p) if c not in outputs]  # IR's .bin is written too
    seen: dict[Path, tuple[Path, str]] = {p.resolve(): (p, "the input") for p in files}
    for path in outputs:
        if path.resolve() in seen:
            other, role = seen[path.resolve()]
            raise RnoptError(f"{path} is the same file as {role} {other} of this command: choose another output path")
        seen[path.resolve()] = (path, "the output")
        inside = next((f for f in folders if path.exists() and path.resolve().is_relative_to(f.resolve())), None)
        if inside is not None:
            raise RnoptError(f"{path} lies inside {inside}, which this command reads: choose an output path "
                             f"outside it")
        if not path.name.endswith(".onnx.data"):  # rnopt writes no external data: only an input's matters
            check_writable_output(path, args.force)


def _write_report(args: argparse.Namespace, record: Record) -> None:
    record.command = record.command or args.command_line  # the API takes no command line: the CLI records it
    if getattr(args, "json", None):
        from rnopt.fileio import write_json

        write_json(args.json, record.to_dict())
        if not args.quiet:
            console.print(f"wrote {args.json}")


def _show_warnings(warnings: list[str]) -> None:
    for w in dict.fromkeys(warnings):
        err_console.print(f"[yellow]warning:[/] {escape(printable(w))}", soft_wrap=True)


# ---- commands ---------------------------------------------------------------------------------------------

def cmd_models(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import models_table

    _check_outputs(args, args.json)
    record = api.describe_models()
    if not args.quiet:
        print_table(models_table(record.catalog))
    _write_report(args, record)


def cmd_export(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import export_table

    _check_outputs(args, args.output, args.json)
    with progress.task(f"exporting {args.model}"):
        record = api.export(args.model, args.output, args.weights, args.num_classes, args.labels, args.opset,
                            args.static_batch, args.rtol, args.atol, args.head or "logits", args.normalize,
                            force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(export_table(record.exports[0]))
    _write_report(args, record)


def cmd_build(args: argparse.Namespace) -> None:
    from rnopt import api

    spec = api.load_spec(args.spec, args.id)
    out = Path(args.output)
    model = out / f"model{spec.artifact.file_suffix}"
    _check_outputs(args, args.json, *([model, out / "spec.json"] if out.is_dir() else []))
    record = api.build(spec, args.output, force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        files = sorted(p.name for p in Path(args.output).iterdir() if p.name.startswith(("model.", "spec.json")))
        console.print(f"built {spec.artifact.name} (artifact {spec.artifact.id}) into {args.output}: "
                      f"{', '.join(files)}")
    _write_report(args, record)


def cmd_optimize(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import optimize_table

    _check_outputs(args, args.output, args.json)
    record = api.optimize(args.input, args.output, args.level, force=args.force)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(optimize_table(record.optimizations[0]))
    _write_report(args, record)


def cmd_quantize(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import accuracy_aware_tables, drop_text, quantize_table

    from rnopt.quantization import QUANTIZERS
    from rnopt.spec import format_suffix

    toolkit = QUANTIZERS[args.backend]
    writes_ir = format_suffix(toolkit.format) == ".xml"  # an IR's weights lie beside it, in a .bin
    weights_file = Path(args.output).with_suffix(".bin") if writes_ir else None
    _check_outputs(args, args.output, args.json, weights_file)
    recipe = _recipe(args)
    if not toolkit.takes_recipes and recipe != type(recipe)():
        recipe_takers = ", ".join(name for name, t in QUANTIZERS.items() if t.takes_recipes)
        raise RnoptError("--method, --percentile, --per-tensor, --symmetric-activations, --weight-type, "
                         f"--activation-type, --reduce-range, --exclude and --range apply to the {recipe_takers} "
                         f"quantizer; {args.backend}'s chooses its own")
    control = _accuracy_control(args)
    with progress.task("calibrating", args.calib_size if control is None else None) as advance:
        record = api.quantize(args.input, args.output, args.backend, args.calib_data, args.calib_size, recipe,
                              advance, control, lambda note: advance(0, note), force=args.force)
    result = record.quantizations[0]
    if result.reduce_range and args.reduce_range is None:
        record.warnings.append("reduce-range is on (7-bit weights): this CPU has no VNNI/AMX, where full 8-bit "
                               "weights can saturate; --no-reduce-range turns it off")
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(quantize_table(result))
        for table in accuracy_aware_tables(result.accuracy_aware) if result.accuracy_aware else []:
            print_table(table)
    _write_report(args, record)
    aware = result.accuracy_aware
    if aware is not None and not aware.met:
        raise RnoptError(f"the bound ({aware.bound}) was not met on {aware.data}: the best model found "
                         f"({len(aware.kept_float)} of {aware.layers_quantized} layers in float, drop "
                         f"{drop_text(aware.final_drop, aware.measure)}) is in {args.output}")


def _recipe(args: argparse.Namespace):  # noqa: ANN202 - a QuantRecipe (imported on use)
    from rnopt.quantization import QuantRecipe

    return QuantRecipe(args.method, args.percentile, not args.per_tensor, args.symmetric_activations,
                       args.weight_type, args.activation_type, args.reduce_range,
                       tuple(p for item in args.exclude or [] for p in split_list(item, "node name")),
                       tuple(args.range or []))


def _accuracy_control(args: argparse.Namespace):  # noqa: ANN202 - an AccuracyControl or None
    from rnopt.quantization import AccuracyControl

    if args.max_drop is None and args.min_cosine is None:
        for flag in ("data", "test_data", "limit", "max_steps"):
            if getattr(args, flag) is not None:
                raise RnoptError(f"--{flag.replace('_', '-')} applies to accuracy-aware int8: add --max-drop P "
                                 f"(or --min-cosine C)")
        return None
    return AccuracyControl(args.max_drop, args.drop_type, args.min_cosine, args.measure, args.data, args.test_data,
                           args.limit, args.max_steps)


def cmd_sensitivity(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import sensitivity_table

    _check_outputs(args, args.json)
    with progress.task("sensitivity") as advance, _executor(args) as executor:
        record = api.sensitivity(args.float_model, args.int8_model, args.data, args.limit, args.calib_data,
                                 args.calib_size, _recipe(args), args.measure, args.top, args.sqnr_images,
                                 lambda note: advance(0, note), executor if args.cluster else None)
    _show_warnings(record.warnings)
    if not args.quiet:
        print_table(sensitivity_table(record.sensitivity[0], args.rows))
    _write_report(args, record)


def _range(text: str) -> tuple[str, float, float]:
    """TENSOR=MIN,MAX for --range."""
    name, _, bounds = text.partition("=")
    try:
        low, high = (float(b) for b in bounds.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TENSOR=MIN,MAX (e.g. relu_3=0,6), got {text!r}") from None
    return name.strip(), low, high


def _add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Every registered runtime's own flags, generated from its config's fields (`rnopt.backends.base.option`):
    their help, choices and defaults are declared once, in the runtime's own module."""
    from rnopt.backends import config_class, runtime_names

    for runtime in runtime_names():
        for f in config_class(runtime).flags():
            meta, dest = f.metadata, f"{runtime}.{f.name}"  # default None: a flag left out is told from one given
            if isinstance(f.default, bool) and f.default:
                p.add_argument(meta["flag"], dest=dest, choices=["on", "off"], help=meta["help"])
            elif isinstance(f.default, bool):
                p.add_argument(meta["flag"], dest=dest, action="store_const", const=True, help=meta["help"])
            elif meta["choices"]:
                p.add_argument(meta["flag"], dest=dest, choices=list(meta["choices"]), help=meta["help"])
            else:
                p.add_argument(meta["flag"], dest=dest, type=_positive_int, metavar=meta["metavar"],
                               help=meta["help"])


def _runtime_options(args: argparse.Namespace) -> dict[str, dict]:
    """The runtime flags the user gave, by runtime: a runtime reads only its own."""
    from rnopt.backends import config_class, runtime_names

    given: dict[str, dict] = {}
    for runtime in runtime_names():
        for f in config_class(runtime).flags():
            value = getattr(args, f"{runtime}.{f.name}", None)
            if value is not None:
                given.setdefault(runtime, {})[f.name] = value == "on" if value in ("on", "off") else value
    return given


def _plan(args: argparse.Namespace, prefer_pytorch: bool = False) -> list[VariantSpec]:
    """The specs a bench or eval command line asks for: every model x backend x precision."""
    from rnopt import api
    from rnopt.backends import config_class, runtime_names
    from rnopt.plan import default_runtime, plan

    artifacts = [api.artifact(m, args.weights, args.num_classes, args.labels, args.head, args.normalize)
                 for m in args.models]
    runtimes = split_list(args.backend, "backend") if args.backend else None
    given = _runtime_options(args)
    objective = getattr(args, "objective_implied", None)  # a scenario's (offline: throughput), below the user's flags
    options = {runtime: {**(config_class(runtime).for_objective(objective) if objective else {}), **given.get(runtime, {})}
               for runtime in runtime_names()}
    specs = plan(artifacts, runtimes, args.precision, args.device, args.threads, options,
                 lambda artifact: default_runtime(artifact, prefer_pytorch))
    _refuse_unused_options(given, {s.runtime for s in specs})
    return specs


def _refuse_unused_options(given: dict[str, dict], runtimes: set[str]) -> None:
    """A runtime's own flag given where that runtime does not run would be silently ignored: refused instead."""
    from rnopt.backends import config_class

    for runtime, values in given.items():
        if values and runtime not in runtimes:
            by_name = {f.name: f.metadata["flag"] for f in config_class(runtime).flags()}
            flags = ", ".join(by_name[name] for name in values)
            raise RnoptError(f"{flags} applies to {runtime}, which this command does not run (it runs "
                             f"{', '.join(sorted(runtimes))}): add {runtime} to --backend, or drop {flags}")


def _require_some(record: Record, what: str) -> None:
    """With several variants, one that cannot run is a warning; when none ran, the first reason is the error."""
    if not (record.bench or record.evals or record.embeddings) and record.failures:
        raise RnoptError(record.failures[0].reason)
    if not (record.bench or record.evals or record.embeddings):
        raise RnoptError(f"nothing to {what}")


def _bench_config(args: argparse.Namespace):  # noqa: ANN202 - a BenchConfig (imported on use)
    from rnopt.bench import BenchConfig

    fixed_length = args.iterations is not None or args.min_time is not None
    target_ci = args.target_ci if args.target_ci is not None else (None if fixed_length else args.adaptive_ci)
    target = target_ci / 100 if target_ci else None  # 0: off
    defaults = BenchConfig()
    return BenchConfig(args.batch_size, args.warmup, args.iterations or defaults.iterations,
                       defaults.min_time if args.min_time is None else args.min_time, args.memory, target,
                       args.max_time)


SCENARIOS = {"single-stream": "batch 1, one query at a time; headline: p90 latency",
             "offline": "all images at once; headline: images/s (batch sizes 1,8,32, throughput hint; on CUDA a "
                        "batch sweep)"}


def cmd_bench(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.bench import headline
    from rnopt.report.tables import bench_table

    _check_outputs(args, args.json)
    if args.scenario == "single-stream":
        if args.batch_size_given and args.batch_size != [1]:
            raise RnoptError("--scenario single-stream times batch 1 only: leave out --batch-size (or drop --scenario)")
        args.batch_size = [1]
    elif args.scenario == "offline":
        args.objective_implied = "throughput"  # each runtime's throughput options (OpenVINO's hint), unless given
        if args.device == "cuda" and not args.batch_size_given and args.sweep is None:
            args.sweep = CUDA_SWEEP_LIMIT  # a GPU's peak needs batches far beyond 32: find it
        args.batch_size = args.batch_size if args.batch_size_given else [1, 8, 32]
    config = _bench_config(args)
    if args.sweep is not None:
        if len(args.batch_size) > 1 and args.batch_size_given:
            raise RnoptError("--sweep doubles from one batch size: give at most one --batch-size (the start)")
        config = dataclasses.replace(config, batch_sizes=args.batch_size[:1] if args.batch_size_given else [1],
                                     sweep_limit=args.sweep)
    specs = _plan(args)
    with progress.task("benchmarking") as advance:
        with _executor(args) as executor:
            record = api.bench(specs, config, executor, lambda note: advance(1, note), args.scenario)
    _require_some(record, "benchmark")
    if not args.quiet:
        print_table(bench_table(record.bench))
        if args.scenario:
            for line in headline(record.bench, args.scenario):
                console.print(line)
    _show_warnings(record.warnings)
    _write_report(args, record)


def cmd_eval(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import comparison_table, embedding_table, eval_table

    _check_outputs(args, args.json)
    specs = _plan(args, prefer_pytorch=True)
    with progress.task("evaluating", None) as advance:
        with _executor(args) as executor:
            record = api.evaluate(specs, args.data, args.limit, args.batch_size, advance, executor)
    _require_some(record, "evaluate")
    if not args.quiet and record.embeddings:
        print_table(embedding_table(record.embeddings[0]))
    elif not args.quiet:
        section = record.evals[0]
        print_table(eval_table(section.results, section.dataset))
        if section.comparisons:
            print_table(comparison_table(section.comparisons))
    _show_warnings(record.warnings)
    _write_report(args, record)


def cmd_embed(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import embed_table

    _check_outputs(args, args.output, args.json)
    args.models = [args.model]
    specs = _plan(args, prefer_pytorch=True)
    if len(specs) > 1:
        raise RnoptError("rnopt embed runs one variant: give one --backend and one --precision")
    [spec] = specs
    with progress.task(f"embedding {args.data}", None) as advance:
        with _executor(args) as executor:
            record = api.embed(spec, args.data, args.output, args.batch_size, args.skip_bad, advance, force=args.force,
                               executor=executor)
    summary = record.embedded
    assert summary is not None
    if not args.quiet:
        print_table(embed_table(summary, args.data))
    _show_warnings(record.warnings + [f"skipped {line}" for line in summary.skipped[:20]])
    _write_report(args, record)


def cmd_report(args: argparse.Namespace) -> None:
    from rnopt.fileio import write_json, write_text
    from rnopt.report.html import to_html
    from rnopt.report.loading import load_results, to_record
    from rnopt.report.markdown import to_markdown

    _check_outputs(args, args.output, args.json)
    data = load_results(args.results)
    fmt = args.format or {".md": "md", ".json": "json"}.get(Path(args.output).suffix, "html")
    merged = to_record(data, args.command_line)
    if fmt == "json":
        write_json(args.output, merged.to_dict())
    else:
        write_text(args.output, to_html(data) if fmt == "html" else to_markdown(data))
    _write_report(args, merged)
    if not args.quiet:
        console.print(f"wrote {args.output} ({fmt}) from {len(args.results)} file(s)")


def cmd_compare_runs(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.compare import comparison_rows_table

    _check_outputs(args, args.json)
    record = api.compare_runs(args.baseline, args.current, args.latency_tolerance / 100,
                              args.accuracy_tolerance / 100, args.memory_tolerance / 100, args.allow_missing)
    outcome = record.comparison
    assert outcome is not None
    if not args.quiet:
        print_table(comparison_rows_table(outcome))
    _show_warnings(record.warnings)
    _write_report(args, record)
    if outcome.regressions:
        raise RnoptError(f"{len(outcome.regressions)} regression(s): " + "; ".join(outcome.regressions[:3]))
    if not args.quiet:
        console.print("no regression beyond tolerance and noise")


def cmd_backends(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.report.tables import runtimes_table

    _check_outputs(args, args.json)
    record = api.describe_runtimes()
    if not args.quiet:
        print_table(runtimes_table(record.runtimes, record.environment))
    _write_report(args, record)


def cmd_run(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.pipeline import RunOptions
    from rnopt.quantization import AccuracyControl
    from rnopt.report.tables import run_summary_table

    _check_outputs(args, args.json)
    bench = _bench_config(args)
    backends = split_list(args.backend, "backend") if args.backend is not None else None
    devices = split_list(args.device, "device") if args.device is not None else None
    if args.max_drop is None and args.val_data is not None:
        raise RnoptError("--val-data applies to accuracy-aware int8: add --max-drop P")
    control = AccuracyControl(args.max_drop, args.drop_type, data=args.val_data) if args.max_drop is not None else None
    opts = RunOptions(args.model, args.weights, args.num_classes, args.labels, Path(args.output), args.data,
                      args.calib_data, args.limit, bench, args.threads, backends, devices,
                      args.head or "logits", args.normalize, control, args.cluster)
    record = api.run(opts)
    out = Path(record.folder or args.output)
    if not args.quiet:
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(f"report: {out / 'report.html'} (also report.md, report.json)")
    _show_warnings(record.warnings)
    _write_report(args, record)


def cmd_tune(args: argparse.Namespace) -> None:
    from rnopt import api
    from rnopt.quantization import AccuracyControl
    from rnopt.report.document import search_headline
    from rnopt.report.loading import from_payload
    from rnopt.report.tables import run_summary_table, search_table
    from rnopt.search import OBJECTIVES, TuneOptions

    _check_outputs(args, args.json)
    if not args.batch_size_given:
        args.batch_size = [OBJECTIVES[args.objective]]
    bench = _bench_config(args)
    max_drop = 1.0 if args.max_drop is None and args.min_cosine is None else args.max_drop
    control = AccuracyControl(max_drop, args.drop_type, args.min_cosine, args.measure, args.data, args.test_data,
                              args.limit, args.max_steps)
    opts = TuneOptions(
        args.model, args.weights, args.num_classes, args.labels, args.head or "logits", args.normalize,
        Path(args.output), control, args.objective, bench, sweep=args.sweep,
        recipes=split_list(args.recipe, "recipe") if args.recipe is not None else None,
        accuracy_aware=args.accuracy_aware, calib_data=args.calib_data,
        backends=split_list(args.backend, "backend") if args.backend is not None else None,
        devices=split_list(args.device, "device") if args.device is not None else None, threads=args.threads,
        speed_tolerance=args.speed_tolerance, speed_only=args.speed_only,
        cluster=args.cluster)
    record = api.tune(opts)
    out = Path(record.folder or args.output)
    if not args.quiet:
        print_table(search_table(record.searches[0]))
        print_table(run_summary_table(record.bench, record.evals, record.embeddings))
        console.print(search_headline(from_payload(record.to_dict(), "tune")) or "", markup=False)
        console.print(f"report: {out / 'report.html'} (also report.md, report.json, and every candidate's file)")
    _show_warnings(record.warnings)
    _write_report(args, record)


# ---- parser -----------------------------------------------------------------------------------------------

def _add_cluster_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="local|ADDRESS", default=os.environ.get("RNOPT_CLUSTER") or None,
                   help="run the tasks on a Ray cluster (pip install 'rnopt[ray]'): local starts a private one on "
                        "this machine for the length of the command; ADDRESS joins a running one whose nodes have "
                        "rnopt and the runtimes (default: $RNOPT_CLUSTER; without either, everything runs here)")


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator["str | Executor"]:
    """Where the command's tasks run: --executor's choice here, or the Ray cluster --cluster names (left, and a
    private local one stopped, when the command ends)."""
    chosen = getattr(args, "executor", "inprocess")
    if not args.cluster:
        yield chosen
        return
    if chosen != "inprocess":
        raise RnoptError(f"--cluster runs each task on a Ray worker: leave out --executor {chosen}")
    from rnopt.execute import RayExecutor

    executor = RayExecutor(args.cluster)
    try:
        yield executor
    finally:
        executor.close()


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="PATH", help="checkpoint (.pt/.pth/.th/.safetensors) for a built-in name")
    p.add_argument("--head", choices=["logits", "features"],
                   help="logits (default: the classifier), or features: the backbone up to global average pooling, "
                        "an embedding model for image search (64-d CIFAR, 512-d ResNet-18/34, 2048-d ResNet-50+)")
    p.add_argument("--normalize", action="store_true", help="with --head features: L2-normalised embeddings")
    p.add_argument("--num-classes", type=_positive_int, help="classes of the checkpoint (default: read from it)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")


def _add_backend_options(p: argparse.ArgumentParser, default: str) -> None:
    from rnopt.backends import runtime_names

    p.add_argument("--backend", metavar="NAME[,NAME...]", help=f"{', '.join(runtime_names())} (default: {default})")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--precision", type=_precision_list, metavar="P[,P...]",
                   help=f"{', '.join(PRECISIONS)}; a comma list compares them side by side (default: the model's own; "
                        "what each runtime can run here: rnopt backends)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    _add_runtime_flags(p)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-data", metavar="DIR|cifar10-calib", help="calibration images (default: bundled for CIFAR)")
    p.add_argument("--calib-size", type=_positive_int, default=500, metavar="N")
    p.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax",
                   help="activation ranges: minmax (the whole observed range; default), entropy (the range that "
                        "loses least information; clips rare outliers), percentile (keeps --percentile %% of values)")
    p.add_argument("--percentile", type=float, default=99.999, metavar="P",
                   help="with --method percentile: the share of activation values kept (default 99.999)")
    p.add_argument("--per-tensor", action="store_true",
                   help="one scale per weight tensor instead of per output channel (smaller, usually less accurate)")
    p.add_argument("--symmetric-activations", action="store_true",
                   help="activation ranges centred on zero (some accelerators need it; wastes half the range "
                        "after a ReLU)")
    p.add_argument("--weight-type", choices=["s8", "u8"], default="s8", help="weights' int8 type (default s8)")
    p.add_argument("--activation-type", choices=["s8", "u8"], default="u8",
                   help="activations' int8 type (default u8: ResNet activations after ReLU are non-negative)")
    p.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=None,
                   help="7-bit weights, so int8 arithmetic cannot saturate (default: on exactly on CPUs without "
                        "VNNI/AMX, and said so)")
    p.add_argument("--exclude", action="append", metavar="NAME|PATTERN[,...]",
                   help="keep these nodes in float (names or fnmatch patterns, e.g. '/conv1/*' or '*Gemm*'); "
                        "repeatable")
    p.add_argument("--range", type=_range, action="append", metavar="TENSOR=MIN,MAX",
                   help="set one activation's int8 range by hand instead of calibrating it (a tensor name from "
                        "`rnopt sensitivity`); repeatable")


def _add_validation_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--data", metavar="DIR|cifar10-val",
                   help="validation images every decision is tuned on (default: the bundled cifar10-val, 5,000 "
                        "CIFAR-10 train images; never the test set)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="a fixed, seeded subset of N validation images")
    p.add_argument("--measure", choices=["top-1", "mAP", "cosine"],
                   help="accuracy measure (default: top-1 for classifiers, mAP for embedding models)")


def _add_bound_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, max_drop_note: str) -> None:
    """The accuracy bound (quantize --max-drop, tune), the validation images it holds on, and the test data."""
    p.add_argument("--max-drop", type=float, metavar="P",
                   help="the largest accuracy drop allowed vs float on the validation images, in points of the "
                        f"measure (top-1 %%, or mAP for embedding models); {max_drop_note}")
    p.add_argument("--drop-type", choices=["absolute", "relative"], default="absolute",
                   help="absolute: points; relative: %% of the float model's score (default absolute)")
    p.add_argument("--min-cosine", type=float, metavar="C",
                   help="embedding models: the mean cosine to the float model's embeddings must stay >= C")
    _add_validation_options(p)
    p.add_argument("--test-data", metavar="DIR|cifar10",
                   help="the untuned final figures (default: the bundled CIFAR-10 test set for CIFAR models)")


def _add_bench_options(p: argparse.ArgumentParser, batch_default: str, target_ci: float | None = None,
                       max_time: float = 60.0, memory: bool = True) -> None:
    p.add_argument("--batch-size", type=_int_list, metavar="N[,N...]",
                   help=f"batch sizes to time (default {batch_default})")
    p.set_defaults(batch_size_default=_int_list(batch_default))
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--iterations", type=_positive_int, help="timed runs, at least (default 50)")
    p.add_argument("--min-time", type=float, metavar="S", help="timed seconds, at least (default 1)")
    p.set_defaults(adaptive_ci=target_ci)
    p.add_argument("--target-ci", type=float, metavar="PCT",
                   help="keep timing in interleaved rounds until every median's 95%% interval is within +-PCT %% "
                        "(or --max-time passes); replaces --min-time; 0 turns it off (default: "
                        + (f"{target_ci:g}, unless --iterations or --min-time is given)" if target_ci else "off)"))
    p.add_argument("--max-time", type=float, default=max_time, metavar="S",
                   help=f"with --target-ci: stop after S seconds per batch size, naming what did not converge "
                        f"(default {max_time:g})")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=memory,
                   help="measure each variant's memory in a process of its own, a few seconds each (default "
                        f"{'on' if memory else 'off'})")


def build_parser() -> argparse.ArgumentParser:
    from rnopt.backends import runtime_names

    parser = _Parser(prog="rnopt", description="Export, fuse, quantize, benchmark and evaluate PyTorch ResNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    common.add_argument("--quiet", action="store_true", help="no tables or progress bars")
    common.add_argument("--force", action="store_true", help="replace output files that already exist")

    sub.add_parser("models", parents=[common], help="list built-in models").set_defaults(func=cmd_models)

    p = sub.add_parser("export", parents=[common], help="export to ONNX and check it against PyTorch")
    p.add_argument("model")
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 18+)")
    p.add_argument("--static-batch", type=_positive_int, metavar="N", help="fix the batch size (default: dynamic)")
    p.add_argument("--rtol", type=float, metavar="R",
                   help="max |diff| allowed, as a fraction of the largest |logit| (default 1e-4): fp32 rounding "
                        "never reaches it, a wrong graph does")
    p.add_argument("--atol", type=float, metavar="A", help="also bound the absolute max |diff| (default: none)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("build", parents=[common],
                       help="build a spec's model file by its recipe (e.g. what tune chose) into a folder")
    p.add_argument("spec", metavar="SPEC.json", help="a spec file, or a report.json (default: tune's choice)")
    p.add_argument("--id", metavar="SPEC_ID", help="which spec of the report (its id)")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("optimize", parents=[common], help="fuse operators with ONNX Runtime's graph optimizer")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--level", choices=["basic", "extended"], default="extended")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("quantize", parents=[common], help="int8 static quantization (ONNX Runtime QDQ, or NNCF)")
    p.add_argument("input", metavar="IN.onnx")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    _add_recipe_options(p)
    from rnopt.quantization import QUANTIZERS

    p.add_argument("--backend", choices=list(QUANTIZERS), default=next(iter(QUANTIZERS)),
                   help="the quantizer: " + "; ".join(f"{name} writes {toolkit.format}" for name, toolkit in
                                                      QUANTIZERS.items()) + f" (default {next(iter(QUANTIZERS))})")
    g = p.add_argument_group("accuracy-aware int8 (layers go back to float until the bound holds on validation "
                             "images; exits 1, keeping the best model found, when it cannot)")
    _add_bound_options(g, "e.g. 0.5")
    g.add_argument("--max-steps", type=_positive_int, metavar="N", help="stop after N revert steps (default: none)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("sensitivity", parents=[common],
                       help="per-layer int8 sensitivity: SQNR of every quantized tensor, and the accuracy gained by "
                            "keeping the worst in float (ONNX Runtime QDQ)")
    p.add_argument("float_model", metavar="FLOAT.onnx")
    p.add_argument("int8_model", nargs="?", metavar="INT8.onnx",
                   help="an int8 model `rnopt quantize` made from FLOAT.onnx (default: quantize it here with the "
                        "recipe options below)")
    _add_validation_options(p)
    p.add_argument("--top", type=int, default=5, metavar="K",
                   help="ground truth for the K tensors with the lowest SQNR: the accuracy gained by keeping only "
                        "that one in float, on all validation images (default 5; 0: SQNR only)")
    p.add_argument("--sqnr-images", type=_positive_int, default=200, metavar="N",
                   help="validation images the SQNR pass runs on (default 200)")
    p.add_argument("--rows", type=_positive_int, default=15, metavar="N", help="rows of the ranked table (default 15)")
    _add_recipe_options(p)
    _add_cluster_option(p)
    p.set_defaults(func=cmd_sensitivity)

    sub.add_parser("backends", parents=[common], help="runtimes usable here, with devices").set_defaults(
        func=cmd_backends)

    p = sub.add_parser("bench", parents=[common], help="time models on one or more runtimes")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model; names are exported on the fly")
    p.add_argument("--scenario", choices=list(SCENARIOS), help="; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()))
    p.add_argument("--sweep", type=_positive_int, metavar="MAX",
                   help="double the batch size from 1 (or --batch-size N) while images/s improves by 3 %%, up to MAX "
                        "or the first batch that does not fit; every size is reported (default on CUDA with "
                        f"--scenario offline: {CUDA_SWEEP_LIMIT})")
    p.add_argument("--executor", choices=["inprocess", "subprocess"], default="inprocess",
                   help="inprocess: all variants in this process, timed in interleaved rounds (default, the fair "
                        "comparison); subprocess: each variant in a fresh process of its own (needed to compare "
                        "--threads values, which are process-wide in PyTorch)")
    _add_bench_options(p, "1,8")
    _add_cluster_option(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", parents=[common], help="top-1/top-5 accuracy; the first model is the reference")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".onnx/.xml files or built-in names")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model")
    p.add_argument("--data", default="cifar10", help="cifar10 (bundled JPEG test set) or an ImageFolder DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="a fixed random subset of N images")
    p.add_argument("--batch-size", type=_positive_int, default=100)
    _add_cluster_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("embed", parents=[common], help="embed a folder of images with an embedding model (.npz)")
    p.add_argument("model", metavar="MODEL", help="an embedding model file (export --head features), or a built-in "
                                                 "name with --head features")
    p.add_argument("data", metavar="DIR", help="a folder of images (flat or one sub-folder per class), or cifar10")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    _add_model_options(p)
    _add_backend_options(p, "the first registered runtime that loads the model")
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.add_argument("--skip-bad", action="store_true", help="skip images that cannot be decoded, and list them")
    _add_cluster_option(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("report", parents=[common], help="merge bench/eval/run JSON files into one report")
    p.add_argument("results", nargs="+", metavar="RESULT.json")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="report.html, report.md or report.json")
    p.add_argument("--format", choices=["html", "md", "json"], help="default: from the output's extension")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare-runs", parents=[common], help="what got slower or less accurate (a CI gate)")
    p.add_argument("baseline", metavar="BASELINE.json")
    p.add_argument("current", metavar="CURRENT.json")
    p.add_argument("--latency-tolerance", type=float, default=10.0, metavar="PCT",
                   help="median latency may grow this much (default 10 %%)")
    p.add_argument("--accuracy-tolerance", type=float, default=0.5, metavar="POINTS",
                   help="top-1 may drop this many points (default 0.5)")
    p.add_argument("--memory-tolerance", type=float, default=10.0, metavar="PCT",
                   help="memory per variant may grow this much, and 2 MB (default 10 %%)")
    p.add_argument("--allow-missing", action="store_true",
                   help="a variant of the baseline missing from the current run is not a failure")
    p.set_defaults(func=cmd_compare_runs)

    p = sub.add_parser("run", parents=[common], help="the whole pipeline, with a report")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR", help="reports go to DIR/<model>-<time>/")
    p.add_argument("--data", help="accuracy data (default: cifar10 for CIFAR models)")
    p.add_argument("--calib-data", metavar="DIR")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate on a subset of N images")
    p.add_argument("--max-drop", type=float, metavar="P",
                   help="accuracy-aware int8: the int8 variants keep layers in float until the drop vs float is "
                        "at most P points on validation images (see rnopt quantize --max-drop)")
    p.add_argument("--drop-type", choices=["absolute", "relative"], default="absolute",
                   help="with --max-drop: points, or %% of the float model's score")
    p.add_argument("--val-data", metavar="DIR|cifar10-val",
                   help="with --max-drop: validation images (default: the bundled cifar10-val for CIFAR models)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to compare: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where to run the variants (default: cpu, and cuda too when a runtime can use a GPU here)")
    # The whole-pipeline default times until every median is known to +-1 % (at most 30 s per batch size):
    # fast on a quiet machine, honest on a busy one (it names what did not converge).
    _add_bench_options(p, "1,8", target_ci=1.0, max_time=30.0)
    _add_cluster_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tune", parents=[common],
                       help="search: the fastest variant whose accuracy on validation images stays within a bound")
    p.add_argument("--model", default="resnet20_cifar10")
    _add_model_options(p)
    p.add_argument("--output", default="reports", metavar="DIR",
                   help="the report and every candidate's model file go to DIR/<model>-tune-<time>/")
    p.add_argument("--objective", choices=["latency", "throughput"], default="latency",
                   help="latency: lowest median at batch 1; throughput: most images/s at batch 32 (--batch-size "
                        "changes the batch)")
    p.add_argument("--speed-only", action="store_true",
                   help="do not measure accuracy: bound each candidate by the mean cosine of its outputs to the float "
                        "model's (--min-cosine, default 0.99) on --data images (labels not needed); chosen by itself "
                        "for random weights or a model with no labelled images that fit it")
    p.add_argument("--speed-tolerance", type=float, default=DEFAULT_SPEED_TOLERANCE, metavar="P",
                   help="candidates within P %% of the fastest count as fast as it; the best validation score "
                        "among them wins (default %(default)g)")
    p.add_argument("--sweep", type=_positive_int, metavar="MAX",
                   help="with --objective throughput: double each candidate's batch from --batch-size up to MAX "
                        "while images/s improves by 3 %%, and judge each at its best (default: CUDA candidates up "
                        f"to {CUDA_SWEEP_LIMIT}, CPU ones at the one batch size)")
    _add_bound_options(p, "default 1")
    p.add_argument("--recipe", metavar="NAME[,NAME...]",
                   help="int8 recipes to try: minmax, entropy, percentile, per-tensor (default: all)")
    p.add_argument("--accuracy-aware", action=argparse.BooleanOptionalAction, default=True,
                   help="when every int8 candidate is over the bound, also try int8 with the most sensitive layers "
                        "back in float until the bound holds (ONNX Runtime from the first --recipe, and NNCF; "
                        "default on)")
    p.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="accuracy-aware int8: at most N revert steps per toolkit")
    p.add_argument("--calib-data", metavar="DIR|cifar10-calib", help="calibration images (default: bundled for CIFAR)")
    p.add_argument("--backend", metavar="NAME[,NAME...]",
                   help=f"runtimes to search: {', '.join(runtime_names())} (default: those installed)")
    p.add_argument("--device", metavar="cpu|cuda|cpu,cuda",
                   help="where candidates run (default: cpu, and cuda too when a runtime can use a GPU here)")
    p.add_argument("--threads", type=_positive_int, help="intra-op threads (default: all cores)")
    _add_bench_options(p, "1", target_ci=1.0, max_time=30.0, memory=False)  # memory is not what it chooses on
    _add_cluster_option(p)
    p.set_defaults(func=cmd_tune)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "rnopt " + shlex.join(argv)
    if hasattr(args, "batch_size_default"):
        args.batch_size_given = args.batch_size is not None
        args.batch_size = args.batch_size or args.batch_size_default
    func: Callable[[argparse.Namespace], None] = args.func
    previous = _handle_termination()
    try:
        with replacing(bool(getattr(args, "force", False))), warnings.catch_warnings(), \
                progress.listening(None if args.quiet else ProgressBars()), invoked_as(args.command_line):
            warnings.showwarning = _show_library_warning
            func(args)
        _show_notices()
    except RnoptError as exc:
        err_console.print(f"error: {printable(str(exc))}", markup=False, soft_wrap=True)
        return 1
    except OSError as exc:  # the system refused (disk full, permissions...): say what, on one line
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(printable(f"error: {exc.strerror or exc}{where}"), markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        _stop_workers()
        err_console.print("error: interrupted (SIGINT): partial outputs removed", markup=False)
        return 130
    except Interrupted as exc:
        _stop_workers()
        name = signal.Signals(exc.signum).name
        err_console.print(f"error: terminated ({name}): partial outputs removed", markup=False)
        return 128 + exc.signum
    except Exception as exc:  # a bug, not bad input: one line by default, the traceback on request
        if os.environ.get("RNOPT_DEBUG"):
            raise
        err_console.print(f"error: internal error {type(exc).__name__}: {first_line(exc, 300)} (a bug in rnopt: "
                          f"please report it with the command line and the traceback RNOPT_DEBUG=1 prints)",
                          markup=False, soft_wrap=True)
        return 3
    finally:
        if not _interrupted(previous):  # once interrupted, the process is on its way out: a later signal must not
            _restore(previous)          # kill it half-way through its message, or raise past main()
        _drain_notices()  # after an error, the one-line message stands alone
    return 0


def _show_library_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                          file: object = None, line: str | None = None) -> None:
    """A library's Python warning (matplotlib, torch) on one line, its control characters shown, not obeyed (the
    message may quote an input file's name or contents)."""
    err_console.print(f"warning: {printable(str(message))}", markup=False, soft_wrap=True)


def _interrupted(handlers: dict[int, object]) -> bool:
    """Whether a signal arrived during the command (its handler then set every one of them to SIG_IGN)."""
    return bool(handlers) and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def _drain_notices() -> list[str]:
    from rnopt.notices import drain

    return drain()


def _show_notices() -> None:
    _show_warnings(_drain_notices())


_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: object) -> None:
    # A second signal while the first one unwinds would interrupt the cleanup itself (a traceback, a temporary
    # file left): from the first one on, further ones are ignored until main() restores the handlers.
    for other in (*_TERMINATING, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    _stop_workers()  # first: a worker pool would otherwise wait for its children before unwinding
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _handle_termination() -> dict[int, object]:
    """SIGTERM and SIGHUP unwind like Ctrl-C: temporary files and half-made run folders are removed on the way
    out; Ctrl-C too, and a repeated signal does not interrupt that. Only from the main thread (tests may call
    main() elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _raise_interrupted) for signum in (*_TERMINATING, signal.SIGINT)}


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _stop_workers() -> None:
    if "rnopt.execute.process" in sys.modules:
        sys.modules["rnopt.execute.process"].kill_workers()


if __name__ == "__main__":
    sys.exit(main())
