"""`rnopt tune`: the search keeps only candidates within the accuracy bound (on validation images), times them
together, and chooses the fastest (the most accurate among those the timing cannot tell apart).

The end-to-end runs use the bundled ResNet-20 on real images, with ONNX Runtime and a few timed calls; the
rule that chooses is also checked on its own, on hand-made timing results.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import damage_script
from rnopt.accuracy import AccuracyBound
from rnopt.artifacts import artifact_for
from rnopt.models import create_model
from rnopt.results import BenchResult, Candidate, Failure, LatencyStats, SearchResult
from rnopt.bench import CUDA_SWEEP_LIMIT
from rnopt.configs import TuneOptions
from rnopt.search import choose, finalists_of, give_verdicts, judge, plan_candidates, sweep_limit
from rnopt.spec import Step, VariantSpec

QUICK = ("--backend", "onnxruntime", "--recipe", "minmax", "--limit", "300", "--iterations", "5",
         "--min-time", "0.05", "--quiet", "--no-knobs")


def _tune(cli, tmp_path: Path, image_folder: Path, *extra: str) -> dict:
    out = tmp_path / "reports"
    r = cli("tune", "--output", out, "--json", tmp_path / "tune.json", "--test-data", image_folder, *QUICK, *extra)
    assert r.code == 0, r.err
    payload = json.loads((tmp_path / "tune.json").read_text())
    (folder,) = out.iterdir()
    assert {"report.json", "report.md", "report.html", "model.onnx", "model.int8-minmax.onnx"} <= \
        {p.name for p in folder.iterdir()}
    report = (folder / "report.md").read_text()
    assert "Chosen by rnopt tune:" in report and "## Search (rnopt tune)" in report
    return payload


def _by_label(payload: dict) -> dict[str, dict]:
    return {c["label"]: c for c in payload["searches"][0]["candidates"]}


def test_tune_chooses_a_faster_int8_model_that_keeps_accuracy(cli, tmp_path, image_folder):
    payload = _tune(cli, tmp_path, image_folder)
    search = payload["searches"][0]
    candidates = _by_label(payload)
    assert set(candidates) == {"model.onnx", "model.fused.onnx", "model.int8-minmax.onnx"}
    assert search["data"].startswith("cifar10-val") and search["images"] == 300  # tuned on validation images
    assert search["reference"] == "model.onnx" and candidates["model.onnx"]["drop"] == 0
    int8 = candidates["model.int8-minmax.onnx"]
    assert int8["met"] and abs(int8["drop"]) < 0.01 and int8["verdict"] == "chosen"
    assert search["chosen_id"] == int8["spec_id"] and Path(search["chosen_file"]).name == "model.int8-minmax.onnx"
    assert int8["p50_ms"] < candidates["model.onnx"]["p50_ms"]
    # The final figures: the float reference and the chosen model on the test data, which tuned nothing.
    (section,) = payload["evals"]
    assert [r["spec_id"] for r in section["results"]] == [candidates["model.onnx"]["spec_id"], int8["spec_id"]]
    assert section["results"][0]["n"] == 18


def test_throughput_search_judges_each_swept_candidate_at_its_best_batch(cli, tmp_path, image_folder):
    payload = _tune(cli, tmp_path, image_folder, "--objective", "throughput", "--batch-size", "4", "--sweep", "16")
    search = payload["searches"][0]
    assert search["objective"] == "throughput" and search["batch_size"] == 4
    for candidate in search["candidates"]:
        results = [r for r in payload["bench"] if r["spec_id"] == candidate["spec_id"]]
        sizes = [r["batch_size"] for r in results]
        assert sizes[0] == 4 and all(b == 2 * a for a, b in zip(sizes, sizes[1:])) and sizes[-1] <= 16
        best = max(results, key=lambda r: r["throughput_ips"])
        assert (candidate["batch_size"], candidate["throughput_ips"]) == (best["batch_size"], best["throughput_ips"])
    chosen = next(c for c in search["candidates"] if c["verdict"] == "chosen")
    others = [c for c in search["candidates"] if c is not chosen]
    assert all(c["verdict"].startswith(("slower", "as fast as the fastest")) for c in others)
    assert all(c["throughput_ips"] < chosen["throughput_ips"] for c in others if c["verdict"].startswith("slower"))


def test_only_throughput_searches_sweep_and_a_gpu_sweeps_by_default():
    cpu = VariantSpec(artifact_for("resnet20_cifar10"), "torch")
    cuda = VariantSpec(artifact_for("resnet20_cifar10"), "torch", "cuda")
    assert sweep_limit(cuda, TuneOptions(objective="throughput")) == CUDA_SWEEP_LIMIT
    assert sweep_limit(cpu, TuneOptions(objective="throughput")) is None
    assert sweep_limit(cpu, TuneOptions(objective="throughput", sweep=64)) == 64
    assert sweep_limit(cuda, TuneOptions(objective="latency")) is None


def test_a_pytorch_only_search_builds_no_int8_files(cli, tmp_path, image_folder):
    out = tmp_path / "reports"
    r = cli("tune", "--backend", "torch", "--limit", "100", "--iterations", "5", "--min-time", "0.05", "--quiet", "--no-knobs",
            "--test-data", image_folder, "--output", out, "--json", tmp_path / "t.json")
    assert r.code == 0, r.err
    payload = json.loads((tmp_path / "t.json").read_text())
    assert [c["label"] for c in payload["searches"][0]["candidates"]] == ["resnet20_cifar10 (PyTorch)"]
    assert payload["quantizations"] == [] and not list(out.glob("*/model.int8*"))


def test_tune_never_times_a_candidate_over_the_bound_and_repairs_int8(cli, tmp_path, image_folder):
    """An outlier channel makes full int8 lose about 20 points: it must not be timed, and accuracy-aware int8
    (layers back to float until the bound holds) must join the search in its place."""
    weights = tmp_path / "damaged.pt"
    torch.save(damage_script().damage(create_model("resnet20_cifar10").module).state_dict(), weights)
    payload = _tune(cli, tmp_path, image_folder, "--weights", weights)
    candidates = _by_label(payload)
    timed = {r["spec_id"] for r in payload["bench"]}
    int8 = candidates["model.int8-minmax.onnx"]
    assert not int8["met"] and int8["drop"] > 0.05 and int8["verdict"] == "over the bound"
    assert int8["p50_ms"] is None and int8["spec_id"] not in timed
    aware = candidates["model.int8-aware.onnx"]
    assert aware["met"] and aware["spec_id"] in timed
    (quantization,) = [q for q in payload["quantizations"] if q["accuracy_aware"]]
    assert quantization["accuracy_aware"]["data"].startswith("cifar10-val")  # tuned on validation images
    assert 1 <= len(quantization["accuracy_aware"]["kept_float"]) <= 3
    chosen = next(c for c in candidates.values() if c["verdict"] == "chosen")
    assert chosen["met"] and payload["searches"][0]["chosen_id"] == chosen["spec_id"]


def _result(spec_id: str, p50: float, half_width: float, throughput: float | None = None) -> BenchResult:
    stats = LatencyStats(p50, p50, p50, p50, p50, p50, p50, 0.0)
    return BenchResult(spec_id, "onnxruntime", "cpu", "fp32", 1, 2, 100, stats, 0.0, throughput or 1000 / p50, 1.0,
                       spec_id=spec_id, p50_ci_ms=[p50 - half_width, p50 + half_width])


def test_the_fastest_wins_when_the_timing_tells_it_apart():
    results = [_result("slow", 1.0, 0.01), _result("fast", 0.5, 0.01)]
    assert choose(results, "latency", {"slow": 90.0, "fast": 85.0}).spec_id == "fast"


def test_among_candidates_the_timing_cannot_order_the_most_accurate_wins():
    results = [_result("a", 0.50, 0.02), _result("b", 0.51, 0.02), _result("c", 0.60, 0.01)]
    assert choose(results, "latency", {"a": 85.0, "b": 86.0, "c": 90.0}).spec_id == "b"


def test_throughput_objective_compares_images_per_second():
    # "wide" has the longer call but more images per call (several requests in flight): more images/s.
    results = [_result("narrow", 1.0, 0.01, throughput=1000.0), _result("wide", 4.0, 0.04, throughput=2000.0)]
    assert choose(results, "throughput", {"narrow": 85.0, "wide": 85.0}).spec_id == "wide"
    assert choose(results, "latency", {"narrow": 85.0, "wide": 85.0}).spec_id == "narrow"


def test_every_candidate_gets_a_verdict_measured_against_the_fastest():
    results = [_result("a", 0.50, 0.02), _result("b", 0.51, 0.02), _result("c", 0.60, 0.01)]
    candidates = {key: Candidate(key, key, score, 0.0, True) for key, score in (("a", 85.0), ("b", 86.0), ("c", 90.0))}
    candidates["d"] = Candidate("d", "d", 70.0, 15.0, False)
    candidates["e"] = Candidate("e", "e")
    chosen = choose(results, "latency", {key: c.score for key, c in candidates.items()})
    give_verdicts(candidates, results, chosen, "latency", [Failure("e", "e", "validate", "it crashed")])
    verdicts = {key: c.verdict for key, c in candidates.items()}
    assert verdicts == {"b": "chosen",
                        "a": "as fast as the fastest (within the noise or the speed tolerance); the chosen scores as "
                             "well or better",
                        "c": "slower: x1.20 the fastest's latency", "d": "over the bound",
                        "e": "failed (validate): it crashed"}
    assert candidates["c"].p50_ms == 0.60 and candidates["d"].p50_ms is None


def test_search_space_runs_each_file_where_it_can_run():
    model = artifact_for("resnet20_cifar10")  # recipes: planning builds nothing, so none is built here
    files = {"model.onnx": model, "model.fused.onnx": model.then(Step.make("optimize")),
             "model.int8-minmax.onnx": model.then(Step.make("quantize", toolkit="onnxruntime", format="onnx"))}
    specs = plan_candidates(model, files, ["onnxruntime", "openvino", "torch"], ["cpu"], "throughput")
    labels = [s.label for s in specs]
    assert labels[0] == "model.onnx"  # ONNX Runtime fp32 first: the usual float reference
    # The fused file holds ORT-only operators: OpenVINO does not run it.
    assert labels == ["model.onnx", "model.fused.onnx", "model.int8-minmax.onnx", "model.onnx [openvino]",
                      "model.onnx [openvino fp32]", "model.int8-minmax.onnx [openvino]", "resnet20_cifar10 (PyTorch)"]
    assert all(s.config.hint == "throughput" for s in specs if s.runtime == "openvino")
    assert len({s.id for s in specs}) == len(specs)


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "1,8"], "optimises at one batch size"),
    (["--recipe", "minmax,fast"], "unknown recipe fast"),
    (["--max-drop", "1", "--min-cosine", "0.99"], "give --max-drop or --min-cosine, not both"),
    (["--data", "cifar10"], "cifar10 is the test set"),
    (["--measure", "mAP"], "applies to embedding models"),
    (["--device", "cuda"], "can use a CUDA device here"),
    (["--sweep", "64"], "add --objective throughput"),
    (["--objective", "throughput", "--sweep", "16"], "--sweep 16 is below the batch size it starts from (32)"),
    (["--model", "resnet20_cifar10,resnet56_cifar10", "--weights", "a.th"], "--weights gives 1 checkpoints for 2"),
    (["--model", "resnet20_cifar10,resnet20_cifar10"], "give distinct model names separated by commas"),
    (["--model", "resnet20_cifar10,resnet56_cifar10", "--speed-only"], "comparing models needs their accuracy"),
])
def test_tune_refuses_bad_input_in_one_line_and_leaves_nothing(cli, tmp_path, args, message):
    r = cli("tune", "--output", tmp_path / "reports", "--quiet", *args)
    assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_the_python_api_names_the_search_function():
    import rnopt
    import rnopt.search  # noqa: F401 - a submodule import must not shadow the function

    assert rnopt.tune is rnopt.api.tune and callable(rnopt.tune)
    options = rnopt.TuneOptions(objective="throughput")
    assert options.bench.batch_sizes == [32] and options.bench.target_ci == 0.01


def test_the_headline_says_why_the_chosen_one_won():
    from rnopt.report.document import headline_text
    from rnopt.report.loading import ReportData
    from rnopt.results import SearchResult

    def search(chosen: str) -> ReportData:
        candidates = [Candidate("a", "a.onnx", 0.855, -0.001, True, 0.51, [0.50, 0.52], 1960.0),  # fractions
                      Candidate("b", "b.onnx", 0.850, 0.004, True, 0.50, [0.49, 0.51], 2000.0),
                      Candidate("c", "c.onnx", 0.700, 0.154, False)]
        return ReportData(searches=[SearchResult("latency", 1, "top-1 drop ≤ 1 points", "top-1", "cifar10-val", 5000,
                                                 "m.onnx", "r", 0.854, candidates, chosen)])

    assert ("a.onnx, median 0.510 ms at batch 1; top-1 gain 0.10 on cifar10-val (validation) against the bound "
            "top-1 drop ≤ 1 points. Of the 2 candidates within the bound, out of 3 tried: as fast as the fastest "
            "by that rule, and better on validation. The rule: among candidates the timing cannot tell from the "
            "fastest, the best validation score wins.") in headline_text(search("a"))
    assert "The fastest of the 2 candidates within the bound, out of 3 tried. The rule:" in headline_text(search("b"))
    tolerant = search("a")
    tolerant.searches[0].speed_tolerance = 5.0
    assert headline_text(tolerant).endswith("The rule: among candidates within 5 % of the fastest (or within the "
                                            "timing noise), the best validation score wins.")


def test_the_speed_tolerance_lets_accuracy_decide_among_near_ties():
    # b is 4 % slower than a and the intervals are apart: without a tolerance the fastest wins
    results = [_result("a", 0.500, 0.002), _result("b", 0.520, 0.002), _result("c", 0.530, 0.002)]
    scores = {"a": 85.0, "b": 86.0, "c": 90.0}
    assert choose(results, "latency", scores).spec_id == "a"
    assert choose(results, "latency", scores, tolerance=5.0).spec_id == "b"  # c is 6 % slower: out
    assert choose(results, "latency", scores, tolerance=6.5).spec_id == "c"
    # throughput: images/s at most P % fewer than the most
    results = [_result("a", 1.0, 0.001, throughput=1000.0), _result("b", 1.0, 0.001, throughput=955.0),
               _result("c", 1.0, 0.001, throughput=940.0)]
    assert choose(results, "throughput", scores, tolerance=5.0).spec_id == "b"
    candidates = {key: Candidate(key, key, score, 0.0, True) for key, score in scores.items()}
    give_verdicts(candidates, results, results[1], "throughput", [], tolerance=5.0)
    assert candidates["a"].verdict.startswith("as fast as the fastest (within the noise or the speed tolerance)")
    assert candidates["c"].verdict.startswith("slower")


def test_the_speed_tolerance_is_a_percentage(cli, tmp_path):
    r = cli("tune", "--output", tmp_path / "reports", "--quiet", "--speed-tolerance", "-1")
    assert r.code == 1 and "--speed-tolerance is a percentage in [0, 100), got -1" in r.err
    assert not (tmp_path / "reports").exists()


def _flat_images(folder: Path, count: int) -> Path:
    from rnopt.data import load_dataset

    folder.mkdir()
    for index, (_, read, _) in enumerate(load_dataset("cifar10-val").subset(count).samples):
        (folder / f"photo{index}.jpg").write_bytes(read())
    return folder


def test_speed_only_bounds_agreement_with_float_and_says_accuracy_was_not_measured(cli, tmp_path):
    flat = _flat_images(tmp_path / "unlabelled", 60)  # images without labels: accuracy cannot be measured
    r = cli("tune", "--data", flat, "--output", tmp_path / "reports", "--json", tmp_path / "t.json", *QUICK[:4],
            "--no-knobs", "--iterations", "5", "--min-time", "0.05", "--quiet")
    assert r.code == 0, r.err
    payload = json.loads((tmp_path / "t.json").read_text())
    search = payload["searches"][0]
    assert search["speed_only"] and search["measure"] == "cosine" and search["images"] == 60
    assert f"speed only: accuracy was not measured ({flat} holds no labels)" in r.err
    scores = [c["score"] for c in search["candidates"] if c["score"] is not None]
    assert all(0 < s <= 1.0 + 1e-6 for s in scores) and max(scores) > 0.999  # the float files agree with float
    assert not payload["evals"]  # no labels, no test figures
    # Agreement scores a few 1e-4 apart do not outweigh speed: the fastest median within the bound wins outright.
    timed = [c for c in search["candidates"] if c["p50_ms"] is not None]
    assert next(c for c in timed if c["verdict"] == "chosen")["p50_ms"] == min(c["p50_ms"] for c in timed)
    assert search["speed_tolerance"] == 0
    (folder,) = (tmp_path / "reports").iterdir()
    report = (folder / "report.md").read_text()
    assert "Speed only: accuracy was not measured" in report and "the fastest median wins" in report


def test_a_model_without_trained_weights_is_tuned_for_speed_only(cli, tmp_path):
    flat = _flat_images(tmp_path / "photos", 12)
    r = cli("tune", "--model", "resnet18", "--data", flat, "--output", tmp_path / "reports", "--json",
            tmp_path / "t.json", "--backend", "onnxruntime", "--recipe", "minmax", "--iterations", "3",
            "--min-time", "0", "--quiet", "--no-knobs")
    assert r.code == 0, r.err
    search = json.loads((tmp_path / "t.json").read_text())["searches"][0]
    assert search["speed_only"] and "resnet18 has random weights" in r.err
    assert "int8 was calibrated on the images the outputs were compared on" in r.err
    assert search["chosen_id"]


# Several models: each searched against its own float reference, their finalists on one front.

def test_a_search_over_two_depths_puts_both_on_one_front_and_ships_the_recommendation(cli, tmp_path, image_folder):
    out = tmp_path / "reports"
    r = cli("tune", "--model", "resnet20_cifar10,resnet56_cifar10", "--max-drop", "0.5", "--output", out, "--json",
            tmp_path / "t.json", "--test-data", image_folder, *QUICK[:4], "--limit", "200", *QUICK[6:])
    assert r.code == 0, r.err
    payload = json.loads((tmp_path / "t.json").read_text())
    across, *own = payload["searches"]
    assert across["models"] == ["resnet20_cifar10", "resnet56_cifar10"]
    assert [s["model"] for s in own] == across["models"]  # each model's own search follows
    best = max(own, key=lambda s: s["reference_score"])
    assert across["reference_id"] == best["reference_id"] and across["model"] == best["model"]
    depths = {c["model"]: c["depth"] for c in across["candidates"]}
    assert depths == {"resnet20_cifar10": 20, "resnet56_cifar10": 56}
    chosen = next(c for c in across["candidates"] if c["spec_id"] == across["chosen_id"])
    # The recommendation keeps the bound against the best float model of the two, on validation images.
    assert chosen["met"] and best["reference_score"] - chosen["score"] <= 0.005 + 1e-9
    assert chosen["verdict"] == "chosen" and chosen["on_front"]
    # Every finalist was timed in the one interleaved timing; the labels say which model each is.
    timed = {b["spec_id"] for b in payload["bench"]}
    assert all(c["spec_id"] in timed and c["label"].startswith(c["model"] + "/") for c in across["candidates"])
    folder = Path(across["chosen_file"]).parents[1]
    assert Path(across["chosen_file"]).parent.name == chosen["model"] and Path(across["chosen_file"]).is_file()
    assert {"resnet20_cifar10", "resnet56_cifar10", "deploy"} <= {p.name for p in folder.iterdir()}
    report = (folder / "report.md").read_text()
    assert "## Search (rnopt tune)" in report and "Across models:" in report
    assert "worth its cost here (depth" in report  # the one sentence on what the front shows
    assert "models-front" in (folder / "report.html").read_text()
    # The test set scores each float reference and the recommendation (reported, chosen on nothing).
    (section,) = payload["evals"]
    assert {best["reference_id"], chosen["spec_id"]} <= {r["spec_id"] for r in section["results"]}


def _model_search(model: str, depth: int, reference: float, points: list[tuple[str, float, float, float]],
                  bound: AccuracyBound) -> SearchResult:
    """A model's search as `_time_and_choose` leaves it: (id, score, p50 ms, interval half-width) per candidate."""
    candidates = [Candidate(key, f"{model}/{key}", score, bound.drop(reference, score), bound.met(reference, score),
                            p50, [p50 - half, p50 + half], 1000.0 / p50, 1, model=model, depth=depth)
                  for key, score, p50, half in points]
    for c in candidates:
        if not c.met:
            c.p50_ms = c.p50_ci_ms = c.throughput_ips = None  # over its own bound: never timed
    return SearchResult("latency", 1, bound.describe(), "top-1", "cifar10-val", 5000, f"{model}/model.onnx",
                        points[0][0], reference, candidates, model=model)


