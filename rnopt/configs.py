"""The typed configs the API's verbs take, each user-facing field declared with its command-line flag
(`rnopt.options.option`): the CLI generates its options from these, so a flag and the field it sets cannot drift
apart, and each command's defaults are the API's.

Light on purpose (no PyTorch, no runtime): the CLI reads these to build its parser on every invocation.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnopt.artifacts import ModelOptions
from rnopt.bench import CUDA_SWEEP_LIMIT, DEFAULT_SPEED_TOLERANCE, RUN_BENCH, TUNE_BENCH, BenchConfig
from rnopt.errors import RnoptError
from rnopt.options import names_list, option, option_like
from rnopt.quantization import QUANTIZERS, AccuracyControl, get_quantizer
from rnopt.quantization.base import QuantRecipe
from rnopt.schema import check_fields

FUSION_LEVELS = ("basic", "extended")  # rnopt.fusion.LEVELS, without importing ONNX Runtime to parse a command line


# ---- the file verbs: `rnopt.export`, `optimize`, `quantize`, `sensitivity` -----------------------------------------

@dataclass(frozen=True)
class ExportConfig:
    """How `rnopt export` writes and checks the ONNX file (the model itself: `rnopt.artifacts.ModelOptions`)."""

    opset: int | None = option(None, "--opset", "ONNX opset (default: the exporter's, 18+)", metavar="N")
    static_batch: int | None = option(None, "--static-batch", "fix the batch size (default: dynamic)", metavar="N")
    rtol: float | None = option(None, "--rtol", "max |diff| allowed, as a fraction of the largest |logit| (default "
                                "1e-4): fp32 rounding never reaches it, a wrong graph does", metavar="R")
    atol: float | None = option(None, "--atol", "also bound the absolute max |diff| (default: none)", metavar="A")

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def is_recipe(self) -> bool:
        """Whether a recipe names this export (the store builds it): no tolerance of its own, batch dynamic or 1."""
        return self.rtol is None and self.atol is None and self.static_batch in (None, 1)


@dataclass(frozen=True)
class OptimizeConfig:
    level: str = option("extended", "--level", "ONNX Runtime's offline fusion level (default {default})",
                        FUSION_LEVELS)

    def __post_init__(self) -> None:
        if self.level not in FUSION_LEVELS:
            raise RnoptError(f"unknown optimization level {self.level!r}: choose {' or '.join(FUSION_LEVELS)}")


@dataclass(frozen=True)
class QuantizeConfig:
    """int8 by `toolkit`, calibrated on `calib_data`; with `control`, accuracy-aware (layers go back to float until
    its bound holds on the validation data; with `time_reverts`, what the float layers cost in latency is timed)."""

    toolkit: str = option("onnxruntime", "--backend", "the quantizer: " + "; ".join(
        f"{name} writes {t.format}" for name, t in QUANTIZERS.items()) + " (default {default})", tuple(QUANTIZERS))
    calib_data: str | None = option(None, "--calib-data", "calibration images (default: bundled for CIFAR)",
                                    metavar="DIR|cifar10-calib")
    calib_size: int = option(500, "--calib-size", "calibration images used (default {default})", metavar="N")
    recipe: QuantRecipe = field(default_factory=QuantRecipe)
    control: AccuracyControl | None = None
    time_reverts: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.recipe, str):  # a calibration method's name is enough for a recipe
            object.__setattr__(self, "recipe", QuantRecipe(self.recipe))
        check_fields(self)
        if self.toolkit not in QUANTIZERS:
            get_quantizer(self.toolkit)  # the one-line error naming the quantizers
        if self.calib_size <= 0:
            raise RnoptError(f"calib_size must be positive, got {self.calib_size}")


@dataclass(frozen=True)
class SensitivityConfig:
    """`rnopt sensitivity`: the validation images and measure, how many ground truths, and (when no int8 model is
    given) how the int8 model is made."""

    data: str | None = option_like(AccuracyControl, "data")
    limit: int | None = option_like(AccuracyControl, "limit")
    measure: str | None = option_like(AccuracyControl, "measure")
    top: int = option(5, "--top", "ground truth for the K tensors with the lowest SQNR: the accuracy gained by "
                      "keeping only that one in float, on all validation images (default {default}; 0: SQNR only)",
                      metavar="K", parse=int)
    sqnr_images: int = option(200, "--sqnr-images", "validation images the SQNR pass runs on (default {default})",
                              metavar="N")
    calib_data: str | None = option_like(QuantizeConfig, "calib_data")
    calib_size: int = option_like(QuantizeConfig, "calib_size")
    recipe: QuantRecipe = field(default_factory=QuantRecipe)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.top < 0 or self.sqnr_images <= 0:
            raise RnoptError("--top must be zero or more and --sqnr-images positive")


# ---- the spec verbs: which variants (`rnopt.plan`), and how `evaluate` and `embed` read their images -------------

def precision_list(text: str) -> list[str]:
    """`fp32,int8` -> ["fp32", "int8"], each a precision rnopt knows."""
    from rnopt.plan import PRECISIONS

    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in PRECISIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown precision {', '.join(unknown) or text!r}: choose from "
                                         f"{', '.join(PRECISIONS)}")
    return names


def _runtime_list() -> str:
    from rnopt.backends import runtime_names  # the registry: names only, no runtime imported

    return ", ".join(runtime_names())


@dataclass(frozen=True)
class PlanConfig:
    """Which variants of each model `rnopt.plan` makes: on which runtimes, at which precisions, where, on how many
    threads (each runtime's own options come from its config)."""

    runtimes: list[str] | None = option(None, "--backend", f"runtimes: {_runtime_list()}", metavar="NAME[,NAME...]",
                                        parse=names_list)
    precisions: list[str] | None = option(None, "--precision", "a comma list compares precisions side by side "
                                          "(default: the model's own; what each runtime can run here: rnopt "
                                          "backends)", metavar="P[,P...]", parse=precision_list)
    device: str = option("cpu", "--device", "cpu or cuda (default {default})", metavar="cpu|cuda")
    threads: int | None = option(None, "--threads", "intra-op threads (default: all cores)", metavar="N")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class EvalConfig:
    """`rnopt.evaluate`: the labelled images, a seeded subset of them, and the batch each variant runs."""

    data: str = option("cifar10", "--data", "cifar10 (bundled JPEG test set) or an ImageFolder DIR (default {default})")
    limit: int | None = option(None, "--limit", "a fixed random subset of N images", metavar="N")
    batch_size: int = option(100, "--batch-size", "images per call (default {default})", metavar="N")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.batch_size <= 0 or (self.limit is not None and self.limit <= 0):
            raise RnoptError("batch_size and limit must be positive")


@dataclass(frozen=True)
class EmbedConfig:
    """`rnopt.embed`: the batch, and whether images that cannot be decoded are skipped (and listed)."""

    batch_size: int = option(100, "--batch-size", "images per call (default {default})", metavar="N")
    skip_bad: bool = option(False, "--skip-bad", "skip images that cannot be decoded, and list them")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.batch_size <= 0:
            raise RnoptError("batch_size must be positive")


@dataclass(frozen=True)
class CompareConfig:
    """`rnopt.compare_runs`: how much each figure may move before it counts as a regression (fractions)."""

    latency_tolerance: float = option(0.10, "--latency-tolerance", "median latency may grow this much (default "
                                      "{default} %%)", metavar="PCT", scale=0.01)
    accuracy_tolerance: float = option(0.005, "--accuracy-tolerance", "top-1 may drop this many points (default "
                                       "{default})", metavar="POINTS", scale=0.01)
    memory_tolerance: float = option(0.10, "--memory-tolerance", "memory per variant may grow this much, and 2 MB "
                                     "(default {default} %%)", metavar="PCT", scale=0.01)
    allow_missing: bool = option(False, "--allow-missing", "a variant of the baseline missing from the current run "
                                 "is not a failure")

    def __post_init__(self) -> None:
        for name in ("latency", "accuracy", "memory"):  # named as the flags: the CLI gives them in % or points
            value = getattr(self, f"{name}_tolerance")
            if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
                raise RnoptError(f"--{name}-tolerance must be a finite number of zero or more, got {value * 100:g}")
        check_fields(self)


# ---- the whole pipeline and the search ------------------------------------------------------------------------------

DEFAULT_MODEL = "resnet20_cifar10"
OBJECTIVES = {"latency": 1, "throughput": 32}  # objective -> its default batch size
# The int8 recipes the search tries with ONNX Runtime's quantizer; each file also runs on OpenVINO, and NNCF's
# own int8 joins them where NNCF is installed.
SEARCH_RECIPES: dict[str, QuantRecipe] = {
    "minmax": QuantRecipe(),
    "entropy": QuantRecipe(method="entropy"),
    "percentile": QuantRecipe(method="percentile"),
    "per-tensor": QuantRecipe(per_channel=False),
}


def _model_option(name: str, **changes: Any) -> Any:
    return option_like(ModelOptions, name, **changes)


def _runtimes_help(verb: str) -> str:
    from rnopt.backends import runtime_names  # the registry: names only, no runtime imported

    return f"runtimes to {verb}: {', '.join(runtime_names())} (default: those installed)"


@dataclass
class RunOptions:
    """`rnopt run`: export, fuse and quantize one model, then time and evaluate every variant, with a report."""

    model: str = option(DEFAULT_MODEL, "--model", "a built-in name or a .onnx / .xml file (default {default})",
                        metavar="NAME|FILE")
    weights: str | None = _model_option("weights")
    num_classes: int | None = _model_option("num_classes")
    labels: str | None = _model_option("labels")
    output: Path = option(Path("reports"), "--output", "reports go to DIR/<model>-<time>/", metavar="DIR",
                          parse=Path)
    # accuracy data; default: the bundled CIFAR-10 test set for CIFAR models
    data: str | None = option(None, "--data", "accuracy data (default: cifar10 for CIFAR models)")
    calib_data: str | None = option_like(QuantizeConfig, "calib_data")
    eval_limit: int | None = option(None, "--limit", "evaluate on a subset of N images", metavar="N")
    bench: BenchConfig = field(default_factory=lambda: replace(RUN_BENCH))
    threads: int | None = option(None, "--threads", "intra-op threads (default: all cores)", metavar="N")
    # None: every runtime `rnopt run` compares whose package is installed
    backends: list[str] | None = option(None, "--backend", _runtimes_help("compare"), metavar="NAME[,NAME...]",
                                        parse=names_list)
    # None: the CPU, and CUDA too when a chosen runtime can use it here
    devices: list[str] | None = option(None, "--device", "where to run the variants (default: cpu, and cuda too "
                                       "when a runtime can use a GPU here)", metavar="cpu|cuda|cpu,cuda",
                                       parse=names_list)
    # features: compare the embedding model (retrieval fidelity instead of top-1)
    head: str = _model_option("head", default="logits")
    normalize: bool = _model_option("normalize")
    accuracy: AccuracyControl | None = None  # accuracy-aware int8 for the int8 variants (bound, validation data)
    cluster: str | None = None  # "local" or a Ray address: timing and evaluation run as tasks there
    nodes: list[str] = field(default_factory=list)  # with a cluster: the machine types to time on (KEY=VALUE, NAME)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class TuneOptions:
    """`rnopt tune`: the fastest variant whose accuracy on validation images stays within a bound."""

    # Several names, comma-separated: each searched against its own float reference, then all on one front
    model: str = option(DEFAULT_MODEL, "--model", "a built-in name, or several (comma-separated: each searched, then "
                        "their finalists timed together on one accuracy/speed front; default {default})",
                        metavar="NAME[,NAME...]")
    weights: str | None = _model_option("weights", help="a checkpoint (.pt/.pth/.th) for the model; with several "
                                        "models, one per model, comma-separated in the same order (an empty entry: "
                                        "that model's bundled weights)")
    num_classes: int | None = _model_option("num_classes")
    labels: str | None = _model_option("labels")
    head: str = _model_option("head", default="logits")
    normalize: bool = _model_option("normalize")
    output: Path = option(Path("reports"), "--output", "the report and every candidate's model file go to "
                          "DIR/<model>-tune-<time>/", metavar="DIR", parse=Path)
    control: AccuracyControl = field(default_factory=lambda: AccuracyControl(max_drop=1.0))
    objective: str = option("latency", "--objective", "latency: lowest median at batch 1; throughput: most images/s "
                            "at batch 32 (--batch-size changes the batch)", tuple(OBJECTIVES))
    # None: `rnopt run`'s adaptive timing (each median to +-1 %, at most 30 s) at the objective's batch size
    bench: BenchConfig | None = None
    # With the throughput objective: double each candidate's batch from the objective's batch up to `sweep` while
    # images/s still improves, and judge each at its peak (None: CUDA candidates up to CUDA_SWEEP_LIMIT, as
    # `rnopt run` does on a GPU; CPU candidates at the one batch size).
    sweep: int | None = option(None, "--sweep", "with --objective throughput: double each candidate's batch from "
                               "--batch-size up to MAX while images/s improves by 3 %%, and judge each at its best "
                               f"(default: CUDA candidates up to {CUDA_SWEEP_LIMIT}, CPU ones at the one batch size)",
                               metavar="MAX")
    recipes: list[str] | None = option(None, "--recipe", "int8 recipes to try: " + ", ".join(SEARCH_RECIPES)
                                       + " (default: all)", metavar="NAME[,NAME...]", parse=names_list)
    # when every int8 candidate is over the bound: int8 with some layers in float
    accuracy_aware: bool = option(True, "--accuracy-aware", "when every int8 candidate is over the bound, also try "
                                  "int8 with the most sensitive layers back in float until the bound holds (ONNX "
                                  "Runtime from the first --recipe, and NNCF; default {default})", negatable=True)
    calib_data: str | None = option_like(QuantizeConfig, "calib_data")
    backends: list[str] | None = option(None, "--backend", _runtimes_help("search"), metavar="NAME[,NAME...]",
                                        parse=names_list)
    devices: list[str] | None = option(None, "--device", "where candidates run (default: cpu, and cuda too when a "
                                       "runtime can use a GPU here)", metavar="cpu|cuda|cpu,cuda", parse=names_list)
    threads: int | None = option(None, "--threads", "intra-op threads (default: all cores)", metavar="N")
    # Candidates within this many % of the fastest count as fast as it: the best validation score among them wins,
    # so a choice between files a few % apart does not flip from run to run (OpenVINO's int8 files: within 8 %).
    speed_tolerance: float = option(DEFAULT_SPEED_TOLERANCE, "--speed-tolerance", "candidates within P %% of the "
                                    "fastest count as fast as it; the best validation score among them wins (default "
                                    "{default})", metavar="P")
    # Bound candidates by how closely their outputs follow the float model's (mean cosine, `control.min_cosine` or
    # DEFAULT_MIN_COSINE) on the images given, without labels: accuracy is not measured. Also chosen by itself for
    # a model without trained weights, or without labelled validation images that fit it.
    speed_only: bool = option(False, "--speed-only", "do not measure accuracy: bound each candidate by the mean "
                              "cosine of its outputs to the float model's (--min-cosine, default 0.99) on --data "
                              "images (labels not needed); chosen by itself for random weights or a model with no "
                              "labelled images that fit it")
    # The chosen variant timed again against itself with other settings (its runtime's knobs; fewer threads, in
    # fresh processes); one clearly faster replaces it.
    knobs: bool = option(True, "--knobs", "time the chosen variant against itself with its runtime's other settings "
                         "(ONNX Runtime: spinning, inter-op threads; OpenVINO with --objective throughput: streams, "
                         "hint) and fewer intra-op threads (each in a fresh process); one clearly faster replaces it "
                         "(default {default})", negatable=True)
    # A time limit: every candidate screened with a short timing, validated fastest first (only those that could
    # still win), the rest confirmed with the full timing; when it ends, the best found so far is chosen.
    budget_minutes: float | None = option(None, "--budget-minutes", "screen every candidate with a short timing, "
                                          "validate only those that could still win (fastest first), confirm the "
                                          "rest with the full timing, and stop with the best found so far after M "
                                          "minutes (default: no limit; accuracy-aware int8 is left out)",
                                          metavar="M")
    cluster: str | None = None  # "local" or a Ray address: validation, timing and test figures run as tasks there

    def __post_init__(self) -> None:
        check_fields(self)
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise RnoptError(f"--budget-minutes must be a positive number of minutes, got {self.budget_minutes:g}")
        if not 0 <= self.speed_tolerance < 100:
            raise RnoptError(f"--speed-tolerance is a percentage in [0, 100), got {self.speed_tolerance:g}")
        if self.objective not in OBJECTIVES:
            raise RnoptError(f"unknown objective {self.objective!r}: choose one of {', '.join(OBJECTIVES)}")
        unknown = [r for r in self.recipes or [] if r not in SEARCH_RECIPES]
        if unknown:
            raise RnoptError(f"unknown recipe {', '.join(unknown)}: choose from {', '.join(SEARCH_RECIPES)}")
        if self.bench is None:
            self.bench = replace(TUNE_BENCH, batch_sizes=[OBJECTIVES[self.objective]])
        if len(self.bench.batch_sizes) != 1:
            raise RnoptError("rnopt tune optimises at one batch size: give one --batch-size")
        if self.sweep is not None and self.objective != "throughput":
            raise RnoptError("--sweep finds the batch size with the most images/s: add --objective throughput")
        if self.sweep is not None and self.sweep < self.bench.batch_sizes[0]:
            raise RnoptError(f"--sweep {self.sweep} is below the batch size it starts from "
                             f"({self.bench.batch_sizes[0]})")
        self.each_model()  # a bad --model/--weights pair fails here

    def each_model(self) -> list["TuneOptions"]:
        """One TuneOptions per model of `--model a,b` (with its own `--weights` entry); itself for one model."""
        names = self.model.split(",")
        if len(names) == 1:
            return [self]
        if any(not n.strip() for n in names) or len(set(names)) != len(names):
            raise RnoptError(f"--model {self.model}: give distinct model names separated by commas")
        weights = self.weights.split(",") if self.weights is not None else [""] * len(names)
        if len(weights) != len(names):
            raise RnoptError(f"--weights gives {len(weights)} checkpoints for {len(names)} models: give one per "
                             f"model, comma-separated in --model's order (an empty entry: the bundled weights)")
        return [replace(self, model=n.strip(), weights=w.strip() or None) for n, w in zip(names, weights)]
