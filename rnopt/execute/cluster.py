"""Tasks on a Ray cluster (`pip install 'rnopt[ray]'`): `--cluster local` starts a private cluster on this machine
for the length of the command; `--cluster ADDRESS` (or `$RNOPT_CLUSTER`) joins a running one whose nodes have rnopt
and the runtimes installed.

What travels is what a subprocess worker reads: the task and its specs as JSON (rnopt.execute.tasks). A node
builds the artifacts a spec names by recipe in its own store (sha256 checked), and reads the task's data from
the reference (a bundled set, or a path every node sees). The remote side is `rnopt.execute.worker.handle`, the
same code a fresh subprocess runs. An evaluation fans out: its images are cut into ranges of whole batches, one
per CPU of the cluster, each a `predict` task on its own worker, and the outputs come back to be scored here by
the code a local run scores with (counts and per-image outputs, never averages of averages: equal bit for bit).

Timing is never shared: a timing task asks for every CPU of one node and its `rnopt-timing` resource, so nothing
else is scheduled on that node while it runs. Memory is measured in a fresh process that the Ray worker starts on
its node, as everywhere else.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

from rnopt.errors import RnoptError, first_line
from rnopt.execute.base import Executor
from rnopt.execute.handlers import Advance, merge_predictions, specs_of
from rnopt.execute.process import describe, request_for
from rnopt.execute.tasks import OUTCOMES, Outcome, OutputsOutcome, Task, prediction_task
from rnopt.openvino_io import (
    native_stderr_silenced,  # fd 2 quiet while Ray's native side starts
)
from rnopt.spec import VariantSpec

TIMING_RESOURCE = "rnopt-timing"  # one per node: at most one timing task on a node at a time
CLUSTER_ENV = "RNOPT_CLUSTER"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RnoptError("--cluster needs Ray: pip install 'rnopt[ray]' (the default, without --cluster, runs here "
                         "and needs no Ray)") from None
    return ray


def _handle(request: str) -> str:
    """The remote side: a worker's request in, its answer out (both JSON text)."""
    from rnopt.execute.worker import handle

    try:
        return json.dumps({"ok": handle(json.loads(request))})
    except RnoptError as exc:  # a task's own failure comes back as its one line, not as a Ray traceback
        return json.dumps({"error": str(exc)})


