"""Reading rnopt's JSON files back into result dataclasses, and merging several into one `ReportData`.

Every renderer (Markdown, HTML) works from a `ReportData`, whether it comes from one `rnopt run` or
from a dozen bench/eval files, so no figure is computed twice.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnopt.environment import Environment
from rnopt.errors import RnoptError
from rnopt.fileio import readable_file
from rnopt.results import (
    SCHEMA_VERSION,
    BenchResult,
    Comparison,
    EvalResult,
    EmbeddingSection,
    EmbedSummary,
    EvalSection,
    ExportResult,
    ID_SCHEMES,
    MergedFrom,
    ModelEntry,
    ModelUsed,
    OptimizeResult,
    QuantizeResult,
    Record,
    RunComparison,
    RuntimeEntry,
    SearchResult,
    SensitivityResult,
    build,
)

KINDS = ("export", "optimize", "quantize", "sensitivity", "bench", "eval", "run", "tune", "report", "build", "embed",
         "models", "backends", "compare")  # every kind rnopt writes
READABLE_VERSIONS = (1, 2, 3, 4, SCHEMA_VERSION)
MAX_RESULT_BYTES = 256 * 2**20  # a default `rnopt run` writes under 1 MiB, with every timed sample


@dataclass
class ReportData:
    sources: list[str] = field(default_factory=list)
    environments: list[Environment] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    models: list[ModelUsed] = field(default_factory=list)
    exports: list[ExportResult] = field(default_factory=list)
    optimizations: list[OptimizeResult] = field(default_factory=list)
    quantizations: list[QuantizeResult] = field(default_factory=list)
    bench: list[BenchResult] = field(default_factory=list)
    evals: list[EvalSection] = field(default_factory=list)
    embeddings: list[EmbeddingSection] = field(default_factory=list)
    sensitivity: list[SensitivityResult] = field(default_factory=list)
    searches: list[SearchResult] = field(default_factory=list)
    machines: dict[str, Environment] = field(default_factory=dict)  # a cluster's machine types (--nodes)
    step_times: list[dict[str, float]] = field(default_factory=list)  # per run or tune read: each step's seconds
    catalog: list[ModelEntry] = field(default_factory=list)  # `rnopt models`
    runtimes: list[RuntimeEntry] = field(default_factory=list)  # `rnopt backends`
    comparisons: list[RunComparison] = field(default_factory=list)  # `rnopt compare-runs`
    embedded: list[EmbedSummary] = field(default_factory=list)  # `rnopt embed`
    # The id scheme every file read shares (schema 3: ids of content; 4: files rnopt builds named by recipe), or
    # None (schema 1 and 2 ids hashed paths; or files of two schemes): results join on ids only when it is set.
    id_scheme: int | None = None

    @property
    def stable_ids(self) -> bool:
        return self.id_scheme is not None

    @property
    def title(self) -> str:
        names = [m.name for m in self.models] or sorted({r.model for r in self.bench})[:3]
        return "rnopt report: " + (", ".join(names) if names else "results")

    def merge(self, other: "ReportData") -> None:
        first = not self.sources
        for f in dataclasses.fields(self):
            mine = getattr(self, f.name)
            if isinstance(mine, dict):
                mine.update(getattr(other, f.name))
            elif f.name != "id_scheme":
                mine.extend(getattr(other, f.name))
        self.warnings = list(dict.fromkeys(self.warnings))
        self.id_scheme = other.id_scheme if first or self.id_scheme == other.id_scheme else None


def from_payload(payload: dict[str, Any], source: str) -> ReportData:
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise RnoptError(f"{source} was written by a newer rnopt (schema_version {version}; this one reads "
                         f"{' and '.join(map(str, READABLE_VERSIONS))}): upgrade rnopt to read it")
    if version not in READABLE_VERSIONS:
        raise RnoptError(f"{source} is not an rnopt result file (schema_version "
                         f"{' or '.join(map(str, READABLE_VERSIONS))} expected)")
    kind = payload.get("kind")
    if kind not in KINDS:
        raise RnoptError(f"{source} has unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    try:
        if version == 1:
            return _sections(payload, kind, source)
        data = from_record(Record.from_dict(payload), source)
        data.id_scheme = ID_SCHEMES.get(version)
        return data
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RnoptError(f"{source} is a malformed rnopt {kind} file ({type(exc).__name__}: {exc})") from None


def from_record(record: Record, source: str = "") -> ReportData:
    """One typed record (a file of schema 2 or later, or a record in memory) as report data; a merged report keeps
    its sources' commands and models."""
    merged = record.merged
    return ReportData(sources=[source] if source else [], environments=[record.environment],
                      commands=list(merged.commands if merged else [record.command] if record.command else []),
                      warnings=list(record.warnings),
                      models=list(merged.models if merged else [record.model] if record.model else []),
                      exports=list(record.exports), optimizations=list(record.optimizations),
                      quantizations=list(record.quantizations), bench=list(record.bench), evals=list(record.evals),
                      embeddings=list(record.embeddings), sensitivity=list(record.sensitivity),
                      searches=list(record.searches), step_times=[record.step_times_s] if record.step_times_s else [],
                      catalog=list(record.catalog), runtimes=list(record.runtimes),
                      comparisons=[record.comparison] if record.comparison else [],
                      embedded=[record.embedded] if record.embedded else [], machines=dict(record.machines))