def _figures(candidates: list[Candidate]) -> list[BenchResult]:
    return [_result(c.spec_id, c.p50_ms, (c.p50_ci_ms[1] - c.p50_ci_ms[0]) / 2, c.throughput_ips)
            for c in candidates]


def test_across_models_the_recommendation_keeps_the_bound_of_the_best_float_model():
    from rnopt.accuracy import AccuracyBound
    from rnopt.report.document import front_sentence

    def across(max_drop: float) -> tuple[SearchResult, BenchResult]:
        bound = AccuracyBound("top-1", max_drop)
        searches = [_model_search("resnet20", 20, 0.920, [("r20", 0.920, 1.0, 0.01), ("r20-int8", 0.918, 0.7, 0.01),
                                                          ("r20-bad", 0.850, 0.6, 0.01)], bound),
                    _model_search("resnet56", 56, 0.935, [("r56", 0.935, 3.0, 0.01), ("r56-int8", 0.933, 2.0, 0.01),
                                                          ("r56-slow", 0.930, 2.5, 0.01)], bound)]
        finalists = finalists_of(searches, bound, "latency")
        chosen = judge(finalists, _figures([c for c in finalists]), "latency", 0.0, [])
        result = SearchResult("latency", 1, bound.describe(), "top-1", "cifar10-val", 5000, "resnet56/model.onnx",
                              "r56", 0.935, finalists, chosen.spec_id, model="resnet56",
                              models=["resnet20", "resnet56"])
        return result, chosen

    strict, chosen = across(0.5)  # resnet20 is 1.5 points below resnet56 float: over the shared bound
    assert chosen.spec_id == "r56-int8"
    by_id = {c.spec_id: c for c in strict.candidates}
    # r20-bad was over resnet20's own bound (never timed); r56-slow is slower and worse than r56-int8; r56 float
    # is slower than r56-int8 and scores better: a finalist.
    assert set(by_id) == {"r20", "r20-int8", "r56", "r56-int8"}
    assert by_id["r20-int8"].verdict == "over the bound" and by_id["r20-int8"].p50_ms == 0.7
    assert all(c.on_front for c in strict.candidates)  # each finalist is the best score at its speed
    assert "is 2.86x as fast as the recommendation but top-1 drop +1.70 against resnet56/model.onnx" in \
        front_sentence(strict)
    assert "deeper is better at this bound" in front_sentence(strict)
    loose, chosen = across(2.0)  # within 2 points of resnet56 float, resnet20 int8 is the fastest
    assert chosen.spec_id == "r20-int8"
    assert front_sentence(loose).startswith("resnet20/r20-int8 stays within the bound (top-1 drop ≤ 2 points) of "
                                            "resnet56/model.onnx and is 2.86x as fast as the fastest resnet56 variant")
    assert "deeper is not better at this bound" in front_sentence(loose)


