"""Every function that decides something, told apart from its plausible wrong versions.

Each test here was written against a mutation (the reverse order, the other operand, a unit off by 100, the
neighbour in a ranking, the best case for the worst); README "Development" lists them with the test that catches
each. Hand-made inputs (scores, outputs, vectors, intervals) make the right answer known exactly; nothing here
stands in for a runtime: the fake models are plain output tables fed to rnopt's own scoring.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rnopt.accuracy import AccuracyBound
from rnopt.bench import NOISY_CI, is_drift, result_warnings, summarize_warnings
from rnopt.data import load_dataset
from rnopt.evaluation import evaluate, evaluate_embeddings
from rnopt.preprocessing import Preprocessing
from rnopt.quantization.accuracy_aware import _State, revert_loop, revert_order
from rnopt.results import AccuracyAwareResult, BenchResult, LatencyStats, QuantizerSensitivity
from rnopt.retrieval import search
from rnopt.search import choose, overlaps, tied_with_fastest
from rnopt.stats import drift


# --- evaluation: every model is scored on its own outputs ------------------------------------------------------

def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class _TableSession:
    """A model given as a table: image -> output row (hand-made, so each model's right answer is known)."""

    backend, precision, device = "table", "fp32", "cpu"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.table[_key(image)] for image in images])


def _variant(label: str, table: dict[str, np.ndarray]) -> SimpleNamespace:
    return SimpleNamespace(label=label, session=_TableSession(table), spec=SimpleNamespace(id=f"id-{label}"),
                           model=SimpleNamespace(head="logits"))


@pytest.fixture(scope="module")
def labelled(image_folder):
    """The 18 real images, their preprocessed arrays and labels, in the order evaluation reads them."""
    dataset = load_dataset(str(image_folder))
    preprocessing = Preprocessing(32, 32)
    images, labels = zip(*dataset.batches(100, preprocessing))
    return dataset, preprocessing, np.concatenate(images), np.concatenate(labels)


def _logits(labels: np.ndarray, rank_of_label: list[int]) -> np.ndarray:
    """Rows of 10 scores where image i's true label sits at rank rank_of_label[i] (0 = top-1)."""
    rows = []
    for label, rank in zip(labels, rank_of_label):
        others = [c for c in range(10) if c != label]
        order = others[:rank] + [label] + others[rank:]
        row = np.zeros(10, np.float32)
        row[order] = np.linspace(10, 1, 10)
        rows.append(row)
    return np.stack(rows)


def test_each_model_is_scored_on_its_own_outputs(labelled):
    dataset, preprocessing, images, labels = labelled
    n = len(labels)
    ranks_a = [0] * n  # the reference: every image right
    ranks_b = [0] * (n // 3) + [2] * (n // 3) + [7] * (n - 2 * (n // 3))  # a third top-1, two thirds top-5
    tables = [{_key(i): row for i, row in zip(images, _logits(labels, ranks))} for ranks in (ranks_a, ranks_b)]
    results, [comparison] = _results_and_comparisons(evaluate([_variant("a", tables[0]), _variant("b", tables[1])], dataset, preprocessing, 7))
    a, b = results
    assert (a.top1, a.top5, a.n) == (1.0, 1.0, n)
    assert b.top1 == pytest.approx((n // 3) / n) and b.top5 == pytest.approx(2 * (n // 3) / n)
    assert comparison.top1_delta == pytest.approx(b.top1 - a.top1) and comparison.agreement == pytest.approx(b.top1)
    assert (comparison.reference_id, comparison.candidate_id) == ("id-a", "id-b")


def test_each_embedding_model_is_scored_on_its_own_vectors(labelled):
    dataset, preprocessing, images, labels = labelled
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, 16)).astype(np.float32) * 10
    clean = centres[labels] + rng.standard_normal((len(labels), 16)).astype(np.float32) * 0.01
    noisy = rng.standard_normal((len(labels), 16)).astype(np.float32)  # nothing to do with the class
    tables = [{_key(i): v for i, v in zip(images, vectors)} for vectors in (clean, noisy)]
    section = evaluate_embeddings([_variant("f", tables[0]), _variant("q", tables[1])], dataset, preprocessing, 5)
    f, q = section.results
    assert f.map == pytest.approx(1.0) and f.precision_at["5"] == pytest.approx(1.0)
    expected = search(noisy, labels)
    assert q.map == pytest.approx(expected.average_precision)
    assert q.precision_at["5"] == pytest.approx(expected.precision_at[5]) and q.precision_at["5"] < 0.9
    assert q.cosine_mean < 0.5 and q.reference_id == "id-f"


def test_retrieval_measures_on_hand_made_vectors():
    # Four images, two classes on two axes; image 3 sits nearer class 0: its nearest neighbour is wrong.
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.8, 0.3]], np.float32)
    labels = np.array([0, 0, 1, 1])
    found = search(vectors, labels, ks=(1,))
    # precision@1: 0 -> 1 (right), 1 -> 0 (right), 2 -> 3 (right), 3 -> 1 (wrong)
    assert found.precision_at[1] == pytest.approx(3 / 4)
    # AP per query: 0 finds 1 at rank 1 (1.0); 1 finds 0 at rank 1 (1.0); 2 finds 3 at rank 1 (1.0);
    # 3 ranks 1, 0 before 2: its one relevant item at rank 3 (1/3).
    assert found.average_precision == pytest.approx((1 + 1 + 1 + 1 / 3) / 4)


