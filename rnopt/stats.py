"""The statistics of timing samples: the confidence interval of a median, drift between rounds, outliers.

A median's 95 % interval comes from order statistics: the number of samples under the true median is
Binomial(n, 1/2), so the samples of rank n/2 -+ 1.96 * sqrt(n) / 2 bound it, whatever the distribution
of the latencies (normal approximation to the binomial; exact enough from a dozen samples on). This is
what makes a median precise even when the coefficient of variation is large: a few scheduler outliers
per thousand calls widen the cv, not the median's interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CI_METHOD = "order statistics (binomial), 95 %"
CONFIDENCE = 0.95
OUTLIER_FACTOR = 3.0  # a call this many times slower than the median counts as an outlier
MIN_SAMPLES_FOR_CI = 6  # below this the interval is the whole range of the samples


@dataclass(frozen=True)
class MedianCI:
    median: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the interval's width relative to the median (0.01 = "± 1 %")."""
        return (self.high - self.low) / 2 / self.median if self.median else math.inf


def median_ci(samples: list[float] | np.ndarray, confidence: float = CONFIDENCE) -> MedianCI:
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 0:
        raise ValueError("no samples")
    median = float(np.median(x))
    if n < MIN_SAMPLES_FOR_CI:
        return MedianCI(median, float(x[0]), float(x[-1]))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = z * math.sqrt(n) / 2
    low_rank, high_rank = max(1, math.floor(n / 2 - spread)), min(n, math.ceil(n / 2 + spread + 1))
    return MedianCI(median, float(x[low_rank - 1]), float(x[high_rank - 1]))


@dataclass(frozen=True)
class Drift:
    change: float  # median of the last third of the round medians over the first third's, minus 1
    threshold: float  # the relative change that round-to-round noise alone could explain (3 standard errors)

    @property
    def significant(self) -> bool:
        return abs(self.change) > self.threshold


# Thirds of at least 4 rounds: with 3, one disturbed round moves a third's median (measured: a default
# `rnopt run` that converged to +-1 % in 9 rounds was flagged for its first two, disturbed, rounds).
MIN_DRIFT_ROUNDS = 12


def drift(round_medians: list[float]) -> Drift | None:
    """The first third of the rounds against the last third (None with fewer than MIN_DRIFT_ROUNDS rounds).

    Interleaved rounds hit every variant alike with short bursts of noise; a change that persists from
    the start of a run to its end (a busy neighbour that started half-way, thermal throttling) shows as
    a step between the thirds. Whether a step is more than noise is judged against the spread of
    successive round medians (robust: a single step barely moves their median difference), since calls
    within one round are not independent of each other on a shared machine.
    """
    rounds = np.asarray(round_medians, dtype=np.float64)
    third = len(rounds) // 3
    if len(rounds) < MIN_DRIFT_ROUNDS:
        return None
    first, last, level = np.median(rounds[:third]), np.median(rounds[-third:]), np.median(rounds)
    half = len(rounds) // 2
    # The quieter half sets the noise: a machine that turns erratic half-way has changed state, which is drift.
    spread = min(np.median(np.abs(np.diff(rounds[:half]))), np.median(np.abs(np.diff(rounds[half:]))))
    one_round = 1.4826 * spread / math.sqrt(2) / level  # sd of one round's median
    standard_error = 1.2533 * one_round / math.sqrt(third) * math.sqrt(2)  # of the difference of two thirds' medians
    return Drift(float(last / first - 1), float(3 * standard_error))


def outlier_share(samples: list[float] | np.ndarray, factor: float = OUTLIER_FACTOR) -> float:
    """The fraction of calls slower than `factor` times the median."""
    x = np.asarray(samples, dtype=np.float64)
    return float((x > factor * np.median(x)).mean()) if len(x) else 0.0


def ratio_interval(numerator: MedianCI, denominator: MedianCI) -> tuple[float, float]:
    """A conservative interval for numerator.median / denominator.median from the two intervals."""
    return numerator.low / denominator.high, numerator.high / denominator.low