@pytest.mark.parametrize("objective", ["latency", "throughput"])
@pytest.mark.parametrize("tolerance", [0.0, 5.0])
def test_pruning_to_each_models_front_never_drops_the_best(objective, tolerance):
    """On random grids of three models' candidates (scores, medians and intervals drawn at random, some intervals
    wide), choosing among each model's front alone gives what choosing among all would."""
    import copy

    from rnopt.accuracy import AccuracyBound

    rng = np.random.default_rng(0)
    bound = AccuracyBound("top-1", 1.0)
    for _ in range(300):
        searches = []
        for m, model in enumerate(("a", "b", "c")):
            reference = float(rng.uniform(0.85, 0.95))
            points = [(f"{model}{i}", reference if i == 0 else float(reference - rng.uniform(-0.005, 0.015)),
                       float(rng.uniform(0.5, 2.0)), float(rng.choice([0.005, 0.05, 0.3]))) for i in range(6)]
            searches.append(_model_search(model, 20 + m, reference, points, bound))
        best = max(s.reference_score for s in searches)
        every = [replace(c, drop=bound.drop(best, c.score), met=bound.met(best, c.score))
                 for s in searches for c in s.candidates if c.p50_ms is not None]
        finalists = finalists_of(searches, bound, objective)
        assert len(finalists) < len(every) or len(every) <= 3
        full = judge(copy.deepcopy(every), _figures(every), objective, tolerance, [])
        pruned = judge(copy.deepcopy(finalists), _figures(finalists), objective, tolerance, [])
        assert pruned.spec_id == full.spec_id


