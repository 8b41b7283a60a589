"""The typed record: one unit for accuracy, specs as VariantSpec, older schemas read in today's shape, and the
record's own save/Markdown/HTML without the compute code importing a renderer."""
import json
import subprocess
import sys

import pytest

import rnopt
from rnopt.errors import RnoptError
from rnopt.results import (SCHEMA_VERSION, AccuracyAwareResult, Candidate, QuantizeResult, Record, RevertStep,
                           SearchResult)

# A schema-4 tune: top-1 in points (91.3), as schema 4 wrote tune's, accuracy-aware int8's and sensitivity's scores.
V4_TUNE = {
    "schema_version": 4, "kind": "tune", "command": "rnopt tune",
    "searches": [{"objective": "latency", "batch_size": 1, "bound": "top-1 drop ≤ 1 points", "measure": "top-1",
                  "data": "cifar10-val", "images": 300, "reference": "model.onnx", "reference_id": "a",
                  "reference_score": 91.5,
                  "candidates": [{"spec_id": "a", "label": "model.onnx", "score": 91.5, "drop": 0.0, "met": True},
                                 {"spec_id": "b", "label": "int8", "score": 91.0, "drop": 0.5, "met": True}]}],
    "quantizations": [{"input": "m.onnx", "output": "q.onnx", "method": "minmax", "calib_data": "cifar10-val",
                       "calib_size": 100, "format": "QDQ", "per_channel": True, "activation_type": "QUInt8",
                       "weight_type": "QInt8", "size_before_bytes": 10, "size_after_bytes": 5,
                       "quantize_time_s": 1.0,
                       "accuracy_aware": {"toolkit": "onnxruntime", "measure": "top-1", "bound": "b", "max_drop": 2.0,
                                          "drop_type": "relative", "data": "v", "images": 10, "float_score": 80.0,
                                          "int8_score": 60.0, "final_score": 79.0, "final_drop": 1.25, "met": True,
                                          "layers_quantized": 3, "kept_float": ["c"],
                                          "steps": [{"step": 1, "target": "t", "nodes": ["c"], "score": 79.0,
                                                     "drop": 1.25, "kept": True}],
                                          "test_data": "t", "test_float_score": 81.0, "test_int8_score": 61.0,
                                          "test_score": 80.0}}],
    "sensitivity": [{"float_model": "m", "int8_model": "q", "data": "v", "images": 5, "measure": "cosine",
                     "float_score": 1.0, "int8_score": 0.98, "ground_truth_images": 5,
                     "layers": [{"tensor": "t", "kind": "activation", "order": 0, "nodes": [], "module": "",
                                 "sqnr_db": 20.0, "score_change": 0.01}]}],
}


def test_older_records_are_read_with_every_accuracy_figure_a_fraction():
    record = Record.from_dict(V4_TUNE)
    search = record.searches[0]
    assert search.reference_score == pytest.approx(0.915)
    assert [(c.score, c.drop) for c in search.candidates] == [pytest.approx((0.915, 0.0)), pytest.approx((0.91, 0.005))]
    aware = record.quantizations[0].accuracy_aware
    assert (aware.float_score, aware.int8_score, aware.final_score) == pytest.approx((0.80, 0.60, 0.79))
    assert (aware.final_drop, aware.max_drop) == pytest.approx((0.0125, 0.02))  # relative: % became a fraction
    assert (aware.steps[0].score, aware.steps[0].drop) == pytest.approx((0.79, 0.0125))
    assert (aware.test_float_score, aware.test_score) == pytest.approx((0.81, 0.80))
    relative_cosine = json.loads(json.dumps(V4_TUNE))
    aware_cosine = relative_cosine["quantizations"][0]["accuracy_aware"]
    aware_cosine.update(measure="cosine", float_score=1.0, final_score=0.985, final_drop=1.5)
    aware_cosine = Record.from_dict(relative_cosine).quantizations[0].accuracy_aware
    assert (aware_cosine.final_score, aware_cosine.final_drop) == pytest.approx((0.985, 0.015))  # % of float's
    cosine = record.sensitivity[0]  # a cosine was never in points: read as it was
    assert (cosine.int8_score, cosine.layers[0].score_change) == (0.98, 0.01)
    # a file of today's schema is read as it is written
    assert Record.from_dict({**V4_TUNE, "schema_version": SCHEMA_VERSION}).searches[0].reference_score == 91.5


def test_older_details_land_in_the_typed_field_of_their_kind():
    compare = Record.from_dict({"schema_version": 4, "kind": "compare", "details": {
        "rows": [{"key": "m", "metric": "top-1", "baseline": 0.9, "current": 0.8, "change": -0.1, "noise": None,
                  "verdict": "less accurate"}], "regressions": ["m lost 10.00 points of top-1"]}})
    assert compare.comparison.rows[0].verdict == "less accurate" and compare.comparison.regressions
    merged = Record.from_dict({"schema_version": 3, "kind": "report", "specs": [{"id": "x", "path-era": True}],
                               "details": {"sources": ["a.json"], "commands": ["rnopt run"],
                                           "models": [{"name": "resnet20_cifar10"}]}})
    assert merged.merged.sources == ["a.json"] and merged.merged.models[0].name == "resnet20_cifar10"
    assert merged.specs == []  # schema 3's ids were of another scheme: nothing of today rebuilds from them


