"""The timing harness: prepared inputs, warm-up, interleaved rounds, and the statistics of the samples.

Every variant (model x backend) of a comparison is loaded first, then timed in interleaved rounds:
each round gives every variant a short block of iterations, so a burst of noise on this shared
machine hits all of them alike instead of skewing whichever happened to run during it.
"""
from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rnopt.backends.base import ModelFile, ModelInput, Session
from rnopt.environment import snapshot
from rnopt.errors import BatchTooLarge, RnoptError
from rnopt.machine_load import load_warning
from rnopt.options import option, positive_ints
from rnopt.results import BenchResult, LatencyStats
from rnopt.schema import check_fields
from rnopt.spec import VariantSpec
from rnopt.stats import CI_METHOD, Drift, drift, median_ci, outlier_share

if TYPE_CHECKING:
    from rnopt.onnx_model import ModelMeta  # onnx: not needed where only PyTorch runs

# A median whose 95 % interval is wider than +-2 % is called noisy; so is a run whose medians moved by more
# than that between the first and the last third of its rounds (drift). cv stays a descriptive figure:
# a few scheduler outliers per thousand calls make it large while the median stays precise.
NOISY_CI = 0.02
MIN_ROUNDS = 3  # --target-ci never stops on fewer rounds (drift is judged from stats.MIN_DRIFT_ROUNDS on)
# One untimed round first: right after loading, every variant's first round ran 15-55 % slower than the
# rest here (`rnopt run`, ResNet-20, all 7 variants at batch 1, two runs), a warm-up the per-variant
# warm-up runs do not cover; kept, it reads as drift.
WARMUP_ROUNDS = 1
# Each round gives a variant one block: a pause, a couple of untimed runs, then timed runs for at least
# BLOCK_ITERATIONS and BLOCK_TIME_S. Runtimes keep their worker threads spinning for a while after a
# call (ONNX Runtime, OpenMP); on a small machine those threads steal the cores of whichever variant
# runs next. Measured on 2 cores, ResNet-20 batch 1, ORT and PyTorch interleaved: PyTorch p50 4.2-5.6 ms
# with no pause, 2.3-2.4 ms with a 50-100 ms pause (2.35 ms alone); ORT 0.46-0.49 ms (0.46 alone).
SETTLE_S = 0.05
BLOCK_WARMUP = 2
BLOCK_ITERATIONS = 5
BLOCK_TIME_S = 0.1
SWEEP_MIN_GAIN = 0.03  # a doubled batch must raise images/s by 3 % for the sweep to go on
CUDA_SWEEP_LIMIT = 4096  # where a GPU's offline sweep stops at the latest


