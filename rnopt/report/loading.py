"""Reading rnopt's JSON files back into result dataclasses, and merging several into one `ReportData`.

Every renderer (Markdown, HTML) works from a `ReportData`, whether it comes from one `rnopt run` or
from a dozen bench/eval files, so no figure is computed twice.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnopt.environment import Environment
from rnopt.errors import RnoptError
from rnopt.fileio import readable_file
from rnopt.report.results import (
    SCHEMA_VERSION,
    BenchResult,
    Comparison,
    EvalResult,
    ExportResult,
    OptimizeResult,
    QuantizeResult,
)

KINDS = ("export", "optimize", "quantize", "bench", "eval", "run", "report")


@dataclass
class EvalSection:
    dataset: str
    results: list[EvalResult]
    comparisons: list[Comparison]


@dataclass
class ReportData:
    sources: list[str] = field(default_factory=list)
    environments: list[Environment] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    exports: list[ExportResult] = field(default_factory=list)
    optimizations: list[OptimizeResult] = field(default_factory=list)
    quantizations: list[QuantizeResult] = field(default_factory=list)
    bench: list[BenchResult] = field(default_factory=list)
    evals: list[EvalSection] = field(default_factory=list)

    @property
    def title(self) -> str:
        names = [m["name"] for m in self.models] or sorted({r.model for r in self.bench})[:3]
        return "rnopt report: " + (", ".join(names) if names else "results")

    def merge(self, other: "ReportData") -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))
        self.warnings = list(dict.fromkeys(self.warnings))


def build(cls: type, data: Any) -> Any:
    """Instantiate dataclass `cls` from plain JSON data, recursing into nested dataclasses and lists.

    Unknown keys are ignored, so files from a newer rnopt with extra fields still load.
    """
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, v) for v in value]
    if dataclasses.is_dataclass(hint):
        return build(hint, value)
    return value


def from_payload(payload: dict[str, Any], source: str) -> ReportData:
    if not isinstance(payload, dict) or payload.get("schema_version") != SCHEMA_VERSION:
        raise RnoptError(f"{source} is not an rnopt result file (schema_version {SCHEMA_VERSION} expected)")
    kind = payload.get("kind")
    if kind not in KINDS:
        raise RnoptError(f"{source} has unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        return _sections(payload, kind, source)
    except (TypeError, KeyError, ValueError) as exc:
        raise RnoptError(f"{source} is a malformed rnopt {kind} file ({type(exc).__name__}: {exc})") from None


def _sections(payload: dict[str, Any], kind: str, source: str) -> ReportData:
    data = ReportData(sources=[source], commands=[payload["command"]] if payload.get("command") else [],
                      warnings=list(payload.get("warnings", [])))
    if "environment" in payload:
        data.environments.append(build(Environment, payload["environment"]))
    sections = {"export": (ExportResult, data.exports), "optimize": (OptimizeResult, data.optimizations),
                "quantize": (QuantizeResult, data.quantizations)}
    if kind in sections:
        cls, target = sections[kind]
        target.extend(build(cls, r) for r in payload["results"])
    elif kind == "bench":
        data.bench.extend(build(BenchResult, r) for r in payload["results"])
    elif kind == "eval":
        data.evals.append(_eval_section(payload))
    elif kind == "report":  # a merged report written by `rnopt report -o x.json`: lists of each section
        data.commands = list(payload.get("commands", data.commands))
        data.models.extend(payload.get("models", []))
        data.exports.extend(build(ExportResult, r) for r in payload.get("exports", []))
        data.optimizations.extend(build(OptimizeResult, r) for r in payload.get("optimizations", []))
        data.quantizations.extend(build(QuantizeResult, r) for r in payload.get("quantizations", []))
        data.bench.extend(build(BenchResult, r) for r in payload["bench"]["results"])
        data.evals.extend(_eval_section(e) for e in payload.get("evals", []))
    else:  # run: one of each section
        data.models.append(payload["model"])
        for key, (cls, target) in sections.items():
            if payload.get(key):
                target.append(build(cls, payload[key]))
        if payload.get("quantize_openvino"):  # NNCF's int8, beside ORT's
            data.quantizations.append(build(QuantizeResult, payload["quantize_openvino"]))
        data.bench.extend(build(BenchResult, r) for r in payload["bench"]["results"])
        if payload.get("eval"):
            data.evals.append(_eval_section(payload["eval"]))
    return data


def _eval_section(section: dict[str, Any]) -> EvalSection:
    return EvalSection(section["dataset"], [build(EvalResult, r) for r in section["results"]],
                       [build(Comparison, c) for c in section.get("comparisons", [])])


def load_results(paths: list[str | Path]) -> ReportData:
    merged = ReportData()
    for path in paths:
        p = readable_file(path, "result file")
        try:
            payload = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RnoptError(f"{p} is not JSON ({exc}): give files written by --json or `rnopt run`") from None
        merged.merge(from_payload(payload, str(p)))
    return merged