# --- accuracy-aware int8: the greedy revert loop -----------------------------------------------------------------

def _row(tensor: str, noise: float) -> QuantizerSensitivity:
    return QuantizerSensitivity(tensor, "activation", 0, [f"node_{tensor}"], "", 20.0, 10.0, noise)


# Validation top-1 (a fraction, as every score) with these groups in float; the reference scores 0.85, full int8
# 0.60, the bound is 1 point.
SCORES = {frozenset(): 0.60, frozenset({"B"}): 0.70, frozenset({"B", "C"}): 0.70,
          frozenset({"B", "A"}): 0.845, frozenset({"A"}): 0.61, frozenset({"C"}): 0.605,
          frozenset({"A", "C"}): 0.615, frozenset({"B", "A", "C"}): 0.846}


def _scored(tried: list[frozenset]):
    def try_float(nodes: list[str]) -> tuple[float, Path]:
        key = frozenset(n.removeprefix("node_") for n in nodes)
        tried.append(key)
        return SCORES[key], Path("/".join(sorted(key)) or "full")
    return try_float


def test_the_most_sensitive_group_goes_back_to_float_first():
    ranked = revert_order([_row("A", 0.1), _row("B", 2.0), _row("C", 0.5)])
    assert [r.tensor for r in ranked] == ["B", "C", "A"]


def test_the_revert_loop_keeps_only_improving_steps_until_the_bound_holds():
    tried: list[frozenset] = []
    state, steps = revert_loop([_row("B", 2.0), _row("C", 0.5), _row("A", 0.1)], _scored(tried),
                               AccuracyBound("top-1", 1.0), 0.85, _State([], 0.60, Path("full")), None, [])
    # B helps (kept); C on top of B scores the same (no better: undone); A on top of B meets the bound.
    assert tried == [{"B"}, {"B", "C"}, {"B", "A"}]
    assert [(s.target, s.kept) for s in steps] == [("B", True), ("C", False), ("A", True)]
    assert state.float_nodes == ["node_B", "node_A"] and state.score == 0.845
    assert [s.drop for s in steps] == pytest.approx([0.15, 0.15, 0.005])


def test_the_revert_loop_stops_at_max_steps_and_skips_excluded_nodes():
    tried: list[frozenset] = []
    state, steps = revert_loop([_row("B", 2.0), _row("C", 0.5), _row("A", 0.1)], _scored(tried),
                               AccuracyBound("top-1", 1.0), 0.85, _State([], 0.60, Path("full")), 1, [])
    assert len(steps) == 1 and state.score == 0.70
    tried.clear()
    _, steps = revert_loop([_row("B", 2.0), _row("C", 0.5), _row("A", 0.1)], _scored(tried),
                           AccuracyBound("top-1", 1.0), 0.85, _State([], 0.60, Path("full")), None, ["node_B"])
    assert [s.target for s in steps] == ["C", "A"] and tried == [{"C"}, {"C", "A"}]


def test_a_bound_met_before_any_step_reverts_nothing():
    tried: list[frozenset] = []
    state, steps = revert_loop([_row("B", 2.0)], _scored(tried), AccuracyBound("top-1", 30.0), 0.85,
                               _State([], 0.60, Path("full")), None, [])
    assert steps == [] and tried == [] and state.score == 0.60