# A time budget: screen, validate what could still win, confirm; stop with the best so far.

def test_a_spent_budget_stops_the_search_with_the_best_found_so_far_and_says_so(cli, tmp_path, image_folder):
    out = tmp_path / "reports"
    r = cli("tune", "--budget-minutes", "0.001", "--output", out, "--json", tmp_path / "t.json", "--test-data",
            image_folder, *QUICK)
    assert r.code == 0, r.err
    search = json.loads((tmp_path / "t.json").read_text())["searches"][0]
    assert search["budget_minutes"] == 0.001 and search["budget_ended_in"] == "validation"
    verdicts = {c["label"]: c["verdict"] for c in search["candidates"]}
    # The float reference is always validated (every drop is measured from it); the budget ended after it.
    assert verdicts == {"model.onnx": "chosen", "model.fused.onnx": "not validated: the budget ended",
                        "model.int8-minmax.onnx": "not validated: the budget ended"}
    assert ("the budget of 0.001 minutes ended during validation: the choice is the best found so far (2 candidates "
            "not validated; timed by the screen's short timing)") in r.err
    (folder,) = out.iterdir()
    assert "the best found so far" in (folder / "report.md").read_text()


def test_a_budget_screens_and_validates_only_what_could_still_win(cli, tmp_path, image_folder):
    r = cli("tune", "--budget-minutes", "10", "--output", tmp_path / "reports", "--json", tmp_path / "t.json",
            "--test-data", image_folder, *QUICK)
    assert r.code == 0, r.err
    search = json.loads((tmp_path / "t.json").read_text())["searches"][0]
    assert search["budget_ended_in"] == "" and "budget" not in r.err
    by_label = {c["label"]: c for c in search["candidates"]}
    assert by_label["model.onnx"]["score"] is not None  # the reference, validated first
    for c in by_label.values():  # validated and judged, or left out because it could not win
        assert c["score"] is not None or c["verdict"].startswith("not validated: screened slower than")
    assert sum(c["verdict"] == "chosen" for c in by_label.values()) == 1


