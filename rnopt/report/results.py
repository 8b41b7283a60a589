"""Result dataclasses: the JSON contract. Tables (terminal and Markdown) are rendered from these."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rnopt.environment import Environment, snapshot

SCHEMA_VERSION = 1


@dataclass
class LatencyStats:
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    stdev: float


@dataclass
class BenchResult:
    model: str
    backend: str
    device: str
    precision: str
    batch_size: int
    threads: int
    iterations: int
    latency_ms: LatencyStats
    cv: float
    throughput_ips: float
    total_time_s: float
    model_size_bytes: int | None = None
    load_time_s: float | None = None
    first_inference_ms: float | None = None
    streams: int = 1  # batches in flight per timed call; throughput counts all of them
    settings: str = ""  # backend-specific: provider, performance hint, memory format...
    peak_rss_mb: float | None = None  # the process's peak resident memory when this result was taken
    peak_gpu_mb: float | None = None  # the process's peak GPU memory allocated (PyTorch on CUDA)
    # Measured in a fresh process running only this variant (rnopt/memory.py): its peak resident memory,
    # and how much of it loading and running this variant added over the bare runtime.
    memory_process_mb: float | None = None
    memory_mb: float | None = None
    memory_gpu_mb: float | None = None  # that process's peak GPU memory (PyTorch on CUDA)
    warnings: list[str] = field(default_factory=list)
    samples_ms: list[float] = field(default_factory=list)  # every timed iteration, for distributions

    @property
    def runtime(self) -> str:
        """"torch fp16", or "torch fp16 cuda" off the CPU: what ran the variant, for tables and headlines."""
        return f"{self.backend} {self.precision}" + (f" {self.device}" if self.device != "cpu" else "")


@dataclass
class ExportCheck:
    batch_size: int
    max_abs_diff: float
    top1_agreement: float


@dataclass
class ExportResult:
    model: str
    output: str
    opset: int
    dynamic_batch: bool
    atol: float
    checks: list[ExportCheck]
    passed: bool
    weights_sha256: str | None
    size_bytes: int
    export_time_s: float


@dataclass
class OptimizeResult:
    input: str
    output: str
    level: str
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    max_abs_diff: float
    top1_agreement: float


@dataclass
class QuantizeResult:
    input: str
    output: str
    method: str
    calib_data: str
    calib_size: int
    format: str
    per_channel: bool
    activation_type: str
    weight_type: str
    size_before_bytes: int
    size_after_bytes: int
    quantize_time_s: float


@dataclass
class EvalResult:
    model: str
    top1: float
    top5: float
    n: int
    backend: str = ""
    precision: str = ""


@dataclass
class Comparison:
    reference: str
    candidate: str
    top1_delta: float
    agreement: float
    mean_abs_logit_diff: float
    max_abs_logit_diff: float


@dataclass
class Report:
    """Every JSON file rnopt writes: kind + environment + the sections for that kind."""

    kind: str
    environment: Environment = field(default_factory=snapshot)
    command: str = ""
    warnings: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "command": self.command,
            "environment": asdict(self.environment),
            "warnings": list(self.warnings),
        }
        for key, value in self.sections.items():
            payload[key] = _plain(value)
        return payload


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value
