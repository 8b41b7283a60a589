"""Evaluation on a local Ray cluster with 1 worker node then 2 (one CPU each), against the same task here.

    .venv/bin/python benchmarks/cluster_scaling.py A.onnx B.onnx   # two files of one model (fp32, int8)

Prints each wall time and whether the cluster's figures equal the local run's (README "On a cluster (Ray)").
The prediction cache is off: every output is computed.
"""
import os, sys, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RNOPT_PREDICTION_CACHE"] = "0"
from ray.cluster_utils import Cluster
from rnopt.artifacts import artifact_for
from rnopt.execute import DataRef, InProcessExecutor
from rnopt.execute.cluster import RayExecutor
from rnopt.execute.tasks import evaluation_task
from rnopt.spec import VariantSpec

specs = [VariantSpec(artifact_for(p), "onnxruntime") for p in sys.argv[1:3]]
task = evaluation_task(specs, DataRef("cifar10"), 250)
t = time.perf_counter(); here = InProcessExecutor().run(task, specs); print(f"here (2 threads): {time.perf_counter()-t:.1f} s", flush=True)
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
cluster.wait_for_nodes()
for workers in (1, 2):
    if workers == 2:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1"); cluster.wait_for_nodes()
    ex = RayExecutor(cluster.address)
    ex.run(evaluation_task(specs, DataRef("cifar10", 500), 250), specs)  # workers started, files built
    t = time.perf_counter(); there = ex.run(task, specs); wall = time.perf_counter() - t
    print(f"{workers} worker node(s), {len(ex.shards(task))} shard(s): {wall:.1f} s, equal to here: {there.section == here.section}", flush=True)
    ex.close()
cluster.shutdown()