def test_a_candidate_is_validated_only_while_it_could_still_win():
    from rnopt.search import could_win

    best = _result("best", 1.00, 0.01)
    assert could_win(_result("faster", 0.90, 0.01), best, "latency", 0.0)
    assert could_win(_result("noisy", 1.05, 0.06), best, "latency", 0.0)  # intervals overlap: a better score wins
    assert not could_win(_result("slower", 1.10, 0.01), best, "latency", 0.0)
    assert could_win(_result("slower", 1.10, 0.01), best, "latency", 12.0)  # within the speed tolerance
    assert could_win(_result("any", 5.0, 0.01), None, "latency", 0.0)  # nothing within the bound yet
    assert not could_win(_result("few", 1.0, 0.001, throughput=800.0), _result("b", 1.0, 0.001, throughput=1000.0),
                         "throughput", 5.0)


def test_the_knobs_tried_are_the_runtimes_own_and_pruned_by_objective():
    from rnopt.search import knob_variants

    model = artifact_for("resnet20_cifar10")
    files = {"model.onnx": model}
    ort, ov = plan_candidates(model, files, ["onnxruntime", "openvino"], ["cpu"], "latency")[:2]
    options, threads = knob_variants(ort, "latency", 2)
    assert [o.label for o in options] == ["model.onnx + spinning off", "model.onnx + inter_op 2"]
    assert [(t.threads, t.label) for t in threads] == [(1, "model.onnx + 1 thread")]
    assert len({s.id for s in [ort, *options, *threads]}) == 4  # each a variant of its own
    assert knob_variants(ort, "latency", 1)[1] == []  # one core: nothing fewer to try
    assert knob_variants(ov, "latency", 8)[0] == []  # one request at a time: streams cannot help latency
    ov_throughput = plan_candidates(model, files, ["openvino"], ["cpu"], "throughput")[0]
    options, threads = knob_variants(ov_throughput, "throughput", 4)
    assert [o.config.properties(None, None).get("NUM_STREAMS") for o in options] == ["1", "2", "4", None]
    assert options[-1].config.hint == "latency" and [t.threads for t in threads] == [1, 2]