def test_specs_are_typed_and_round_trip_with_their_ids(fp32_onnx, tmp_path):
    spec = rnopt.plan([rnopt.artifact(str(fp32_onnx))], runtimes=["onnxruntime"])[0]
    record = Record("bench", specs=[spec])
    payload = record.to_dict()
    assert payload["specs"][0]["id"] == spec.id
    again = Record.from_dict(json.loads(json.dumps(payload)))
    assert again.specs == [spec] and again.spec(spec.id) == spec
    with pytest.raises(RnoptError, match="no spec 'nope'"):
        again.spec("nope")
    payload["specs"][0]["runtime"] = "not-a-runtime"
    with pytest.raises((TypeError, ValueError), match="not-a-runtime"):
        Record.from_dict(payload)


def test_a_record_saves_and_renders_itself(tmp_path):
    aware = AccuracyAwareResult("onnxruntime", "top-1", "top-1 drop ≤ 1 points", 0.01, "absolute", "cifar10-val",
                                100, 0.9132, 0.85, 0.905, 0.0082, True, 20, ["conv"],
                                [RevertStep(1, "t", ["conv"], 0.905, 0.0082, True)])
    quantized = QuantizeResult("m.onnx", "q.onnx", "minmax", "cifar10-val", 100, "QDQ", True, "QUInt8", "QInt8", 10, 5,
                               1.0, accuracy_aware=aware)
    search = SearchResult("latency", 1, "top-1 drop ≤ 1 points", "top-1", "cifar10-val", 300, "m", "a", 0.9132,
                          [Candidate("a", "m", 0.9132, 0.0, True)])
    record = Record("tune", quantizations=[quantized], searches=[search])
    path = record.save(tmp_path / "r.json")
    assert Record.from_dict(json.loads(path.read_text())).searches[0].reference_score == 0.9132
    with pytest.raises(RnoptError, match="already exists"):
        record.save(path)
    markdown = record.to_markdown()
    assert "91.32" in markdown and "+0.82" in markdown  # fractions shown in points, once, by the renderer
    assert "9132" not in markdown and "0.9132" not in markdown
    assert record.to_html().lstrip().lower().startswith("<!doctype html>")


def test_results_and_compute_code_never_import_a_renderer():
    code = ("import sys, rnopt, rnopt.results, rnopt.pipeline, rnopt.search, rnopt.api; "
            "print([m for m in sys.modules if m.startswith('rnopt.report.') and m.split('.')[-1] in "
            "('html', 'markdown', 'document', 'plots')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rnopt_report_renders_every_kind_rnopt_writes(cli, tmp_path):
    from rnopt.report.loading import KINDS
    from rnopt.results import EmbedSummary, MetricChange, RunComparison

    files = {"models": rnopt.api.describe_models(), "backends": rnopt.api.describe_runtimes(),
             "compare": Record("compare", comparison=RunComparison(
                 [MetricChange("m [onnxruntime]", "top-1", 0.91, 0.89, -0.02, None, "less accurate")],
                 ["m [onnxruntime] lost 2.00 points of top-1"])),
             "embed": Record("embed", embedded=EmbedSummary("vectors.npz", 12, 64, "onnxruntime", "fp32", 8, 300.0,
                                                            120.0, ["bad.jpg: not an image"]))}
    assert set(files) <= set(KINDS)
    for kind, record in files.items():
        record.save(tmp_path / f"{kind}.json")
    r = cli("report", *[tmp_path / f"{kind}.json" for kind in files], "-o", tmp_path / "all.md")
    assert r.code == 0, r.err
    text = (tmp_path / "all.md").read_text()
    assert "resnet20_cifar10" in text and "onnxruntime" in text  # the catalog and the runtimes
    assert "less accurate" in text and "lost 2.00 points of top-1" in text  # the comparison and its regression
    assert "vectors.npz" in text and "300" in text  # the embedding summary


def test_the_command_line_reaches_records_without_a_parameter():
    from rnopt.results import invoked_as

    assert Record("bench").command == ""  # a plain API call
    with invoked_as("rnopt bench m.onnx"):
        assert Record("bench").command == "rnopt bench m.onnx"
    assert Record("bench").command == ""
    import inspect

    for verb in ("export", "optimize", "quantize", "bench", "evaluate", "embed", "sensitivity", "build"):
        assert "command" not in inspect.signature(getattr(rnopt, verb)).parameters
    assert "command" not in {f for f in rnopt.RunOptions.__dataclass_fields__} | set(rnopt.TuneOptions.__dataclass_fields__)
