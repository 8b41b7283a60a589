"""Two machine types on a two-node Ray cluster made with Ray's own test utility (ray.cluster_utils.Cluster, on
127.0.0.1 only): `--nodes` times the same plan on each type, the report shows both, `compare-runs` compares them;
an evaluation whose worker is killed mid-way is retried and its figures equal a local run's."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from rnopt.artifacts import artifact_for
from rnopt.execute import DataRef, InProcessExecutor
from rnopt.execute.tasks import Task, evaluation_task
from rnopt.fusion import optimize_model
from rnopt.spec import VariantSpec

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install 'rnopt[ray]')")

TIMING = {"rnopt-timing": 1}
QUICK = ("--batch-size", "1", "--warmup", "1", "--iterations", "5", "--min-time", "0", "--no-memory", "--quiet")


@pytest.fixture(scope="module")
def two_nodes():
    """Two single-CPU nodes labelled type=a and type=b, each offering the timing slot; loopback only (conftest
    sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before Ray is imported)."""
    from ray.cluster_utils import Cluster

    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0"
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": TIMING, "labels": {"type": "a"}, "node_ip_address": "127.0.0.1",
        "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources=TIMING, labels={"type": "b"}, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    assert cluster.address.startswith("127.0.0.1:")
    yield cluster.address
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()


def test_a_bench_over_two_machine_types_is_one_report_with_both(cli, tmp_path, two_nodes, fp32_onnx, int8_onnx):
    out = tmp_path / "b.json"
    r = cli("bench", fp32_onnx, int8_onnx, "--backend", "onnxruntime", *QUICK, "--cluster", two_nodes,
            "--nodes", "type=a,type=b", "--json", out)
    assert r.code == 0, r.err
    assert cli("report", out, "-o", tmp_path / "b.md").code == 0
    record = json.loads(out.read_text())
    timed = sorted((b["spec_id"], b["machine"]) for b in record["bench"])
    ids = sorted(s["id"] for s in record["specs"])
    assert timed == sorted((i, m) for i in ids for m in ("type=a", "type=b"))  # every variant on every type
    assert set(record["machines"]) == {"type=a", "type=b"}
    assert all(env["cpu_model"] and env["versions"]["onnxruntime"] for env in record["machines"].values())
    report = (tmp_path / "b.md").read_text()
    assert "Machine types side by side" in report and "type=a: p50 ms (batch 1)" in report
    assert "type=b: speed-up" in report and "Environment of the machine type type=b (it timed)" in report
    # compare-runs: one type's timings against the other's, joined variant by variant
    r = cli("compare-runs", f"{out}#type=a", f"{out}#type=b", "--json", tmp_path / "c.json")
    assert r.code in (0, 1), r.err  # 1: the noise of one shared host may read as a regression
    rows = json.loads((tmp_path / "c.json").read_text())["comparison"]
    assert len([c for c in rows["rows"] if c["metric"] == "p50 latency ms"]) == 2
    r = cli("compare-runs", f"{out}#type=c", f"{out}#type=b")
    assert r.code == 1 and "has no timings on the machine type type=c (its types: type=a, type=b)" in r.err


def test_each_machine_type_is_timed_on_a_node_of_its_own_type(two_nodes):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from rnopt.execute import Task
    from rnopt.execute.cluster import RayExecutor

    cluster = RayExecutor(two_nodes, ["type=b", "type=a"])
    try:
        chosen = cluster.machine_nodes()
        assert {selector: node["Labels"]["type"] for selector, node in chosen.items()} == {"type=b": "b", "type=a": "a"}
        for node in chosen.values():  # pinned there, with the whole node and its timing slot
            options = cluster.options_for(Task("time", ("x",)), node)
            assert isinstance(options["scheduling_strategy"], NodeAffinitySchedulingStrategy)
            assert options["scheduling_strategy"].node_id == node["NodeID"] and options["resources"] == TIMING
    finally:
        cluster.close()


def test_a_machine_type_no_node_has_is_refused_in_one_line(cli, two_nodes, fp32_onnx):
    r = cli("bench", fp32_onnx, *QUICK, "--cluster", two_nodes, "--nodes", "type=c")
    assert r.code == 1 and "Traceback" not in r.err
    assert "--nodes type=c: no live node of the cluster" in r.err and "type=a" in r.err and "type=b" in r.err
    r = cli("bench", fp32_onnx, *QUICK, "--nodes", "type=a")
    assert r.code == 1 and "--nodes picks machine types of a Ray cluster: give --cluster" in r.err
    r = cli("bench", fp32_onnx, *QUICK, "--cluster", two_nodes, "--nodes", "type=")
    assert r.code == 2 and "KEY=VALUE" in r.err


def _kill_a_busy_worker(killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first Ray worker seen running an rnopt task (its process title: ray::_handle) for 1 s."""
    first_seen: dict[int, float] = {}
    while not stop.is_set() and not killed:
        for proc in Path("/proc").iterdir():
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title.startswith(b"ray::_handle"):
                pid = int(proc.name)
                if time.monotonic() - first_seen.setdefault(pid, time.monotonic()) > 1.0:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
        time.sleep(0.1)


