"""What the commands share: argument types, the option groups, the output checks, the plan from a command line,
the executor, and how a record is reported."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from rnopt.artifacts import ModelOptions
from rnopt.errors import RnoptError
from rnopt.fileio import check_writable_output
from rnopt.options import positive_int
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




# Options whose values are written, never read: everything else that names an existing path is an input.
_OUTPUT_OPTIONS = ("output", "json")


def _inputs(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Every file and every folder this command line reads (positional arguments and options alike, with the
    files a model keeps beside it): no output may be one of those files or lie inside one of those folders."""
    values: list[str] = []
    for key, value in vars(args).items():
        if key.rsplit(".", 1)[-1] in _OUTPUT_OPTIONS or key.startswith("_"):  # "run.output" is run's --output
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

    return QuantRecipe(**config_values(args, QuantRecipe, "recipe."))


def _accuracy_control(args: argparse.Namespace, default_max_drop: float | None = None):  # noqa: ANN202
    """The AccuracyControl the bound flags give (None: no bound given and no default, so not accuracy-aware)."""
    from rnopt.options import flag_fields
    from rnopt.quantization import AccuracyControl

    given = config_values(args, AccuracyControl, "bound.")
    if "max_drop" not in given and "min_cosine" not in given:
        if default_max_drop is None:
            flags = {f.name: f.metadata["flag"] for f in flag_fields(AccuracyControl)}
            for name in given:
                raise RnoptError(f"{flags[name]} applies to accuracy-aware int8: add --max-drop P (or --min-cosine C)")
            return None
        given["max_drop"] = default_max_drop
    return AccuracyControl(**given)


def _model_options(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions(**config_values(args, ModelOptions, "model."))


def _quantize_options(args: argparse.Namespace) -> dict:
    """The calibration flags given (--calib-data, --calib-size, a quantize's --backend), as QuantizeConfig fields."""
    from rnopt.configs import QuantizeConfig

    return config_values(args, QuantizeConfig, "quantize.")


def add_config_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, prefix: str = "",
                     defaults: object | None = None, skip: tuple[str, ...] = (), only: tuple[str, ...] = (),
                     notes: dict[str, str] | None = None, renamed: dict[str, str] | None = None) -> None:
    """The flags of config class `cls`, generated from its fields (`rnopt.options.option`): their names, help and
    choices are declared once, beside the field. Each flag's dest is `prefix + field name`, and it defaults to None
    so that a flag left out is told from one given (`config_values`). `defaults`: the command's own default config,
    shown in the help; `notes`: a command's words added to a flag's help; `renamed`: a field's flag where the
    command names it otherwise (`rnopt run --val-data`: its --data is the test data)."""
    from rnopt.options import field_default, flag_fields, shown_default

    for f in flag_fields(cls):
        if f.name in skip or (only and f.name not in only):
            continue
        meta, default = {**f.metadata, "flag": (renamed or {}).get(f.name, f.metadata["flag"])}, field_default(f)
        shown = shown_default(f, getattr(defaults, f.name) if defaults is not None else default)
        text = meta["help"].replace("{default}", shown) + (f"; {notes[f.name]}" if f.name in (notes or {}) else "")
        common = {"dest": prefix + f.name, "help": text, "default": None}
        if meta["negate"]:
            p.add_argument(meta["flag"], action="store_const", const=not default, **common)
        elif f.type == "bool | None" or meta["negatable"]:
            p.add_argument(meta["flag"], action=argparse.BooleanOptionalAction, **common)
        elif isinstance(default, bool) and default:
            p.add_argument(meta["flag"], choices=["on", "off"], **common)
        elif isinstance(default, bool):
            p.add_argument(meta["flag"], action="store_const", const=True, **common)
        elif isinstance(default, tuple):
            p.add_argument(meta["flag"], action="append", type=meta["parse"] or str, metavar=meta["metavar"],
                           **common)
        elif meta["choices"]:
            p.add_argument(meta["flag"], choices=list(meta["choices"]), **common)
        else:
            p.add_argument(meta["flag"], type=meta["parse"] or _scalar_type(f.type), metavar=meta["metavar"],
                           **common)


def _scalar_type(annotation: str) -> Callable[[str], object]:
    return positive_int if "int" in annotation else float if "float" in annotation else str


def config_values(args: argparse.Namespace, cls: type, prefix: str = "") -> dict:
    """The flags of `cls` the user gave, as its field values (on/off as bools, repeated flags as one tuple or
    list, a scaled flag scaled)."""
    from rnopt.options import field_default, flag_fields

    given = {}
    for f in flag_fields(cls):
        value = getattr(args, prefix + f.name, None)
        if value is None:
            continue
        if value in ("on", "off"):
            value = value == "on"
        elif isinstance(value, list):  # a repeatable flag: each value may itself be a list (a comma list)
            items = [x for v in value for x in (v if isinstance(v, list) else [v])]
            default = field_default(f)
            value = type(default)(items) if isinstance(default, (list, tuple)) else items
        elif f.metadata["scale"] is not None:
            value = value * f.metadata["scale"]
        given[f.name] = value
    return given