def to_record(data: ReportData, command: str = "") -> Record:
    """Merged results as one version-2 record of kind "report" (what `rnopt report -o x.json` writes)."""
    environment = data.environments[0] if data.environments else Environment.unrecorded()  # where it was measured
    return Record("report", command, environment, warnings=list(data.warnings), exports=list(data.exports),
                  optimizations=list(data.optimizations), quantizations=list(data.quantizations),
                  bench=list(data.bench), evals=list(data.evals), embeddings=list(data.embeddings),
                  sensitivity=list(data.sensitivity), searches=list(data.searches), catalog=list(data.catalog),
                  runtimes=list(data.runtimes),
                  comparison=data.comparisons[0] if len(data.comparisons) == 1 else None,
                  embedded=data.embedded[0] if len(data.embedded) == 1 else None,
                  merged=MergedFrom(list(data.sources), list(data.commands), list(data.models)),
                  machines=dict(data.machines))


def _sections(payload: dict[str, Any], kind: str, source: str) -> ReportData:
    """A version-1 file: each kind in its own shape."""
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
        data.models.extend(build(ModelUsed, m) for m in payload.get("models", []))
        data.exports.extend(build(ExportResult, r) for r in payload.get("exports", []))
        data.optimizations.extend(build(OptimizeResult, r) for r in payload.get("optimizations", []))
        data.quantizations.extend(build(QuantizeResult, r) for r in payload.get("quantizations", []))
        data.bench.extend(build(BenchResult, r) for r in payload["bench"]["results"])
        data.evals.extend(_eval_section(e) for e in payload.get("evals", []))
    else:  # run: one of each section
        data.models.append(build(ModelUsed, payload["model"]))
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


def machine_results(data: ReportData, machine: str, source: str) -> ReportData:
    """One machine type's timings of a cluster run (--nodes), as if that machine had made the file alone: what
    `compare-runs FILE#TYPE FILE#OTHER` compares."""
    mine = [r for r in data.bench if r.machine == machine]
    if not mine:
        have = sorted({r.machine for r in data.bench if r.machine})
        raise RnoptError(f"{source} has no timings on the machine type {machine} "
                         f"({'its types: ' + ', '.join(have) if have else 'it was not timed with --nodes'})")
    bench = [dataclasses.replace(r, machine=None, model=r.model.removesuffix(f" on {machine}")) for r in mine]
    environments = [data.machines[machine]] if machine in data.machines else data.environments
    return dataclasses.replace(data, bench=bench, environments=environments, machines={})


def load_results(paths: list[str | Path]) -> ReportData:
    merged = ReportData()
    for path in paths:
        p = readable_file(path, "result file")
        if p.stat().st_size > MAX_RESULT_BYTES:
            raise RnoptError(f"{p} is {p.stat().st_size / 2**20:,.0f} MiB: larger than any result file rnopt writes "
                             f"({MAX_RESULT_BYTES // 2**20} MiB at most); give files written by --json or `rnopt run`")
        try:
            payload = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RnoptError(f"{p} is not JSON ({exc}): give files written by --json or `rnopt run`") from None
        except RecursionError:
            raise RnoptError(f"{p} is nested too deeply to be an rnopt result file: give files written by --json "
                             f"or `rnopt run`") from None
        merged.merge(from_payload(payload, str(p)))
    return merged
