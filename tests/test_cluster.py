"""The Ray executor on a private local cluster (`--cluster local`): tasks shipped as JSON to Ray workers give the
outcomes a local run gives; timing gets a node to itself; without Ray the flag says what to install."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from rnopt.artifacts import artifact_for
from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.execute import DataRef, InProcessExecutor, Task
from rnopt.execute.tasks import embedding_task, evaluation_task
from rnopt.spec import ArtifactSpec, VariantSpec

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'rnopt[ray]')")


@pytest.fixture(scope="module")
def cluster():
    from rnopt.execute.cluster import RayExecutor

    executor = RayExecutor("local")
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def pair(fp32_onnx, int8_onnx):
    return [VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime"),
            VariantSpec(artifact_for(str(int8_onnx)), "onnxruntime")]


def test_an_evaluation_on_the_cluster_fans_out_and_equals_the_local_one(cluster, pair):
    task = evaluation_task(pair, DataRef("cifar10", 200), 50)
    shards = cluster.shards(task)  # connects
    workers = int(ray.cluster_resources()["CPU"])
    assert len(shards) == min(workers, 4) and shards[0][0] == 0 and shards[-1][1] == 200
    assert all(stop - start == 200 // len(shards) for start, stop in shards)  # whole batches of 50
    told: list[tuple[int, str | None]] = []
    there = cluster.run(task, pair, lambda n=1, note=None: told.append((n, note)))
    here = InProcessExecutor().run(task, pair)
    assert asdict(there.section) == asdict(here.section) and not there.failures
    assert [r.n for r in there.section.results] == [200, 200]
    # progress from the workers while they ran, batch by batch (4 batches of 50), then the shards' note
    assert sum(n for n, _ in told) == 200 and len([n for n, _ in told if n == 50]) >= 3, told
    assert told[-1][1].endswith(f"{len(shards)} shards done on the cluster")


def test_an_embedding_on_the_cluster_equals_the_local_one(cluster, image_folder):
    spec = VariantSpec(artifact_for("resnet20_cifar10", head="features"), "onnxruntime")
    task = embedding_task(spec, DataRef(str(image_folder), unlabelled_ok=True), 7)
    there, here = cluster.run(task, [spec]), InProcessExecutor().run(task, [spec])
    assert np.array_equal(there.vectors, here.vectors) and there.paths == here.paths


def test_timing_on_the_cluster_gets_a_node_to_itself_and_memory_a_fresh_process(cluster, pair):
    node = cluster.timing_node()
    options = cluster.options_for(Task("time", (pair[0].id,)))
    # every CPU of the node and its one timing slot: nothing else is scheduled there while it runs
    assert options["num_cpus"] == node["Resources"]["CPU"] and options["resources"] == {"rnopt-timing": 1}
    assert options["scheduling_strategy"].node_id == node["NodeID"]
    outcome = cluster.bench(pair, BenchConfig([1], warmup=1, iterations=5, min_time=0, memory=True))
    assert [r.spec_id for r in outcome.results] == [s.id for s in pair] and not outcome.failures
    assert all(r.iterations >= 5 for r in outcome.results)
    # memory as a fresh local process measures it (a Ray worker's own heap would hide most of it)
    here = InProcessExecutor().measure_memory({s.id: (s, 1) for s in pair})
    for result in outcome.results:
        assert 0.5 < result.memory_mb / here[result.spec_id].added_mb < 2, (result.memory_mb, here[result.spec_id])


def test_a_task_that_fails_on_the_cluster_is_one_line(cluster, tmp_path):
    gone = VariantSpec(ArtifactSpec(str(tmp_path / "gone.onnx")), "onnxruntime")
    with pytest.raises(RnoptError, match=r"^evaluating gone.onnx \[onnxruntime\] failed on the cluster: .*does not "
                                         r"exist"):
        cluster.run(evaluation_task([gone], DataRef("cifar10", 10), 10), [gone])


def test_the_cli_runs_bench_and_eval_on_a_local_cluster(cli, tmp_path, fp32_onnx, int8_onnx):
    r = cli("eval", fp32_onnx, int8_onnx, "--limit", "100", "--cluster", "local", "--json", tmp_path / "e.json")
    assert r.code == 0, r.err
    assert cli("eval", fp32_onnx, int8_onnx, "--limit", "100", "--json", tmp_path / "l.json").code == 0
    assert json.loads((tmp_path / "e.json").read_text())["evals"] == json.loads((tmp_path / "l.json").read_text())["evals"]


def test_without_ray_the_cluster_flag_says_what_to_install(tmp_path, fp32_onnx):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from rnopt.cli import main\n"
            f"sys.exit(main(['eval', {str(fp32_onnx)!r}, '--limit', '10', '--cluster', 'local']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--cluster needs Ray: pip install 'rnopt[ray]'" in proc.stderr


def test_rnopt_run_times_and_evaluates_on_a_local_cluster(cli, tmp_path):
    """The whole pipeline with its timing and evaluation as cluster tasks: every variant timed and scored, the
    accuracy figures equal to those the same tasks give here."""
    out = tmp_path / "reports"
    r = cli("run", "--backend", "onnxruntime", "--limit", "200", "--iterations", "5", "--min-time", "0",
            "--warmup", "1", "--no-memory", "--quiet", "--cluster", "local", "--output", out)
    assert r.code == 0, r.err
    [folder] = out.iterdir()
    record = json.loads((folder / "report.json").read_text())
    timed = {b["spec_id"] for b in record["bench"]}
    assert timed == {s["id"] for s in record["specs"]} and len(timed) == 3  # fp32, fused, int8 on ORT
    specs = [VariantSpec.from_dict(s) for s in record["specs"]]
    scored = record["evals"][0]["results"]
    here = InProcessExecutor().run(evaluation_task([s for s in specs if s.id in {e["spec_id"] for e in scored}],
                                                   DataRef("cifar10", 200), 100), specs)
    assert [(e["spec_id"], e["top1"]) for e in scored] == [(e.spec_id, e.top1) for e in here.section.results]


def test_rnopt_tune_validates_times_and_chooses_on_a_local_cluster(cli, tmp_path, image_folder):
    """tune's validation, timing and test figures (on a small folder) as cluster tasks: every candidate's validation
    score equals the one a search here gives (the same outputs, bit for bit); the choice is made from them."""
    common = ("--backend", "onnxruntime", "--recipe", "minmax", "--limit", "200", "--iterations", "5",
              "--min-time", "0.05", "--quiet", "--no-knobs",  # knobs are timed on this machine only
              "--test-data", image_folder)
    reports = {}
    for where, extra in (("cluster", ("--cluster", "local")), ("here", ())):
        assert cli("tune", "--output", tmp_path / where, *common, *extra).code == 0
        [folder] = (tmp_path / where).iterdir()
        reports[where] = json.loads((folder / "report.json").read_text())
    searches = {where: r["searches"][0] for where, r in reports.items()}
    scores = {where: {c["spec_id"]: c["score"] for c in s["candidates"]} for where, s in searches.items()}
    assert scores["cluster"] == scores["here"] and len(scores["cluster"]) == 3  # fp32, fused, int8 on ORT
    assert searches["cluster"]["chosen_id"] in scores["cluster"]
    assert {b["spec_id"] for b in reports["cluster"]["bench"]} <= set(scores["cluster"])
    assert reports["cluster"]["evals"][0]["results"][0]["spec_id"] == searches["cluster"]["reference_id"]
    assert reports["cluster"]["evals"] == reports["here"]["evals"] and reports["here"]["evals"][0]["results"][0]["n"] == 18


def test_sensitivity_probes_run_as_cluster_tasks_and_agree_with_a_local_analysis(cli, tmp_path, fp32_onnx, int8_onnx):
    """Each ground truth (an int8 model with one tensor's nodes kept in float) a probe task on its own worker; the
    gains equal those the same analysis computes here."""
    common = ("sensitivity", fp32_onnx, int8_onnx, "--limit", "100", "--top", "3", "--sqnr-images", "50",
              "--measure", "cosine")  # continuous: every ground truth a different gain
    assert cli(*common, "--cluster", "local", "--json", tmp_path / "cluster.json").code == 0
    assert cli(*common, "--json", tmp_path / "here.json").code == 0
    rows = {where: [(r["tensor"], r["score_change"]) for r in json.loads((tmp_path / f"{where}.json").read_text())
                    ["sensitivity"][0]["layers"] if r["score_change"] is not None] for where in ("cluster", "here")}
    assert len({gain for _, gain in rows["here"]}) == 3 and rows["cluster"] == rows["here"]


def test_a_worker_that_breaks_is_one_line_not_a_ray_traceback(cluster, pair):
    from rnopt.execute.cluster import RayExecutor

    def breaks(request: str, *_: object) -> str:
        raise ValueError("the worker fell over\nand said more")

    class Broken(RayExecutor):
        def remote_for(self, task):  # noqa: ANN001, ANN202 - a worker whose code raises what no task raises
            return self._connect().remote(breaks)

    broken = Broken("local")  # joins the cluster the module started
    with pytest.raises(RnoptError) as caught:
        broken.run(evaluation_task(pair[:1], DataRef("cifar10", 10), 10), pair)
    assert str(caught.value) == (f"evaluating {pair[0].label} failed on the cluster: ValueError: the worker fell "
                                 f"over")


def _descendants(root: int) -> dict[int, bytes]:
    """Every process under `root` now, with its command line."""
    parents, lines = {}, {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                lines[int(proc.name)] = (proc / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = lines[pid]
                frontier.append(pid)
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_cluster_work_and_leaves_nothing_behind(tmp_path, fp32_onnx, int8_onnx, signum):
    """`rnopt eval --cluster local` stopped while its workers evaluate: one line, its exit status, no output file,
    and every process of its private cluster (GCS, raylet, workers) gone within seconds."""
    out = tmp_path / "e.json"
    proc = subprocess.Popen([sys.executable, "-m", "rnopt", "eval", str(fp32_onnx), str(int8_onnx), "--cluster",
                             "local", "--json", str(out), "--quiet"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline, working = time.monotonic() + 120, {}
    while time.monotonic() < deadline and proc.poll() is None:
        tree = _descendants(proc.pid)
        if any(line.startswith(b"ray::_handle") for line in tree.values()):  # a worker is evaluating
            working = tree
            break
        time.sleep(0.2)
    assert working, "the evaluation never reached a Ray worker"
    time.sleep(1.0)
    working.update(_descendants(proc.pid))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    code, said = {signal.SIGTERM: (143, "terminated (SIGTERM)"), signal.SIGINT: (130, "interrupted (SIGINT)")}[signum]
    assert proc.returncode == code and said in err and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in working):
        time.sleep(0.5)
    left = {pid: line.split(b"\0")[0][:80] for pid, line in working.items() if _alive(pid)}
    assert not left, f"left running: {left}"


def test_a_variant_that_breaks_its_worker_every_time_is_a_failure_and_the_others_are_scored(cluster, pair):
    """An int8 variant whose worker dies whenever it is loaded (retries used up): reported as failed with its
    reason; the fp32 variant's figures equal a local evaluation of it alone."""
    from rnopt.execute.cluster import RayExecutor, _handle

    doomed = pair[1].id

    def dies_with_the_int8_variant(request: str, *rest: object) -> str:
        if doomed in request:
            os._exit(1)  # what a runtime crash does to a worker
        return _handle(request, *rest)

    class Crashing(RayExecutor):
        def remote_for(self, task):  # noqa: ANN001, ANN202
            return self._connect().remote(dies_with_the_int8_variant)

    task = evaluation_task(pair, DataRef("cifar10", 200), 50)
    there = Crashing("local").run(task, pair)  # joins the cluster the module started
    here = InProcessExecutor().run(evaluation_task(pair[:1], DataRef("cifar10", 200), 50), pair)
    assert asdict(there.section) == asdict(here.section)
    [failure] = there.failures
    assert (failure.spec_id, failure.label, failure.stage) == (doomed, pair[1].label, "eval")
    assert "failed on the cluster" in failure.reason and "Worker" in failure.reason, failure.reason


def test_nodes_that_do_not_see_the_folder_get_their_shards_through_the_object_store(cluster, pair, image_folder,
                                                                                    tmp_path, monkeypatch):
    """The images named by a path the workers do not have (relative to this process's folder, not theirs): each
    shard's images are sent; the figures equal a local run's."""
    import shutil

    shutil.copytree(image_folder, tmp_path / "only-here")
    cluster.shards(evaluation_task(pair, DataRef("cifar10", 10), 10))  # connected: the workers' folder is set
    monkeypatch.chdir(tmp_path)
    task = evaluation_task(pair, DataRef("only-here"), 3)
    assert len(cluster.shards(task)) > 1
    there = cluster.run(task, pair)
    here = InProcessExecutor().run(task, pair)
    assert asdict(there.section) == asdict(here.section) and not there.failures
    assert [r.n for r in there.section.results] == [18, 18]


def test_a_variant_that_breaks_its_worker_is_left_out_of_the_timing_as_a_failure(cluster, pair):
    """Timing lost on every try: each variant is tried alone in a fresh process, the one that kills its worker is
    a Failure with the reason, and the others are timed."""
    from rnopt.execute.cluster import RayExecutor, _handle

    doomed = pair[1].id

    def dies_with_the_int8_variant(request: str, *rest: object) -> str:
        if doomed in request:
            os._exit(1)
        return _handle(request, *rest)

    class Crashing(RayExecutor):
        def remote_for(self, task):  # noqa: ANN001, ANN202
            return self._connect().remote(dies_with_the_int8_variant)

    outcome = Crashing("local").bench(pair, BenchConfig([1], warmup=1, iterations=5, min_time=0.0))
    assert [r.spec_id for r in outcome.results] == [pair[0].id]
    [failure] = outcome.failures
    assert (failure.spec_id, failure.label, failure.stage) == (doomed, pair[1].label, "bench")
    assert "failed on the cluster" in failure.reason and "Worker" in failure.reason, failure.reason


def test_a_private_cluster_starts_with_rays_usage_stats_off(cluster):
    """Ray reports usage by default; rnopt's private cluster starts with it off (RAY_USAGE_STATS_ENABLED=0 in
    the environment its processes start with), and the driver's own environment is left as it was."""
    from pathlib import Path

    if "RAY_USAGE_STATS_ENABLED" in os.environ:
        pytest.skip("the user's own RAY_USAGE_STATS_ENABLED decides")
    cluster.timing_node()  # connects: starts the cluster
    assert "RAY_USAGE_STATS_ENABLED" not in os.environ
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    environs = {}
    for pid in children:
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            environs[name] = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert "gcs_server" in environs, sorted(environs)
    assert b"RAY_USAGE_STATS_ENABLED=0" in environs["gcs_server"]