def _add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Every registered runtime's own flags, generated from its config's fields: declared once, in the runtime's
    own module."""
    from rnopt.backends import config_class, runtime_names

    for runtime in runtime_names():
        add_config_flags(p, config_class(runtime), prefix=f"{runtime}.")


def _runtime_options(args: argparse.Namespace) -> dict[str, dict]:
    """The runtime flags the user gave, by runtime: a runtime reads only its own."""
    from rnopt.backends import config_class, runtime_names

    given = {runtime: config_values(args, config_class(runtime), prefix=f"{runtime}.") for runtime in runtime_names()}
    return {runtime: values for runtime, values in given.items() if values}


def _plan(args: argparse.Namespace, prefer_pytorch: bool = False) -> list[VariantSpec]:
    """The specs a bench or eval command line asks for: every model x backend x precision."""
    from rnopt import api
    from rnopt.backends import config_class, runtime_names
    from rnopt.configs import PlanConfig
    from rnopt.plan import default_runtime, plan

    artifacts = [api.artifact(m, _model_options(args)) for m in args.models]
    chosen = PlanConfig(**config_values(args, PlanConfig))
    given = _runtime_options(args)
    objective = getattr(args, "objective_implied", None)  # a scenario's (offline: throughput), below the user's flags
    options = {runtime: {**(config_class(runtime).for_objective(objective) if objective else {}),
                         **given.get(runtime, {})} for runtime in runtime_names()}
    specs = plan(artifacts, chosen.runtimes, chosen.precisions, chosen.device, chosen.threads, options,
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


def _bench_config(args: argparse.Namespace, **command_defaults: object):  # noqa: ANN202 - a BenchConfig
    """The timing config: the command's defaults (`_add_bench_options`, then `command_defaults`) under the flags
    given. A fixed length (--iterations or --min-time) turns the default adaptive length off; --target-ci 0 too."""
    from rnopt.bench import BenchConfig

    given = config_values(args, BenchConfig, "bench.")
    if ("iterations" in given or "min_time" in given) and "target_ci" not in given:
        given["target_ci"] = None
    if given.get("target_ci") == 0:
        given["target_ci"] = None
    return dataclasses.replace(args.bench_defaults, **{**command_defaults, **given})


def _batch_sizes_given(args: argparse.Namespace) -> bool:
    return getattr(args, "bench.batch_sizes", None) is not None


# ---- parser -----------------------------------------------------------------------------------------------

def _add_cluster_option(p: argparse.ArgumentParser, nodes: bool = False) -> None:
    p.add_argument("--cluster", metavar="local|ADDRESS", default=os.environ.get("RNOPT_CLUSTER") or None,
                   help="run the tasks on a Ray cluster (pip install 'rnopt[ray]'): local starts a private one on "
                        "this machine for the length of the command; ADDRESS joins a running one whose nodes have "
                        "rnopt and the runtimes (default: $RNOPT_CLUSTER; without either, everything runs here)")
    if nodes:
        p.add_argument("--nodes", metavar="KEY=VALUE[,...]", type=_selectors, default=[],
                       help="with --cluster: time on each of these machine types, one after another (a Ray node "
                            "label KEY=VALUE, or a custom resource NAME); the report gets a row per variant and "
                            "type and each type's environment")


def _selectors(text: str) -> list[str]:
    from rnopt.execute.cluster import parse_selector

    chosen = [part.strip() for part in text.split(",") if part.strip()]
    for part in chosen:
        try:
            parse_selector(part)
        except RnoptError as exc:  # argparse's own usage error: exit 2, the usage line
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not chosen:
        raise argparse.ArgumentTypeError("give at least one KEY=VALUE or NAME")
    return chosen


def cluster_nodes(args: argparse.Namespace) -> list[str]:
    """--nodes, refused without a cluster to find them in."""
    nodes = getattr(args, "nodes", None) or []
    if nodes and not args.cluster:
        raise RnoptError("--nodes picks machine types of a Ray cluster: give --cluster ADDRESS (or local) too")
    return nodes


@contextlib.contextmanager
def _executor(args: argparse.Namespace) -> Iterator["str | Executor"]:
    """Where the command's tasks run: --executor's choice here, or the Ray cluster --cluster names (left, and a
    private local one stopped, when the command ends)."""
    chosen = getattr(args, "executor", "inprocess")
    nodes = cluster_nodes(args)
    if not args.cluster:
        yield chosen
        return
    if chosen != "inprocess":
        raise RnoptError(f"--cluster runs each task on a Ray worker: leave out --executor {chosen}")
    from rnopt.execute import RayExecutor

    executor = RayExecutor(args.cluster, nodes)
    try:
        yield executor
    finally:
        executor.close()


def _add_model_options(p: argparse.ArgumentParser) -> None:
    add_config_flags(p, ModelOptions, "model.")


def _add_backend_options(p: argparse.ArgumentParser, default: str) -> None:
    """Which variants (PlanConfig), and every runtime's own flags."""
    from rnopt.configs import PlanConfig

    add_config_flags(p, PlanConfig, notes={"runtimes": f"default: {default}"})
    _add_runtime_flags(p)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The quantizer, calibration and the int8 recipe, from QuantizeConfig and QuantRecipe."""
    from rnopt.quantization import QuantRecipe
    from rnopt.configs import QuantizeConfig

    add_config_flags(p, QuantizeConfig, "quantize.")
    add_config_flags(p, QuantRecipe, "recipe.")


def _add_bound_options(p: argparse.ArgumentParser | argparse._ArgumentGroup, max_drop_note: str) -> None:
    """The accuracy bound (quantize --max-drop, tune), the validation images it holds on, and the test data."""
    from rnopt.quantization import AccuracyControl

    add_config_flags(p, AccuracyControl, "bound.", notes={"max_drop": max_drop_note})


def _add_bench_options(p: argparse.ArgumentParser, defaults: object, sweep: bool = False) -> None:
    """The timing flags, generated from BenchConfig; `defaults` (a BenchConfig) is the command's own. `sweep`:
    the batch sweep's flag too (`rnopt tune` has its own, per candidate)."""
    from rnopt.bench import BenchConfig

    add_config_flags(p, BenchConfig, "bench.", defaults, skip=() if sweep else ("sweep_limit",))
    p.set_defaults(bench_defaults=defaults)