def test_an_evaluation_whose_worker_is_killed_is_retried_and_exact(two_nodes, tmp_path, fp32_onnx, int8_onnx,
                                                                   monkeypatch):
    """Three variants on half the CIFAR-10 test images (5,000: each shard's task runs long enough to be caught
    running), in shards on the two nodes; one worker killed mid-way."""
    from rnopt.execute.cluster import RayExecutor

    fused = tmp_path / "fused.onnx"
    optimize_model(fp32_onnx, fused)
    specs = [VariantSpec(artifact_for(str(p)), "onnxruntime") for p in (fp32_onnx, fused, int8_onnx)]
    task = evaluation_task(specs, DataRef("cifar10", 5_000), 250)
    here = InProcessExecutor().run(task, specs)
    cluster = RayExecutor(two_nodes)
    split: list[Task] = []  # shards lost on every try are sent again one spec each: not what a retry should need
    alone = RayExecutor._each_spec_alone
    monkeypatch.setattr(RayExecutor, "_each_spec_alone", lambda self, predict, s: split.append(predict) or
                        alone(self, predict, s))
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_busy_worker, args=(killed, stop))
    killer.start()
    try:
        there = cluster.run(task, specs)
    finally:
        stop.set()
        killer.join()
        cluster.close()
    assert killed, "no worker was running a task to kill"
    assert there.section == here.section and not there.failures and not split  # the killed shard ran again whole
    assert [r.n for r in there.section.results] == [5_000] * 3


def test_a_node_without_the_model_files_takes_them_through_the_object_store(two_nodes, tmp_path):
    """The workers' store is empty (a cache of their own): they take the fused files from Ray's object store,
    sha256 checked (one the driver had, one it built for them once), and never build their parent; the figures
    equal a local run's."""
    from dataclasses import replace

    from rnopt.artifacts import ArtifactStore, file_sha256
    from rnopt.execute.cluster import RayExecutor
    from rnopt.recipes import optimize_step

    fused = artifact_for("resnet20_cifar10").then(optimize_step())
    basic = artifact_for("resnet20_cifar10").then(optimize_step(level="basic"))  # built nowhere yet
    store = ArtifactStore()
    store.model_file(fused)
    sha = store.results[fused].sha256
    spec = VariantSpec(replace(fused, built_sha256=sha), "onnxruntime")
    other = VariantSpec(basic, "onnxruntime")
    assert store.entry_files(basic) is None
    task = evaluation_task([spec, other], DataRef("cifar10", 200), 50)
    node_cache = tmp_path / "node-cache"
    ray.init(address=two_nodes, runtime_env={"env_vars": {"RNOPT_CACHE_DIR": str(node_cache)}},
             log_to_driver=False)
    try:
        cluster = RayExecutor(two_nodes)
        assert len(cluster.shards(task)) == 2  # one per node
        there = cluster.run(task, [spec, other])
    finally:
        ray.shutdown()
    here = InProcessExecutor().run(task, [spec, other])
    assert there.section == here.section and not there.failures
    entries = node_cache / "artifacts"
    # both shipped whole (the one built nowhere was built once, here); their parent, the export, never made there
    assert sorted(p.name for p in entries.iterdir()) == sorted([fused.id, basic.id])
    assert file_sha256(entries / fused.id / "model.onnx") == sha
    assert file_sha256(entries / basic.id / "model.onnx") == file_sha256(ArtifactStore().model_file(basic).path)


def test_rnopt_run_times_every_variant_on_each_machine_type(cli, tmp_path, two_nodes):
    out = tmp_path / "reports"
    r = cli("run", "--backend", "onnxruntime", "--limit", "100", *QUICK, "--cluster", two_nodes,
            "--nodes", "type=a,type=b", "--output", out)
    assert r.code == 0, r.err
    [folder] = out.iterdir()
    record = json.loads((folder / "report.json").read_text())
    ids = {s["id"] for s in record["specs"]}
    assert len(ids) == 3 and {(b["spec_id"], b["machine"]) for b in record["bench"]} == \
        {(i, m) for i in ids for m in ("type=a", "type=b")}
    assert set(record["machines"]) == {"type=a", "type=b"}
    assert [e["n"] for e in record["evals"][0]["results"]] == [100] * 3  # evaluated once, not per type
    report = (folder / "report.md").read_text()
    assert "Machine types side by side" in report and "Environment of the machine type type=a (it timed)" in report
