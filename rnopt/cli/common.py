"""What the commands share: argument types, the option groups, the output checks, the plan from a command line,
the executor, and how a record is reported."""
from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from rnopt.errors import RnoptError
from rnopt.fileio import check_writable_output
from rnopt.plan import PRECISIONS, split_list
from rnopt.report.render import console, err_console, printable
from rnopt.results import Record

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
    options = {runtime: {**(config_class(runtime).for_objective(objective) if objective else {}),
                         **given.get(runtime, {})} for runtime in runtime_names()}
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
                       max_time: float | None = None, memory: bool = True) -> None:
    """The timing flags; their defaults are BenchConfig's (a command's own where it passes one)."""
    from rnopt.bench import BenchConfig

    defaults = BenchConfig()
    max_time = defaults.max_time if max_time is None else max_time
    p.add_argument("--batch-size", type=_int_list, metavar="N[,N...]",
                   help=f"batch sizes to time (default {batch_default})")
    p.set_defaults(batch_size_default=_int_list(batch_default))
    p.add_argument("--warmup", type=int, default=defaults.warmup, help=f"untimed runs first (default {defaults.warmup})")
    p.add_argument("--iterations", type=_positive_int, help=f"timed runs, at least (default {defaults.iterations})")
    p.add_argument("--min-time", type=float, metavar="S", help=f"timed seconds, at least (default {defaults.min_time:g})")
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

