"""The timing harness: prepared inputs, warm-up, interleaved rounds, and the statistics of the samples.

Every variant (model x backend) of a comparison is loaded first, then timed in interleaved rounds:
each round gives every variant a short block of iterations, so a burst of noise on this shared
machine hits all of them alike instead of skewing whichever happened to run during it.
"""
from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rnopt.backends.base import ModelInput, Session
from rnopt.environment import snapshot
from rnopt.errors import RnoptError
from rnopt.machine_load import load_warning
from rnopt.results import BenchResult, LatencyStats
from rnopt.spec import VariantSpec

NOISY_CV = 0.10
# Each round gives a variant one block: a pause, a couple of untimed runs, then timed runs for at least
# BLOCK_ITERATIONS and BLOCK_TIME_S. Runtimes keep their worker threads spinning for a while after a
# call (ONNX Runtime, OpenMP); on a small machine those threads steal the cores of whichever variant
# runs next. Measured on 2 cores, ResNet-20 batch 1, ORT and PyTorch interleaved: PyTorch p50 4.2-5.6 ms
# with no pause, 2.3-2.4 ms with a 50-100 ms pause (2.35 ms alone); ORT 0.46-0.49 ms (0.46 alone).
SETTLE_S = 0.05
BLOCK_WARMUP = 2
BLOCK_ITERATIONS = 5
BLOCK_TIME_S = 0.1


@dataclass
class BenchConfig:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    warmup: int = 10
    iterations: int = 50
    min_time: float = 1.0  # seconds of timed runs per variant and batch size, at least
    memory: bool = False  # also measure each variant's memory in a process of its own (a few seconds each)

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b <= 0 for b in self.batch_sizes):
            raise RnoptError(f"batch sizes must be positive integers, got {self.batch_sizes}")
        if self.warmup < 0 or self.iterations <= 0 or self.min_time < 0:
            raise RnoptError("--warmup must be >= 0, --iterations > 0 and --min-time >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchConfig":
        return cls(**data)


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
    for _ in range(BLOCK_WARMUP):
        session.run(prepared)
    samples: list[float] = []
    while len(samples) < BLOCK_ITERATIONS or sum(samples) < BLOCK_TIME_S:
        samples.append(session.timed_run(prepared))
    return samples


def bench_variants(variants: list[Variant], config: BenchConfig,
                   on_round: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Time every variant at every batch size; variants are interleaved within a batch size."""
    results: dict[tuple[int, int], BenchResult] = {}  # (variant index, batch size) -> result
    rng = np.random.default_rng(0)
    for batch in config.batch_sizes:
        prepared, first_ms = [], []
        for v in variants:
            data = rng.standard_normal((batch, 3, v.input_size, v.input_size), dtype=np.float32)
            inputs = v.session.prepare(data)
            first_ms.append(v.session.timed_run(inputs) * 1e3)
            for _ in range(config.warmup):
                v.session.run(inputs)
            prepared.append(inputs)
        busy = load_warning()  # checked while nothing of ours runs
        samples: list[list[float]] = [[] for _ in variants]
        while any(len(s) < config.iterations or sum(s) < config.min_time for s in samples):
            for v, inputs, s in zip(variants, prepared, samples):
                if len(variants) > 1:
                    time.sleep(SETTLE_S)
                s.extend(_block(v.session, inputs))
            if on_round:
                on_round(f"batch {batch}: {min(len(s) for s in samples)} iterations")
        for i, (v, s, f) in enumerate(zip(variants, samples, first_ms)):
            results[(i, batch)] = _result(v, batch, s, f)
            results[(i, batch)].warnings += [busy] if busy else []
    return list(results.values())


def _result(v: Variant, batch: int, samples: list[float], first_ms: float) -> BenchResult:
    stats = latency_stats(samples)
    cv = stats.stdev / stats.mean if stats.mean else 0.0
    result = BenchResult(
        model=v.label, backend=v.session.backend, device=v.session.device, precision=v.session.precision,
        batch_size=batch, threads=v.session.threads, iterations=len(samples), latency_ms=stats, cv=cv,
        throughput_ips=batch * v.session.streams * 1e3 / stats.mean, total_time_s=float(sum(samples)),
        model_size_bytes=v.model_size_bytes, load_time_s=v.session.load_time_s, first_inference_ms=first_ms,
        streams=v.session.streams, settings=v.session.describe(), peak_rss_mb=peak_rss_mb(),
        peak_gpu_mb=v.session.peak_device_memory_mb(),
        samples_ms=[round(x * 1e3, 4) for x in samples], spec_id=v.spec.id)
    result.warnings = result_warnings(result)
    return result


def summarize_warnings(results: list[BenchResult]) -> list[str]:
    """One line per kind of problem across all results, for the screen and the report's top level."""
    noisy = [r for r in results if r.cv > NOISY_CV]
    lines = []
    if noisy:
        worst = max(noisy, key=lambda r: r.cv)
        lines.append(f"noisy measurement: coefficient of variation above {NOISY_CV:.0%} for {len(noisy)} of "
                     f"{len(results)} results (worst {worst.cv:.0%}, {worst.model} batch {worst.batch_size}); "
                     f"compare medians, or rerun on a quieter machine")
    lines += sorted({w for r in results for w in r.warnings if not w.startswith("noisy")})
    return lines


def result_warnings(result: BenchResult) -> list[str]:
    warnings = []
    if result.cv > NOISY_CV:
        warnings.append(f"noisy measurement: coefficient of variation {result.cv:.0%} > {NOISY_CV:.0%}")
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
