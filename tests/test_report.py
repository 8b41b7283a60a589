"""Reports: merging JSON files, Markdown and HTML from the same content, escaping, regression gate, browser."""
import copy
import json
import shutil
from pathlib import Path

import pytest

from rnopt.report.compare import latency_verdict
from rnopt.report.html import to_html
from rnopt.report.loading import from_payload
from rnopt.report.plots import pareto_front


@pytest.fixture(scope="module")
def run_report(tmp_path_factory):
    """A real `rnopt run` (small: 500 test images, short timing) shared by the report tests."""
    from rnopt.cli import main

    out = tmp_path_factory.mktemp("runs")
    code = main(["run", "--output", str(out), "--limit", "500", "--batch-size", "1,4", "--iterations", "20",
                 "--min-time", "0.1", "--warmup", "2", "--quiet"])
    assert code == 0
    [folder] = list(out.iterdir())
    return folder


def _payload(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_run_writes_html_md_json_from_the_same_content(run_report):
    html, md = (run_report / "report.html").read_text(), (run_report / "report.md").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html and "http" not in html.split("</style>")[0]
    for text in ("Recommended:", "Summary", "Latency", "Accuracy on cifar10[500]", "Export check",
                 "Quantization settings", "Environment", "rnopt run", "Read on the test set: rnopt tune"):
        assert text in html and text.replace("[", "\\[").replace("]", "\\]") in md, text
    assert html.count('<figure class="plot"') == 5  # latency b1, b4, Pareto, batch sweep, memory
    assert "JPEG" in md and "avx" in md.lower()
    assert "memory MB (batch 1)" in md and "in a process of its own" in md


def test_samples_are_kept_for_distributions(run_report):
    import numpy as np

    for result in _payload(run_report)["bench"]:
        samples = np.asarray(result["samples_ms"])
        assert len(samples) == result["iterations"] and len(set(samples.tolist())) > 1
        stats = result["latency_ms"]
        assert samples.min() == pytest.approx(stats["min"], abs=1e-3) and samples.max() == pytest.approx(stats["max"], abs=1e-3)
        assert np.median(samples) == pytest.approx(stats["p50"], rel=1e-3)
        assert np.percentile(samples, 90) == pytest.approx(stats["p90"], rel=1e-3)
        assert samples.mean() == pytest.approx(stats["mean"], rel=1e-3)


def test_headline_recommends_fast_variant_within_accuracy_budget(run_report):
    data = from_payload(_payload(run_report), "run")
    from rnopt.report.headline import recommend

    h = recommend(data)
    assert h.top1_delta is not None and h.top1_delta >= -0.01
    fastest_ok = min((r for r in data.bench if r.batch_size == 1 and r.model != "resnet20_cifar10 (PyTorch)"),
                     key=lambda r: r.latency_ms.p50)
    assert h.variant.latency_ms.p50 == fastest_ok.latency_ms.p50
    speedups = {base.runtime: base.speedup for base in h.baselines}
    assert speedups["torch"] > 1  # against every runtime's first fp32 variant, its own runtime's too, by name
    assert set(speedups) == {r.backend for r in data.bench if r.precision == "fp32"}


def test_report_merges_bench_and_eval_files(cli, tmp_path, fp32_onnx, int8_onnx):
    assert cli("bench", fp32_onnx, int8_onnx, "--batch-size", "1,2", "--iterations", "5", "--min-time", "0",
               "--warmup", "1", "--json", tmp_path / "b.json").code == 0
    assert cli("eval", fp32_onnx, int8_onnx, "--limit", "200", "--json", tmp_path / "e.json").code == 0
    r = cli("report", tmp_path / "b.json", tmp_path / "e.json", "-o", tmp_path / "r.html")
    assert r.code == 0, r.err
    html = (tmp_path / "r.html").read_text()
    assert "Recommended:" in html and html.count('<figure class="plot"') == 5
    assert cli("report", tmp_path / "b.json", tmp_path / "e.json", "-o", tmp_path / "r.md").code == 0
    assert "| model |" in (tmp_path / "r.md").read_text()
    assert cli("report", tmp_path / "b.json", "-o", tmp_path / "r.json").code == 0
    merged = json.loads((tmp_path / "r.json").read_text())
    assert merged["kind"] == "report" and len(merged["bench"]) == 4
    # a merged file is itself an input: to another report, or as a compare-runs baseline
    assert cli("report", tmp_path / "r.json", tmp_path / "e.json", "-o", tmp_path / "again.md").code == 0
    assert cli("compare-runs", tmp_path / "r.json", tmp_path / "b.json").code == 0


def test_text_from_inputs_is_escaped(run_report, tmp_path):
    payload = _payload(run_report)
    evil = '<img src=x onerror="alert(1)">&'
    payload["bench"][0]["model"] = evil
    payload["evals"][0]["results"][0]["model"] = evil
    payload["command"] = "rnopt run </pre><script>alert(2)</script>"
    payload["warnings"] = ["<script>alert(3)</script>"]
    payload["model"]["name"] = "<script>alert(4)</script>"  # the title and the first heading
    for result in payload["bench"]:  # every variant named so: the headline names one
        result["model"] = evil
    html = to_html(from_payload(payload, "evil"))
    assert evil not in html and "<script>" not in html and "<img" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in html
    assert "<title>rnopt report: &lt;script&gt;alert(4)&lt;/script&gt;</title>" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html  # the warning, escaped
    headline = html.split('class="headline"')[1].split("</p>")[0]
    assert "Recommended: &lt;img" in headline


def test_bad_report_inputs(cli, tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "y.json").write_text(json.dumps({"schema_version": 99, "kind": "bench"}))
    for name, message in (("x.json", "is not JSON"), ("y.json", "written by a newer rnopt (schema_version 99"),
                          ("missing.json", "does not exist")):
        r = cli("report", tmp_path / name, "-o", tmp_path / "out.html")
        assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1
        assert not (tmp_path / "out.html").exists()


def test_pareto_front():
    assert pareto_front([(1, 80), (2, 82), (3, 81), (0.5, 70), (2, 79)]) == [(0.5, 70), (1, 80), (2, 82)]


# ---- compare-runs -------------------------------------------------------------------------------------

def test_identical_runs_pass_the_gate(cli, run_report, tmp_path):
    r = cli("compare-runs", run_report / "report.json", run_report / "report.json")
    assert r.code == 0 and "no regression" in r.out and "slower" not in r.out
    # a faster current run passes too, and the same pair the other way round fails
    payload = _payload(run_report)
    for result in payload["bench"]:
        result["p50_ci"] = 0.01
    (tmp_path / "base.json").write_text(json.dumps(payload))
    (tmp_path / "fast.json").write_text(json.dumps(_slowed(payload, 0.5)))
    r = cli("compare-runs", tmp_path / "base.json", tmp_path / "fast.json")
    assert r.code == 0 and "faster" in r.out
    assert cli("compare-runs", tmp_path / "fast.json", tmp_path / "base.json").code == 1


def _slowed(payload: dict, factor: float) -> dict:
    slow = copy.deepcopy(payload)
    for result in slow["bench"]:
        for key in result["latency_ms"]:
            result["latency_ms"][key] *= factor
        result["samples_ms"] = [s * factor for s in result["samples_ms"]]
        result["p50_ci_ms"] = [s * factor for s in result["p50_ci_ms"]]
    return slow


def test_slower_and_less_accurate_runs_fail_the_gate(cli, run_report, tmp_path):
    payload = _payload(run_report)
    for result in payload["bench"]:
        result["p50_ci"] = 0.01  # a quiet machine: the noise band stays far below the 50 % slow-down
    (tmp_path / "base.json").write_text(json.dumps(payload))
    slow = _slowed(payload, 1.5)
    slow["evals"][0]["results"][2]["top1"] -= 0.02
    slow["environment"]["versions"]["onnxruntime"] = "0.0.1"
    (tmp_path / "cur.json").write_text(json.dumps(slow))
    r = cli("compare-runs", tmp_path / "base.json", tmp_path / "cur.json", "--json", tmp_path / "c.json")
    assert r.code == 1
    assert "regression" in r.err and "slower" in r.out and "less accurate" in r.out
    assert "environments differ (onnxruntime" in r.err
    gate = json.loads((tmp_path / "c.json").read_text())
    assert len(gate["comparison"]["regressions"]) == len(payload["bench"]) + 1
    r = cli("compare-runs", tmp_path / "base.json", tmp_path / "cur.json", "--latency-tolerance", "60",
            "--accuracy-tolerance", "3")
    assert r.code == 0, r.err


def test_latency_change_within_noise_is_not_a_regression(run_report):
    data = from_payload(_payload(run_report), "base")
    base = copy.deepcopy(data.bench[0])
    cur = copy.deepcopy(base)
    cur.latency_ms.p50 *= 1.2
    base.p50_ci = cur.p50_ci = 0.15  # each median known to +-15 %: a 20 % change can be noise
    assert latency_verdict(base, cur, 0.10).verdict == "within noise"
    base.p50_ci = cur.p50_ci = 0.01
    assert latency_verdict(base, cur, 0.10).verdict == "slower"
    assert latency_verdict(cur, base, 0.10).verdict == "faster"
    # version-1 results have no interval: the noise comes from the cv and the iteration count
    base.p50_ci = cur.p50_ci = None
    base.cv = cur.cv = 1.5  # a very noisy machine
    base.iterations = cur.iterations = 20
    assert latency_verdict(base, cur, 0.10).verdict == "within noise"
    base.cv = cur.cv = 0.01
    assert latency_verdict(base, cur, 0.10).verdict == "slower"


def test_memory_growth_fails_the_gate_beyond_tolerance_and_floor(cli, run_report, tmp_path):
    payload = _payload(run_report)
    (tmp_path / "base.json").write_text(json.dumps(payload))
    grown = copy.deepcopy(payload)
    first = grown["bench"][0]
    assert first["memory_mb"] > 0  # `rnopt run` measures memory per variant
    first["memory_mb"] = first["memory_mb"] * 1.3 + 3
    (tmp_path / "cur.json").write_text(json.dumps(grown))
    r = cli("compare-runs", tmp_path / "base.json", tmp_path / "cur.json")
    assert r.code == 1 and "more memory" in r.out and "1 regression(s)" in r.err and "more memory" in r.err
    assert cli("compare-runs", tmp_path / "base.json", tmp_path / "cur.json",
               "--memory-tolerance", "100").code == 0


# ---- the browser ----------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_html_report_renders_in_headless_chromium(run_report, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev dependency) not installed")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync", "--disable-quic"]
    errors, requests = [], []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((run_report / "report.html").resolve().as_uri())
        plots = page.query_selector_all("figure.plot")
        sizes = {f.get_attribute("data-plot"): (f.query_selector("svg").bounding_box(),
                                                len(f.query_selector_all("svg path, svg use")))
                 for f in plots}
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests  # works offline: nothing fetched
    assert set(sizes) == {"latency-b1", "latency-b4", "pareto", "batch-sweep", "memory"}
    for name, (box, marks) in sizes.items():
        assert box["width"] > 300 and box["height"] > 100 and marks > 5, name
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_gpu_memory_column_only_where_a_gpu_ran(run_report):
    from rnopt.report.tables import bench_table

    results = from_payload(_payload(run_report), "run").bench
    assert "peak GPU MB" not in bench_table(results).headers
    gpu = copy.deepcopy(results[0])
    gpu.device, gpu.peak_gpu_mb = "cuda", 1234.4
    table = bench_table(results + [gpu])
    column = table.headers.index("peak GPU MB")
    assert table.rows[-1][column] == "1,234" and table.rows[0][column] == ""