def _handle_in_fresh_process(request: str) -> str:
    """The remote side of a memory task: a fresh Python process on that node runs it (a Ray worker has its own
    heap history: measured there, ResNet-20 on ONNX Runtime added 0.4 MB where a fresh process adds 11.5 MB)."""
    from rnopt.execute.process import run_worker

    try:
        return json.dumps({"ok": run_worker(json.loads(request), "the memory task")})
    except RnoptError as exc:
        return json.dumps({"error": str(exc)})


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get(CLUSTER_ENV) or "local"
        self._started = False
        self._remotes: dict[bool, Any] = {}  # fresh process or not -> the remote function

    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        chosen = specs_of(task, specs)
        if task.kind == "evaluate":
            shards = self.shards(task)
            if len(shards) > 1:
                return self._evaluate_in_shards(task, chosen, shards, advance)
        [outcome] = self._submit([task], chosen)
        if advance:
            advance(0, f"{describe(task, chosen)}: done on the cluster")
        return outcome

    def run_all(self, tasks: list[Task], specs: Sequence[VariantSpec]) -> list[Outcome]:
        wanted = {i for task in tasks for i in task.spec_ids}
        return self._submit(tasks, [s for s in specs if s.id in wanted])

    def shards(self, task: Task) -> list[tuple[int, int]]:
        """An evaluation's images cut into one range of whole batches per CPU of the cluster (whole batches: a
        runtime's outputs may depend on the batch an image is in, and the merge must equal a local run)."""
        assert task.data is not None
        images = len(task.data.dataset().subset(task.data.limit))
        batch = int(task.config.get("batch_size", 100))
        workers = max(1, int(self._connect().cluster_resources().get("CPU", 1)))
        per_shard = math.ceil(math.ceil(images / batch) / workers) * batch
        return [(start, min(images, start + per_shard)) for start in range(0, images, per_shard)]

    def _evaluate_in_shards(self, task: Task, specs: list[VariantSpec], shards: list[tuple[int, int]],
                            advance: Advance | None) -> Outcome:
        """Every shard a predict task on its own worker, at once; the outputs merged and scored here."""
        parts = self._submit([prediction_task(task, start, stop) for start, stop in shards], specs)
        if advance:
            advance(shards[-1][1], f"{describe(task, specs)}: {len(shards)} shards done on the cluster")
        return merge_predictions(task, [p for p in parts if isinstance(p, OutputsOutcome)])

    def _submit(self, tasks: list[Task], specs: list[VariantSpec]) -> list[Outcome]:
        """The tasks sent at once, their outcomes in order; a task's own failure is its one line."""
        ray = self._connect()
        refs = [self.remote_for(task).options(**self.options_for(task)).remote(json.dumps(request_for(task, specs)))
                for task in tasks]
        try:
            answers = [json.loads(text) for text in ray.get(refs)]
        except ray.exceptions.RayError as exc:  # a worker or node lost, or a bug there: in one line
            cause = getattr(exc, "cause", None) or exc  # a task's own exception, without Ray's coloured frame
            raise RnoptError(f"{describe(tasks[0], specs)} failed on the cluster: {type(cause).__name__}: "
                             f"{first_line(cause, 200)}") from None
        outcomes = []
        for task, answer in zip(tasks, answers):
            if "error" in answer:
                raise RnoptError(f"{describe(task, specs)} failed on the cluster: {answer['error']}")
            outcomes.append(OUTCOMES[task.kind].from_dict(answer["ok"]))
        return outcomes

    def options_for(self, task: Task) -> dict[str, Any]:
        """Ray's scheduling options for `task`: a timing task gets a whole node, others one CPU."""
        if task.kind == "time":
            node = self.timing_node()
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            return {"num_cpus": node["Resources"]["CPU"], "resources": {TIMING_RESOURCE: 1},
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
        return {"num_cpus": 1}

    def remote_for(self, task: Task) -> Any:
        """The remote function that runs `task`: for memory, one that starts a fresh process on its node."""
        fresh = task.kind == "memory"
        if fresh not in self._remotes:
            self._remotes[fresh] = self._connect().remote(_handle_in_fresh_process if fresh else _handle)
        return self._remotes[fresh]

    def timing_node(self) -> dict[str, Any]:
        """A live node that offers the timing resource (the first; `ray.nodes()` order)."""
        nodes = [n for n in self._connect().nodes() if n.get("Alive") and TIMING_RESOURCE in n.get("Resources", {})]
        if not nodes:
            raise RnoptError(f"no node of the cluster {self.address} offers the {TIMING_RESOURCE} resource: start "
                             f"each node that may time with --resources '{{\"{TIMING_RESOURCE}\": 1}}'")
        return nodes[0]

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                        "logging_level": logging.ERROR, "configure_logging": True}
            with native_stderr_silenced():  # Ray's C++ side logs to the terminal; its errors are raised anyway
                if self.address == "local":  # a private cluster: this machine's cores, one timing slot
                    ray.init(num_cpus=os.cpu_count() or 1, resources={TIMING_RESOURCE: 1}, **settings)
                else:
                    try:
                        ray.init(address=self.address, **settings)
                    except (ConnectionError, RuntimeError, ValueError) as exc:
                        raise RnoptError(f"cannot join the Ray cluster at {self.address}: "
                                         f"{str(exc).splitlines()[0]}") from None
            self._started = True
        return ray

    def close(self) -> None:
        """Leave the cluster (a private local one shuts down with it)."""
        if self._started:
            _ray().shutdown()
            self._started, self._remotes = False, {}