def test_test_figures_score_each_model_on_the_test_data():
    from rnopt.accuracy import ValidationSet
    from rnopt.quantization.base import Quantizer

    labels = np.arange(5)
    right = {"float": 4, "full": 2, "final": 3}  # images each file gets right, of 5

    class Files(Quantizer):  # each model file's outputs on the test images: one-hot, right on the first k
        name, suffix = "files", ".onnx"
        quantize = quantize_accuracy_aware = None  # not what this test runs

        def outputs(self, model: Path, images: np.ndarray) -> np.ndarray:
            predicted = np.where(labels < right[str(model)], labels, (labels + 1) % 5)
            return np.eye(5, dtype=np.float32)[predicted]

    test = ValidationSet("test", np.zeros((5, 3, 4, 4), np.float32), labels)
    report = AccuracyAwareResult("onnxruntime", "top-1", "", 1, "absolute", "val", 10, 0.85, 0.6, 0.845, 0.005, True,
                                 3, [])
    Files().untuned_figures(report, AccuracyBound("top-1", 1.0), test, Path("float"), Path("full"), Path("final"))
    assert (report.test_data, report.test_float_score, report.test_int8_score, report.test_score) == \
        ("test", 0.8, 0.4, 0.6)
    Files().untuned_figures(report, AccuracyBound("top-1", 1.0), test, Path("float"), Path("full"), Path("full"))
    assert report.test_score == 0.4  # nothing reverted: the written model is full int8


# --- bounds and NNCF's units ---------------------------------------------------------------------------------------

def test_bounds_in_both_units_and_their_inverse():
    """The bound is given in points (or % of float's score); scores and drops are fractions."""
    absolute, relative = AccuracyBound("top-1", 2.0), AccuracyBound("top-1", 2.0, "relative")
    assert absolute.limit == pytest.approx(0.02) and relative.limit == pytest.approx(0.02)
    assert absolute.drop(0.80, 0.79) == pytest.approx(0.01) and relative.drop(0.80, 0.79) == pytest.approx(0.0125)
    assert absolute.drop(0.80, 0.81) == pytest.approx(-0.01)  # a gain is a negative drop, never a positive one
    assert absolute.met(0.80, 0.78) and not absolute.met(0.80, 0.779)
    assert relative.met(0.80, 0.784) and not relative.met(0.80, 0.783)  # 2 % of 0.80 is 1.6 points
    assert absolute.score_at(0.80, 0.015) == pytest.approx(0.785)
    assert relative.score_at(0.80, 0.025) == pytest.approx(0.78)
    cosine = AccuracyBound.min_cosine(0.99)  # a cosine is no points: its drop is bounded as it is
    assert cosine.limit == pytest.approx(0.01) and cosine.met(1.0, 0.99) and not cosine.met(1.0, 0.9899)


@pytest.mark.parametrize("drop_type, given, expected", [("absolute", 0.5, 0.005), ("relative", 2.0, 0.02)])
def test_nncf_is_given_the_bound_in_its_own_units(monkeypatch, fp32_onnx, drop_type, given, expected):
    """NNCF takes an absolute drop in the metric's units (a fraction of top-1 here) and a relative one as a
    fraction; the record holds the bound as a fraction too."""
    from rnopt.privacy import import_openvino

    ov = import_openvino()
    nncf = pytest.importorskip("nncf")
    from rnopt.accuracy import validation_set
    from rnopt.onnx_model import load_onnx, read_meta
    from rnopt.quantization.base import CalibrationData
    from rnopt.quantization.openvino import _accuracy_control

    calls = []

    def recording(model, calibration, validation, fn, **kwargs):  # noqa: ANN001, ANN202
        calls.append(kwargs)
        return model  # the float model back: the rest of the step runs for real on it

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", recording)
    meta = read_meta(load_onnx(fp32_onnx))
    val = validation_set(meta, None, 20)
    calibration = CalibrationData("val", val.images[:4])
    core = ov.Core()
    _, report = _accuracy_control(core, fp32_onnx, fp32_onnx, calibration, AccuracyBound("top-1", given, drop_type),
                                  val, None, lambda _: None)
    [kwargs] = calls
    assert kwargs["max_drop"] == pytest.approx(expected)
    assert kwargs["drop_type"] == (nncf.DropType.RELATIVE if drop_type == "relative" else nncf.DropType.ABSOLUTE)
    assert report.max_drop == pytest.approx(expected) and report.drop_type == drop_type