@dataclass
class BenchConfig:
    batch_sizes: list[int] = option(flag="--batch-size", help="batch sizes to time (default {default})",
                                    metavar="N[,N...]", factory=lambda: [1, 8], parse=positive_ints)
    warmup: int = option(10, "--warmup", "untimed runs first (default {default})", metavar="N", parse=int)
    iterations: int = option(50, "--iterations", "timed runs, at least (default {default}; with --target-ci, "
                             "--max-time ends the rounds first)", metavar="N")
    # seconds of timed runs per variant and batch size, at least
    min_time: float = option(1.0, "--min-time", "timed seconds, at least (default {default})", metavar="S")
    # also measure each variant's memory in a process of its own (a few seconds each)
    memory: bool = option(False, "--memory", "measure each variant's memory in a process of its own, a few seconds "
                          "each (default {default})", negatable=True)
    # Adaptive length: keep running rounds until every median's 95 % interval is within +-target_ci
    # (0.01 = 1 %), or max_time seconds per batch size have passed; min_time then no longer applies.
    target_ci: float | None = option(None, "--target-ci", "keep timing in interleaved rounds until every median's "
                                     "95%% interval is within +-PCT %% (or --max-time passes); replaces --min-time; "
                                     "0 turns it off (default: {default}, unless --iterations or --min-time is "
                                     "given)", metavar="PCT", scale=0.01)
    max_time: float = option(60.0, "--max-time", "with --target-ci: stop after S seconds per batch size, naming what "
                             "did not converge (default {default})", metavar="S")
    # All batch sizes in one set of interleaved rounds (each variant at each size a block per round), so that the
    # sizes are compared as fairly as variants are; by default one size after another.
    batches_together: bool = option(False, "--batches-together", "time the batch sizes interleaved with one "
                                    "another in one set of rounds, to compare them fairly (default: one after "
                                    "another)", negatable=True)
    # Screen, then confirm: after MIN_ROUNDS rounds, a variant whose median's interval lies wholly above the
    # fastest's at its batch size stops (it cannot be the fastest; its interval is the one it reached and says
    # so), and the contenders go on in shorter rounds until the target or max_time.
    contenders_only: bool = option(False, "--contenders-only", "with --target-ci: after a screen of a few rounds, "
                                   "keep timing only the variants that could still be the fastest at each batch "
                                   "size; the others keep the interval they reached (default {default})",
                                   negatable=True)
    # Offline batch sweep: per variant, double the batch from batch_sizes[0] while images/s improves by at
    # least SWEEP_MIN_GAIN, up to sweep_limit or until a batch does not fit (None: the listed sizes only).
    sweep_limit: int | None = option(None, "--sweep", "double the batch size from 1 (or --batch-size N) while "
                                     "images/s improves by 3 %%, up to MAX or the first batch that does not fit; "
                                     "every size is reported (default on CUDA with --scenario offline: "
                                     f"{CUDA_SWEEP_LIMIT})", metavar="MAX")

    def __post_init__(self) -> None:
        times = (self.min_time, self.max_time, self.target_ci or 1.0)  # named as the flags, before the type check
        if all(isinstance(x, (int, float)) for x in times) and not all(math.isfinite(x) for x in times):
            raise RnoptError("--min-time, --max-time and --target-ci must be finite numbers")
        check_fields(self)
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes):
            raise RnoptError(f"batch sizes must be positive integers, got {self.batch_sizes}")
        if self.warmup < 0 or self.iterations <= 0 or self.min_time < 0:
            raise RnoptError("--warmup must be >= 0, --iterations > 0 and --min-time >= 0")
        if self.target_ci is not None and (self.target_ci <= 0 or self.max_time <= 0):
            raise RnoptError("--target-ci and --max-time must be positive")
        if self.sweep_limit is not None and self.sweep_limit < self.batch_sizes[0]:
            raise RnoptError(f"--sweep {self.sweep_limit} is below the first batch size {self.batch_sizes[0]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchConfig":
        return cls(**data)


# `rnopt run`'s timing: until every median is known to +-2 % (NOISY_CI: what the report calls precise), at most
# 10 s per batch size, naming what did not converge; memory in a process per variant. Screen, then confirm: a
# variant clearly slower than the fastest at its batch size after MIN_ROUNDS stops there (timing 31-34 s -> 19 s
# here, benchmarks/README.md). +-1 % and 30 s made the
# default run 159 s here, 60 s of it spent waiting for PyTorch's medians, which a busy 2-core host keeps at
# +-2-5 % however long it runs (benchmarks/README.md). `rnopt tune` still times to +-1 %: it chooses on them.
RUN_BENCH = BenchConfig(target_ci=NOISY_CI, max_time=10.0, memory=True, contenders_only=True)
# `rnopt tune`'s: the same, at the objective's batch size (set by the search); memory is not what it chooses on.
TUNE_BENCH = BenchConfig(batch_sizes=[1], target_ci=0.01, max_time=30.0)


@dataclass
class Variant:
    """A spec loaded in this process: its live session, ready to time or evaluate."""

    spec: VariantSpec
    session: Session
    model: ModelInput

    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def model_size_bytes(self) -> int | None:
        return self.model.size_bytes

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def meta(self) -> "ModelMeta":
        """The model's rnopt metadata: a file's own, or what exporting the built-in model would record."""
        if isinstance(self.model, ModelFile):
            return self.model.meta
        from rnopt.onnx_export import meta_for  # torch's exporter: only for a built-in model run by PyTorch

        return meta_for(self.model.loaded)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latency_stats(samples_s: list[float]) -> LatencyStats:
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    stdev = float(ms.std(ddof=1)) if len(ms) > 1 else 0.0
    return LatencyStats(float(ms.mean()), float(p50), float(p90), float(p95), float(p99),
                        float(ms.min()), float(ms.max()), stdev)


def _block(session: Session, prepared: object) -> list[float]:
    session.begin(prepared)
    try:
        for _ in range(BLOCK_WARMUP):
            session.run(prepared)
        samples: list[float] = []
        while len(samples) < BLOCK_ITERATIONS or sum(samples) < BLOCK_TIME_S:
            samples.append(session.timed_run(prepared))
    finally:
        session.end(prepared)
    return samples


# A ResNet's input plus the activations a runtime keeps at its peak, per image, as a multiple of the input:
# measured here (rnopt/memory.py, ResNet-20 batch 1 vs 64 on ORT): about 16x; 20x leaves room.
ACTIVATION_FACTOR = 20


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_batch_fits(batch: int, input_size: int, what: str = "--batch-size") -> None:
    """Refuse, before allocating anything, a batch whose inputs and activations cannot fit in memory."""
    need = batch * 3 * input_size * input_size * 4 * ACTIVATION_FACTOR
    have = available_memory_bytes()
    if have is not None and need > 0.8 * have:
        raise BatchTooLarge(f"{what} {batch} at {input_size}x{input_size} needs about {need / 2**30:.1f} GiB for "
                            f"its inputs and activations; {have / 2**30:.1f} GiB are available: use a smaller {what}")


# `rnopt tune`: candidates within this many % of the fastest count as fast as it (then accuracy decides)
DEFAULT_SPEED_TOLERANCE = 5.0


def bench_variants(variants: list[Variant], config: BenchConfig,
                   on_round: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Time every variant at every batch size; variants are interleaved within a batch size (and the batch sizes
    with one another too, with `batches_together`)."""
    if config.sweep_limit is not None:
        return [r for v in variants for r in sweep_batches(v, config, on_round)]
    rng = np.random.default_rng(0)
    if config.batches_together:
        return _timed_together([(v, b) for b in config.batch_sizes for v in variants], config, rng, on_round)
    return [r for b in config.batch_sizes for r in _timed_together([(v, b) for v in variants], config, rng, on_round)]


def _timed_together(units: list[tuple[Variant, int]], config: BenchConfig, rng: np.random.Generator,
                    on_round: Callable[[str], None] | None) -> list[BenchResult]:
    """Each (variant, batch size) a block per round, interleaved, until `_enough`."""
    for v, batch in units:
        check_batch_fits(batch, v.input_size)
    prepared, first_ms = [], []
    for v, batch in units:
        data = rng.standard_normal((batch, 3, v.input_size, v.input_size), dtype=np.float32)
        inputs = v.session.prepare(data)
        first_ms.append(v.session.timed_run(inputs) * 1e3)
        for _ in range(config.warmup):
            v.session.run(inputs)
        prepared.append(inputs)
    busy = load_warning()  # checked while nothing of ours runs
    sizes = sorted({b for _, b in units})
    rounds, outpaced = _interleaved_rounds([v for v, _ in units], [b for _, b in units], prepared, config,
                                           ", ".join(map(str, sizes)), on_round)
    results = []
    for k, ((v, batch), blocks, first) in enumerate(zip(units, rounds, first_ms)):
        results.append(_result(v, batch, blocks, first, config))
        if k in outpaced and not results[-1].converged:  # one already precise needs no word
            _screened_only(results[-1], units[outpaced[k]][0].label)
        results[-1].warnings += [busy] if busy else []
    return results


def sweep_batches(variant: Variant, config: BenchConfig,
                  on_round: Callable[[str], None] | None = None) -> list[BenchResult]:
    """The offline batch sweep of one variant: batch_sizes[0], then doubling while images/s still improves by
    SWEEP_MIN_GAIN, up to sweep_limit; a batch that does not fit (memory) ends it with a warning on the last
    result. Every size timed is returned, so the report shows the curve and its peak."""
    results: list[BenchResult] = []
    batch, limit = config.batch_sizes[0], config.sweep_limit or config.batch_sizes[0]
    while batch <= limit:
        try:
            [result] = bench_variants([variant], BenchConfig(**{**asdict(config), "batch_sizes": [batch],
                                                                  "sweep_limit": None}), on_round)
        except Exception as exc:  # noqa: BLE001 - only running out of memory ends a sweep quietly
            if not _out_of_memory(exc) or not results:
                raise
            results[-1].warnings.append(f"batch sweep stopped: batch {batch} does not fit ({str(exc)[:120]})")
            break
        results.append(result)
        variant.session.release()
        if len(results) > 1 and result.throughput_ips < results[-2].throughput_ips * (1 + SWEEP_MIN_GAIN):
            break
        batch *= 2
    return results


def sweep_config(config: BenchConfig, limit: int = CUDA_SWEEP_LIMIT) -> BenchConfig:
    """The offline sweep's timing: from batch 1, fixed length (0.3 s per size), no memory probes."""
    return BenchConfig([1], config.warmup, config.iterations, 0.3, False, None, config.max_time, sweep_limit=limit)


def _out_of_memory(exc: BaseException) -> bool:
    """rnopt's own check that a batch cannot fit, host memory, or a device allocator's out-of-memory."""
    return (isinstance(exc, (BatchTooLarge, MemoryError)) or "OutOfMemory" in type(exc).__name__
            or "out of memory" in str(exc))


def _interleaved_rounds(variants: list[Variant], batches: list[int], prepared: list[object], config: BenchConfig,
                        batch: str, on_round: Callable[[str], None] | None
                        ) -> tuple[list[list[list[float]]], dict[int, int]]:
    """Rounds of one block per variant, until `_enough`; per variant, the list of its blocks' samples. With
    `contenders_only`, the variants found clearly slower than another at their batch size after the screen
    (each mapped to that one) stop being timed."""
    rounds: list[list[list[float]]] = [[] for _ in variants]
    for _ in range(WARMUP_ROUNDS):
        _round(variants, prepared)
    active, outpaced = list(range(len(variants))), {}
    start = time.perf_counter()
    while not _enough([rounds[i] for i in active], config, time.perf_counter() - start):
        for i, block in zip(active, _round([variants[i] for i in active], [prepared[i] for i in active])):
            rounds[i].append(block)
        if config.contenders_only and config.target_ci is not None and len(rounds[active[0]]) >= MIN_ROUNDS:
            outpaced.update(outpaced_units({i: rounds[i] for i in active}, batches))
            active = [i for i in active if i not in outpaced]
        if on_round:
            on_round(f"batch {batch}: round {len(rounds[active[0]])}, "
                     f"{min(sum(map(len, rounds[i])) for i in active)} iterations")
    return rounds, outpaced


def outpaced_units(rounds: dict[int, list[list[float]]], batches: list[int]) -> dict[int, int]:
    """The units whose median's 95 % interval lies wholly above the interval of the fastest unit at the same batch
    size, each mapped to that fastest one: whatever more rounds show, they are not the fastest."""
    cis = {i: median_ci([s for block in blocks for s in block]) for i, blocks in rounds.items()}
    beaten = {}
    for i, ci in cis.items():
        fastest = min((j for j in cis if batches[j] == batches[i]), key=lambda j: cis[j].median)
        if ci.low > cis[fastest].high:
            beaten[i] = fastest
    return beaten


SCREENED = "timed in the screen only"


def _screened_only(result: BenchResult, faster: str) -> None:
    """A result that stopped after the screen says so, in place of not having reached the target."""
    result.warnings = [w for w in result.warnings if not w.startswith("--target-ci")]
    result.warnings.append(f"{SCREENED}: clearly slower than {faster} at batch {result.batch_size} after "
                           f"{result.rounds} rounds (median ±{result.p50_ci:.1%})")


def _round(variants: list[Variant], prepared: list[object]) -> list[list[float]]:
    """One block per variant, in order, with a pause before each so no runtime's spinning threads carry over."""
    blocks = []
    for v, inputs in zip(variants, prepared):
        if len(variants) > 1:
            time.sleep(SETTLE_S)
        blocks.append(_block(v.session, inputs))
    return blocks


def _enough(rounds: list[list[list[float]]], config: BenchConfig, elapsed: float) -> bool:
    if config.target_ci is not None and elapsed >= config.max_time and rounds[0]:
        return True  # the ceiling bounds --iterations too: ResNet-50 at batch 32 takes seconds per call here
    if any(sum(map(len, blocks)) < config.iterations for blocks in rounds):
        return False
    if config.target_ci is None:
        return all(sum(map(sum, blocks)) >= config.min_time for blocks in rounds)
    if elapsed >= config.max_time:
        return True
    return len(rounds[0]) >= MIN_ROUNDS and all(
        median_ci([s for b in blocks for s in b]).half_width <= config.target_ci for blocks in rounds)


def _result(v: Variant, batch: int, blocks: list[list[float]], first_ms: float, config: BenchConfig) -> BenchResult:
    samples = [s for block in blocks for s in block]
    stats = latency_stats(samples)
    cv = stats.stdev / stats.mean if stats.mean else 0.0
    ci = median_ci([s * 1e3 for s in samples])
    round_medians = [float(np.median(b)) * 1e3 for b in blocks]
    step = drift(round_medians)
    result = BenchResult(
        model=v.label, backend=v.session.backend, device=v.session.device, precision=v.session.precision,
        batch_size=batch, threads=v.session.threads, iterations=len(samples), latency_ms=stats, cv=cv,
        throughput_ips=batch * v.session.streams * 1e3 / stats.mean, total_time_s=float(sum(samples)),
        model_size_bytes=v.model_size_bytes, load_time_s=v.session.load_time_s, first_inference_ms=first_ms,
        streams=v.session.streams, settings=v.session.describe(), peak_rss_mb=peak_rss_mb(),
        peak_gpu_mb=v.session.peak_device_memory_mb(),
        samples_ms=[round(x * 1e3, 4) for x in samples], spec_id=v.spec.id,
        p50_ci_ms=[ci.low, ci.high], p50_ci=ci.half_width, ci_method=CI_METHOD,
        rounds=len(blocks), round_medians_ms=[round(m, 5) for m in round_medians],
        drift=step.change if step else None,
        drift_detected=is_drift(step),
        outlier_share=outlier_share(samples),
        converged=ci.half_width <= config.target_ci if config.target_ci is not None else None)
    result.warnings = result_warnings(result)
    return result


def is_drift(step: Drift | None) -> bool:
    """A step between the first and last thirds of the rounds that is beyond the noise and over NOISY_CI, either
    way: a run that got faster half-way was disturbed at its start just as much as one that got slower."""
    return bool(step and step.significant and abs(step.change) > NOISY_CI)


def summarize_warnings(results: list[BenchResult]) -> list[str]:
    """One line per kind of problem across all results, for the screen and the report's top level."""
    lines = []
    imprecise = [r for r in results if r.p50_ci is not None and r.p50_ci > NOISY_CI]
    if imprecise:
        worst = sorted(imprecise, key=lambda r: -(r.p50_ci or 0))
        share = max((r.outlier_share or 0) for r in imprecise)
        # an adaptive run already ran until --max-time: only more time (or a quieter machine) narrows it
        remedy = "a longer --max-time" if any(r.converged is False for r in imprecise) else "--target-ci"
        lines.append(f"noisy measurement: the median's 95 % interval is wider than ±{NOISY_CI:.0%} for "
                     f"{len(imprecise)} of {len(results)} results ({_named(worst, lambda r: f'±{r.p50_ci:.1%}')}); "
                     f"up to {share:.1%} of their calls took over 3x the median; rerun on a quieter machine, "
                     f"or with {remedy}")
    drifted = [r for r in results if r.drift_detected]
    if drifted:
        lines.append(f"drift: medians moved between the first and the last third of the rounds "
                     f"({_named(drifted, lambda r: f'{r.drift:+.1%}')}): something else started or stopped using "
                     f"the machine, or it throttled; rerun")
    unconverged = [r for r in results if r.converged is False and not _screened(r)]
    screened = [r for r in results if _screened(r)]
    if screened:
        lines.append(f"{SCREENED} (clearly slower than the fastest at their batch size, so not timed to "
                     f"--target-ci): {_named(screened, lambda r: f'±{r.p50_ci:.1%} after {r.rounds} rounds')}")
    if unconverged:  # two decimals: ±1.04 % must not read as the ±1 % it was meant to reach
        lines.append(f"--target-ci not reached within --max-time for {len(unconverged)} result(s) "
                     f"({_named(unconverged, lambda r: f'±{r.p50_ci:.2%} after {r.rounds} rounds')}); "
                     f"a longer --max-time gives the rounds more time, a quieter machine narrows them")
    own = ("noisy", "drift", "--target-ci", SCREENED)
    lines += sorted({w for r in results for w in r.warnings if not w.startswith(own)})
    return lines


def _screened(result: BenchResult) -> bool:
    return any(w.startswith(SCREENED) for w in result.warnings)


def _named(results: list[BenchResult], figure: Callable[[BenchResult], str], most: int = 4) -> str:
    named = ", ".join(f"{r.model} batch {r.batch_size} {figure(r)}" for r in results[:most])
    return named + (f" and {len(results) - most} more" if len(results) > most else "")


def result_warnings(result: BenchResult) -> list[str]:
    warnings = []
    if result.p50_ci is not None and result.p50_ci > NOISY_CI:
        warnings.append(f"noisy measurement: median ±{result.p50_ci:.1%} (95 % interval) > ±{NOISY_CI:.0%}")
    if result.drift_detected:
        warnings.append(f"drift: the median moved {result.drift:+.1%} from the first to the last third of the rounds")
    if result.converged is False:
        warnings.append(f"--target-ci not reached: median ±{result.p50_ci:.1%} after {result.rounds} rounds")
    env = snapshot()
    if result.precision == "int8" and result.device == "cpu" and not env.has_int8_acceleration:
        warnings.append("int8 on a CPU without VNNI/AMX: it may be slower than fp32 here")
    return warnings


def headline(results: list[BenchResult], scenario: str) -> list[str]:
    """The MLPerf-style figure of merit per variant: p90 latency (single-stream) or best images/s (offline)."""
    lines = []
    for model in dict.fromkeys(r.model for r in results):
        mine = [r for r in results if r.model == model]
        if scenario == "single-stream":
            r = mine[0]
            lines.append(f"{model}: single-stream p90 latency {r.latency_ms.p90:.3f} ms ({r.precision})")
        else:
            best = max(mine, key=lambda r: r.throughput_ips)
            lines.append(f"{model}: offline {best.throughput_ips:,.0f} images/s (batch {best.batch_size}, "
                         f"{best.streams} in flight, {best.precision})")
    return lines