def test_the_chosen_variant_is_timed_against_its_other_settings_and_batch_sizes(cli, tmp_path, image_folder):
    payload = _tune(cli, tmp_path, image_folder, "--knobs", "--objective", "throughput", "--batch-size", "4")
    search = payload["searches"][0]
    by_label = _by_label(payload)
    base = next(c for c in by_label.values() if c["verdict"].startswith("chosen") or
                c["verdict"] == "the same with other settings was clearly faster")
    settings = {label: c for label, c in by_label.items() if label.startswith(base["label"] + " + ")}
    cores = os.cpu_count() or 1
    expected = ["spinning off"] + (["inter_op 2"] if cores >= 2 else []) + \
        [f"{n} thread{'s' if n > 1 else ''}" for n in sorted({1, cores // 2} - {0, cores})]
    assert set(settings) == {f"{base['label']} + {words}" for words in expected}
    timed = {b["spec_id"] for b in payload["bench"]}
    for c in settings.values():  # timed side by side with the default settings; the validation score carried over
        assert c["spec_id"] in timed and c["score"] == base["score"] and c["met"]
        assert c["verdict"].startswith("chosen") or c["verdict"].startswith("setting: ") and \
            "as fast as the default settings timed beside it" in c["verdict"]
    chosen = [c for c in by_label.values() if c["verdict"].startswith("chosen")]
    assert len(chosen) == 1 and search["chosen_id"] == chosen[0]["spec_id"]
    assert chosen[0]["spec_id"] in {s["id"] for s in payload["specs"]}  # a setting chosen is a spec like any other
    # Then the batch: half and double the objective's, timed beside it in one set of rounds.
    chosen = chosen[0]
    assert "other batch sizes timed beside batch 4 (images/s): batch 2 " in chosen["verdict"]
    assert ", batch 8 " in chosen["verdict"]
    rounds = {r["batch_size"]: r["rounds"] for r in payload["bench"] if r["spec_id"] == chosen["spec_id"]}
    assert {2, 4, 8} <= set(rounds) and rounds[2] == rounds[8]
    taken = chosen["batch_size"]
    assert (taken != 4) == chosen["verdict"].endswith(f": batch {taken} taken")


def test_another_setting_replaces_the_chosen_only_when_clearly_faster():
    from rnopt.search import clear_gain

    base = _result("base", 1.00, 0.01)
    assert clear_gain(_result("spin", 0.80, 0.01), base, "latency") == pytest.approx(1.25)
    assert clear_gain(_result("noisy", 0.97, 0.05), base, "latency") is None  # faster, but the intervals overlap
    assert clear_gain(_result("slow", 1.20, 0.01), base, "latency") is None
    many = _result("streams", 1.0, 0.001, throughput=1500.0)
    assert clear_gain(many, _result("base", 1.0, 0.001, throughput=1000.0), "throughput") == pytest.approx(1.5)