@pytest.mark.parametrize("drop_type, logged, drop", [("absolute", 0.007, 0.007), ("relative", 0.007, 0.007)])
def test_nncf_logged_drops_come_back_in_rnopt_units(drop_type, logged, drop):
    from rnopt.quantization.openvino import _read_nncf_log

    bound = AccuracyBound("top-1", 1.0, drop_type)
    log = ["Total number of quantized operations in the model: 30",
           "Reverted 1 operations to the floating-point precision: \n\tconv_7",
           f"Accuracy drop with the new quantization scope is {logged}",
           "Reverted 1 operations to the floating-point precision: \n\tconv_9",
           "Accuracy drop with the new quantization scope is 0.0001"]
    steps, layers, kept = _read_nncf_log(log, bound, 0.80, 0.7999)
    assert layers == 30 and kept == ["conv_7", "conv_9"]
    assert steps[0].drop == pytest.approx(drop) and steps[0].score == pytest.approx(bound.score_at(0.80, drop))


# --- timing statistics ----------------------------------------------------------------------------------------------

def _rounds(first: float, last: float, n: int = 18) -> list[float]:
    rng = np.random.default_rng(3)
    level = [first] * (n // 2) + [last] * (n - n // 2)
    return [x * (1 + 0.002 * rng.standard_normal()) for x in level]


@pytest.mark.parametrize("first, last, flagged", [(1.0, 1.2, True), (1.2, 1.0, True), (1.0, 1.001, False),
                                                   (1.0, 1.01, False)])
def test_drift_is_flagged_in_both_directions_and_only_beyond_two_percent(first, last, flagged):
    step = drift(_rounds(first, last))
    assert is_drift(step) is flagged
    assert step.change == pytest.approx(last / first - 1, abs=0.01)


def _bench(name: str, p50_ci: float, **kw) -> BenchResult:
    stats = LatencyStats(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0)
    return BenchResult(name, "onnxruntime", "cpu", "fp32", 1, 2, 100, stats, 0.0, 1000.0, 1.0, p50_ci=p50_ci,
                       p50_ci_ms=[1 - p50_ci, 1 + p50_ci], **kw)


def test_the_noise_warning_names_the_wide_intervals_only():
    wide, narrow = _bench("wide", NOISY_CI * 2), _bench("narrow", NOISY_CI / 4)
    assert any(w.startswith("noisy") for w in result_warnings(wide))
    assert not any(w.startswith("noisy") for w in result_warnings(narrow))
    [line] = [w for w in summarize_warnings([wide, narrow]) if w.startswith("noisy")]
    assert "wide batch 1" in line and "narrow" not in line and "1 of 2 results" in line


# --- tune's choice: throughput intervals -------------------------------------------------------------------------

def _throughput(name: str, ips: float, half_width: float) -> BenchResult:
    p50 = 1000.0 / ips  # one image per call
    stats = LatencyStats(p50, p50, p50, p50, p50, p50, p50, 0.0)
    return BenchResult(name, "openvino", "cpu", "int8", 1, 2, 100, stats, 0.0, ips, 1.0, spec_id=name,
                       p50_ci_ms=[p50 * (1 - half_width), p50 * (1 + half_width)])


def test_throughput_ties_are_found_from_the_latency_intervals():
    a, b, c = _throughput("a", 1000.0, 0.03), _throughput("b", 1020.0, 0.03), _throughput("c", 1300.0, 0.01)
    assert overlaps(a, b, "throughput") and overlaps(b, a, "throughput")
    assert not overlaps(a, c, "throughput") and not overlaps(c, b, "throughput")
    assert {r.spec_id for r in tied_with_fastest([a, b], "throughput")} == {"a", "b"}
    # tied: the better validation score wins even though b has more images/s; c is faster beyond the noise
    assert choose([a, b], "throughput", {"a": 86.0, "b": 85.0}).spec_id == "a"
    assert choose([a, b, c], "throughput", {"a": 86.0, "b": 85.0, "c": 80.0}).spec_id == "c"


def _results_and_comparisons(section):
    return section.results, section.comparisons
