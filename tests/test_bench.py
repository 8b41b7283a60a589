import os
import subprocess
import sys

import pytest

from rnopt.bench import BenchConfig, latency_stats, summarize_warnings
from rnopt.errors import RnoptError
from rnopt.execute import InProcessExecutor
from rnopt.artifacts import artifact_for
from rnopt.machine_load import other_processes_busy
from rnopt.results import BenchResult
from rnopt.spec import ArtifactSpec, VariantSpec


def test_latency_stats_on_known_samples():
    stats = latency_stats([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert stats.min == pytest.approx(1) and stats.max == pytest.approx(100)
    assert stats.p50 == pytest.approx(50.5) and stats.p90 == pytest.approx(90.1) and stats.p99 == pytest.approx(99.01)
    assert stats.mean == pytest.approx(50.5) and stats.stdev == pytest.approx(29.0115, rel=1e-4)


@pytest.mark.parametrize("kwargs", [{"batch_sizes": [0]}, {"batch_sizes": []}, {"iterations": 0},
                                    {"warmup": -1}, {"min_time": -1}])
def test_bench_config_rejects_nonsense(kwargs):
    with pytest.raises(RnoptError):
        BenchConfig(**kwargs)


def test_noisy_results_are_summarised_once():
    stats = latency_stats([0.001, 0.002])
    results = [BenchResult(f"m{i}", "onnxruntime", "cpu", "fp32", 1, 2, 2, stats, 0.5, 1.0, 0.1, p50_ci=0.01 * i,
                           warnings=["noisy measurement: x", "int8 on a CPU without VNNI/AMX: y"]) for i in range(4)]
    results[0].cv = 3.0  # a large cv alone is not noise: the median's interval decides
    lines = summarize_warnings(results)
    assert len(lines) == 2 and lines[0].startswith("noisy measurement") and "1 of 4 results (m3 batch 1 ±3.0%)" in lines[0]
    assert lines[1] == "int8 on a CPU without VNNI/AMX: y"


def test_other_processes_are_noticed():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        share = other_processes_busy(0.5)
    finally:
        busy.kill()
    assert share is not None and share > 0.5 / (os.cpu_count() or 1)  # one whole core spinning


def test_memory_is_measured_per_variant_and_grows_with_the_batch(tmp_path):
    probe = VariantSpec(artifact_for("resnet20_cifar10"), "torch")
    gone = VariantSpec(ArtifactSpec(str(tmp_path / "gone.onnx")), "onnxruntime", threads=1)
    uses = InProcessExecutor().measure_memory({"small": (probe, 1), "large": (probe, 64), "gone": (gone, 1)}, workers=2)
    small, large = uses["small"], uses["large"]
    assert (small.batch_size, large.batch_size) == (1, 64)
    assert 0 < small.added_mb < small.peak_rss_mb and small.gpu_mb is None
    # 64 images of 16x32x32 floats per layer output, and more: tens of MB beyond batch 1
    assert large.added_mb > small.added_mb + 10
    # a probe that fails is a one-line reason, not an exception that loses the others
    assert isinstance(uses["gone"], RnoptError)
    assert str(uses["gone"]).startswith("measuring memory of gone.onnx [onnxruntime] at batch 1 failed: ")
    assert str(uses["gone"]).endswith(f"model file {tmp_path / 'gone.onnx'} does not exist")


def _probes_counted(monkeypatch) -> list[str]:
    """The spec ids every memory probe process is started for (the real probe still runs)."""
    from rnopt.execute import inprocess

    probed: list[str] = []
    real = inprocess.run_in_fresh_process

    def counted(task, specs):
        probed.append(task.spec_ids[0])
        return real(task, specs)

    monkeypatch.setattr(inprocess, "run_in_fresh_process", counted)
    return probed


def test_memory_measured_ahead_is_taken_by_the_bench_not_measured_again(monkeypatch, fp32_onnx):
    """`rnopt run` starts PyTorch's probes before the export; the bench takes their figures."""
    probed = _probes_counted(monkeypatch)
    torch_spec = VariantSpec(artifact_for("resnet20_cifar10"), "torch")
    ort_spec = VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime")
    executor = InProcessExecutor()
    executor.measure_ahead([torch_spec], [1])
    ahead, run = executor._ahead, executor.run
    done_when_timed = []

    def watched(task, *rest):
        if task.kind == "time":
            done_when_timed.append(ahead.done())
        return run(task, *rest)

    monkeypatch.setattr(executor, "run", watched)
    outcome = executor.bench([torch_spec, ort_spec], BenchConfig([1], warmup=0, iterations=2, min_time=0, memory=True))
    executor.close()
    assert done_when_timed == [True]  # the probes started ahead had finished before the timing began
    assert {r.spec_id: r.memory_mb is not None and r.memory_mb > 0 for r in outcome.results} == {
        torch_spec.id: True, ort_spec.id: True}
    assert sorted(probed) == sorted([torch_spec.id, ort_spec.id])  # each measured once


def test_probes_started_ahead_stop_when_the_command_ends_before_its_timing(monkeypatch):
    """An export that fails leaves the command at once: close() kills the running probe and starts no other."""
    import time

    from rnopt.execute import process

    probed = _probes_counted(monkeypatch)
    executor = InProcessExecutor()
    executor.measure_ahead([VariantSpec(artifact_for("resnet20_cifar10"), "torch")], [1, 8, 16])
    ahead = executor._ahead
    while not process._RUNNING:  # the first probe process is running
        time.sleep(0.01)
    executor.close()
    measured = ahead.result(timeout=60)
    assert len(probed) == 1 and not process._RUNNING
    assert [type(use) for use in measured.values()] == [RnoptError]  # the one started was killed


def test_memory_is_skipped_with_a_reason_where_proc_is_missing(monkeypatch):
    from rnopt import memory

    monkeypatch.setattr(memory, "supported", lambda: False)  # as on macOS or Windows
    spec = VariantSpec(artifact_for("resnet20_cifar10"), "torch")
    outcome = InProcessExecutor().bench([spec], BenchConfig([1], warmup=0, iterations=2, min_time=0, memory=True))
    [result] = outcome.results
    assert result.memory_mb is None and result.spec_id == spec.id
    assert "memory per variant not measured: it needs Linux's /proc" in result.warnings


def test_batch_sweep_doubles_until_images_per_s_stops_improving(fp32_onnx):
    from rnopt.bench import SWEEP_MIN_GAIN, bench_variants

    [variant], _ = InProcessExecutor().load([VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime")])
    results = bench_variants([variant], BenchConfig([1], warmup=2, iterations=5, min_time=0.05, sweep_limit=16))
    batches = [r.batch_size for r in results]
    assert batches == [1, 2, 4, 8, 16][:len(batches)] and len(batches) >= 2
    stopped_early = batches[-1] < 16
    gains = [b.throughput_ips / a.throughput_ips - 1 for a, b in zip(results, results[1:])]
    assert all(g >= SWEEP_MIN_GAIN for g in gains[:-1])  # it went on only while images/s improved
    if stopped_early:  # it stopped because the last doubling did not pay; at the limit it stops whatever the gain
        assert gains[-1] < SWEEP_MIN_GAIN


def test_batch_sweep_stops_where_memory_runs_out(fp32_onnx, monkeypatch):
    import importlib



    bench = importlib.import_module("rnopt.bench")  # `rnopt.bench` as an attribute is the API function

    need_for_two = 2 * 3 * 32 * 32 * 4 * bench.ACTIVATION_FACTOR
    monkeypatch.setattr(bench, "available_memory_bytes", lambda: int(need_for_two / 0.8) - 1)  # batch 2 won't fit
    [variant], _ = InProcessExecutor().load([VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime")])
    [only] = bench.bench_variants([variant], BenchConfig([1], warmup=1, iterations=5, min_time=0.0, sweep_limit=64))
    assert only.batch_size == 1 and any("batch sweep stopped: batch 2 does not fit" in w for w in only.warnings)


def test_sweep_option_takes_one_start_batch(cli, fp32_onnx):
    r = cli("bench", fp32_onnx, "--sweep", "8", "--batch-size", "1,4")
    assert r.code == 1 and "at most one --batch-size" in r.err
    r = cli("bench", fp32_onnx, "--sweep", "2", "--batch-size", "4")
    assert r.code == 1 and "below the first batch size" in r.err


def test_a_swept_run_shows_each_variants_best_images_per_s_and_sweeps_only_gpu_variants(fp32_onnx, int8_onnx):
    import dataclasses

    from rnopt.pipeline import sweep_targets
    from rnopt.report.tables import run_summary_table

    config = BenchConfig([1], warmup=1, iterations=5, min_time=0.0)
    fp32, int8 = (VariantSpec(artifact_for(str(p)), "onnxruntime") for p in (fp32_onnx, int8_onnx))
    from rnopt.api import bench

    swept = bench([fp32], dataclasses.replace(config, sweep_limit=4)).bench  # as a GPU variant's sweep would
    plain = bench([int8], config).bench
    table = run_summary_table(plain + swept, [])
    assert "best images/s" in table.headers
    best = max(swept, key=lambda r: r.throughput_ips)
    assert any(f"(batch {best.batch_size})" in cell for row in table.rows for cell in row)
    gpu = dataclasses.replace(fp32, device="cuda")
    ran = plain + [dataclasses.replace(swept[0], spec_id=gpu.id)]
    assert sweep_targets([int8, gpu], ran) == [gpu]
    assert sweep_targets([int8, fp32], plain) == []
    assert not any("GPU memory" in h for h in table.headers)  # no GPU ran: no GPU column
    on_gpu = [dataclasses.replace(plain[0], memory_gpu_mb=123.4)] + swept
    table = run_summary_table(on_gpu, [])
    column = table.headers.index("GPU memory MB (batch 1)")
    assert [row[column] for row in table.rows] == ["123", ""] and "GPU memory" in table.note


@pytest.mark.parametrize("together", [True, False])
def test_batch_sizes_timed_together_share_every_round(fp32_onnx, int8_onnx, together):
    from rnopt.bench import bench_variants

    variants, _ = InProcessExecutor().load([VariantSpec(artifact_for(str(p)), "onnxruntime")
                                            for p in (fp32_onnx, int8_onnx)])
    notes: list[str] = []
    config = BenchConfig([1, 4], warmup=1, iterations=6, min_time=0.0, batches_together=together)
    results = bench_variants(variants, config, notes.append)
    assert [(r.spec_id, r.batch_size) for r in results] == \
        [(v.spec.id, b) for b in (1, 4) for v in variants]  # batch by batch, variants in order, either way
    assert all(r.iterations >= 6 for r in results)
    if together:  # one set of rounds: each (variant, size) a block per round, so the same number of rounds
        assert all(n.startswith("batch 1, 4: round") for n in notes) and len({r.rounds for r in results}) == 1
    else:
        assert {n.split(":")[0] for n in notes} == {"batch 1", "batch 4"}


def test_after_the_screen_only_a_variant_that_could_still_be_fastest_is_timed_on(fp32_onnx):
    """Screen, then confirm: PyTorch, several times slower than ONNX Runtime at batch 1 here, stops after the
    screen's rounds and says so; ONNX Runtime goes on to --max-time (a target no median reaches)."""
    from rnopt.bench import MIN_ROUNDS, SCREENED, bench_variants

    variants, _ = InProcessExecutor().load([VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime"),
                                            VariantSpec(artifact_for("resnet20_cifar10"), "torch")])
    config = BenchConfig([1], warmup=1, target_ci=0.0001, max_time=2.0, contenders_only=True)
    ort, torch = bench_variants(variants, config)
    assert torch.rounds == MIN_ROUNDS and ort.rounds > MIN_ROUNDS
    assert torch.p50_ci_ms[0] > ort.p50_ci_ms[1]  # what stopped it: its interval wholly above ORT's
    assert [w for w in torch.warnings if w.startswith(SCREENED)] == [
        f"{SCREENED}: clearly slower than {ort.model} at batch 1 after {MIN_ROUNDS} rounds (median "
        f"±{torch.p50_ci:.1%})"]
    summary = summarize_warnings([ort, torch])
    assert any(line.startswith(SCREENED) and torch.model in line for line in summary)
    assert not any(line.startswith("--target-ci") and torch.model in line for line in summary)
    # without it, every variant gets every round. Not `> MIN_ROUNDS`: on a slow host the three rounds of both can
    # take the whole --max-time (CI, stop 30); had PyTorch been screened, ONNX Runtime would have gone on alone.
    ort, torch = bench_variants(variants, BenchConfig([1], warmup=1, target_ci=0.0001, max_time=2.0))
    assert torch.rounds == ort.rounds >= MIN_ROUNDS


def test_outpaced_units_are_those_wholly_slower_than_the_fastest_at_their_batch_size():
    from rnopt.bench import outpaced_units

    def blocks(centre: float, spread: float) -> list[list[float]]:
        return [[centre + spread * ((i * 7 + j * 3) % 11 - 5) / 5 for j in range(6)] for i in range(3)]

    rounds = {0: blocks(1.0, 0.01), 1: blocks(2.0, 0.01), 2: blocks(1.02, 0.05), 3: blocks(3.0, 0.01),
              4: blocks(1.1, 0.6)}
    batches = [1, 1, 1, 4, 1]
    # 1 is wholly above 0; 2 overlaps 0 (could still be fastest); 3 is alone at its batch; 4's interval is wide
    # enough to reach 0's
    assert outpaced_units(rounds, batches) == {1: 0}
