"""Tasks on a Ray cluster (`pip install 'rnopt[ray]'`): `--cluster local` starts a private cluster on this machine
for the length of the command; `--cluster ADDRESS` (or `$RNOPT_CLUSTER`) joins a running one whose nodes have rnopt
and the runtimes installed.

What travels is what a subprocess worker reads: the task and its specs as JSON (rnopt.execute.tasks), and the
model files it loads: each artifact is built once, here, and put in Ray's object store once, and a node whose
store lacks it takes those bytes (sha256 checked against the spec's); one this machine cannot build is built by
recipe on the node that needs it. A node reads the task's data from the reference (a bundled set, or a path every node
sees). The remote side is `rnopt.execute.worker.handle`, the same code a fresh subprocess runs. An evaluation fans
out: its images are cut into ranges of whole batches, one per CPU of the cluster, each a `predict` task on its own
worker, and the outputs come back to be scored here by the code a local run scores with (counts and per-image
outputs, never averages of averages: equal bit for bit).

Timing is never shared: a timing task asks for every CPU of one node and its `rnopt-timing` resource, so nothing
else is scheduled on that node while it runs. Memory is measured in a fresh process that the Ray worker starts on
its node, as everywhere else.

Machine types: `nodes` (`--nodes KEY=VALUE,...`) names them by a Ray node label (`ray start --labels
'{"KEY": "VALUE"}'`) or, as a bare NAME, a custom resource (`--resources '{"NAME": 1}'`). The same timing task
then runs on one node of each type, one type after another (nodes that share a host never time at once), and
each result carries its type (`BenchResult.machine`) and the record each type's environment.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnopt.data.datasets import BUNDLED, ImageDataset
from rnopt.environment import snapshot
from rnopt.errors import Interrupted, RnoptError, first_line
from rnopt.bench import BenchConfig
from rnopt.execute.base import Executor, Progress, memory_task
from rnopt.execute.handlers import Advance, merge_predictions, specs_of
from rnopt.execute.process import describe, request_for
from rnopt.execute.tasks import OUTCOMES, BenchOutcome, Outcome, OutputsOutcome, Task, prediction_task
from rnopt.openvino_io import (
    native_stderr_silenced,  # fd 2 quiet while Ray's native side starts
)
from rnopt.privacy import ray_silenced
from rnopt.results import Failure
from rnopt.spec import IN_FRAMEWORK, VariantSpec

if TYPE_CHECKING:
    from rnopt.artifacts import ArtifactStore

TIMING_RESOURCE = "rnopt-timing"  # one per node: at most one timing task on a node at a time
TASK_RETRIES = 2  # a worker or node lost mid-task: the task runs again (deterministic: the same figures), twice
CLUSTER_ENV = "RNOPT_CLUSTER"
POLL_S = 0.5  # how often the workers' progress is taken while they run


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RnoptError("--cluster needs Ray: pip install 'rnopt[ray]' (the default, without --cluster, runs here "
                         "and needs no Ray)") from None
    return ray


def _install(request: dict[str, Any], shipped: Sequence[dict[str, Any]]) -> ImageDataset | None:
    """The model files the driver sent through the object store, put in this node's artifact store where it lacks
    them (sha256 checked; one that does not match is built by its recipe instead); the shard of images it sent,
    if it sent one, as a dataset."""
    from rnopt.artifacts import ArtifactStore

    artifacts = {a.id: a for a in (VariantSpec.from_dict(s).artifact for s in request["specs"])}
    store = ArtifactStore()
    shard = None
    for entry in shipped:
        if "images" in entry:
            samples = [(label, functools.partial(bytes, data), shown) for label, data, shown in entry["images"]]
            shard = ImageDataset(entry["name"], entry["class_names"], samples)
        elif entry["id"] in artifacts:
            store.install(artifacts[entry["id"]], entry["files"])
    return shard


def _data_not_here(request: dict[str, Any]) -> str | None:
    """The folder an evaluation shard reads when this node does not have it (the driver then sends the images)."""
    ref = request["task"].get("data")
    if request["task"]["kind"] != "predict" or ref is None or ref["data"] in BUNDLED or Path(ref["data"]).exists():
        return None
    return ref["data"]


class _ProgressBox:
    """A Ray actor that holds the progress workers report (images done, notes) until the driver takes it."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str | None]] = []

    def add(self, n: int, note: str | None) -> None:
        self.events.append((n, note))

    def take(self) -> list[tuple[int, str | None]]:
        events, self.events = self.events, []
        return events


def _handle(request: str, box: Any = None, *shipped: dict[str, Any]) -> str:
    """The remote side: a worker's request in, its answer out (both JSON text); its progress told to `box` (a
    _ProgressBox, or None); `shipped`: model files the driver put in the object store (handed over as values)."""
    from rnopt.execute.worker import handle

    def advance(n: int = 1, note: str | None = None) -> None:
        box.add.remote(n, note)  # not waited for: the task goes on

    try:
        task = json.loads(request)
        shard = _install(task, shipped)
        missing = None if shard is not None else _data_not_here(task)
        if missing:
            return json.dumps({"error": f"data {missing} is not on this node", "data_not_here": True})
        answer = handle(task, advance if box is not None else None, shard)
        if task["task"]["kind"] == "time":  # the machine that timed, for the record's machine types
            answer["environment"] = asdict(snapshot())
        return json.dumps({"ok": answer})
    except RnoptError as exc:  # a task's own failure comes back as its one line, not as a Ray traceback
        return json.dumps({"error": str(exc)})


def _handle_in_fresh_process(request: str, box: Any = None, *shipped: dict[str, Any]) -> str:
    """The remote side of a memory task: a fresh Python process on that node runs it (a Ray worker has its own
    heap history: measured there, ResNet-20 on ONNX Runtime added 0.4 MB where a fresh process adds 11.5 MB)."""
    from rnopt.execute.process import run_worker

    try:
        task = json.loads(request)
        _install(task, shipped)
        return json.dumps({"ok": run_worker(task, "the memory task")})
    except RnoptError as exc:
        return json.dumps({"error": str(exc)})


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, nodes: Sequence[str] = ()) -> None:
        self.address = address or os.environ.get(CLUSTER_ENV) or "local"
        self.nodes = [parse_selector(n) for n in nodes]
        self._started = False
        self._remotes: dict[bool, Any] = {}  # fresh process or not -> the remote function
        self._shipped: dict[str, Any] = {}  # artifact id -> its entry's files in the object store (None: not here)
        self._box: Any = None  # the _ProgressBox actor workers report to (made when progress is first wanted)

    def bench(self, specs: list[VariantSpec], config: BenchConfig, on_progress: Progress | None = None
              ) -> BenchOutcome:
        """Without `nodes`, as everywhere. With them: every machine type times the specs, one type after another
        (memory measured there too), each result tagged with its type and each type's environment kept."""
        if not self.nodes or not specs:
            return super().bench(specs, config, on_progress)
        merged = BenchOutcome()
        for selector, node in self.machine_nodes().items():
            pinned = _Pinned(self, node)
            outcome = Executor.bench(pinned, specs, config, on_progress)
            for result in outcome.results:  # the label says where (for people); joins use spec id and machine
                result.machine, result.model = selector, f"{result.model} on {selector}"
            merged.results += outcome.results
            merged.failures += [replace(f, label=f"{f.label} on {selector}") for f in outcome.failures]
            if outcome.environment:  # none when no spec could be timed there (each failure says why)
                merged.machines[selector] = outcome.environment
        return merged

    def machine_nodes(self) -> dict[str, dict[str, Any]]:
        """Each `nodes` selector and the live node that times for it (the first that matches and offers the timing
        resource); a selector no node matches is an error that names what the nodes offer."""
        live = [n for n in self._connect().nodes() if n.get("Alive") and TIMING_RESOURCE in n.get("Resources", {})]
        chosen = {}
        for key, value in self.nodes:
            selector = f"{key}={value}" if value is not None else key
            match = next((n for n in live if _matches(n, key, value)), None)
            if match is None:
                offered = sorted({f"{k}={v}" for n in live for k, v in (n.get("Labels") or {}).items()
                                  if not k.startswith("ray.io/")}
                                 | {r for n in live for r in n.get("Resources", {}) if _custom(r)})
                raise RnoptError(f"--nodes {selector}: no live node of the cluster {self.address} with the "
                                 f"{TIMING_RESOURCE} resource has it (they offer: {', '.join(offered) or 'nothing'})")
            chosen[selector] = match
        return chosen

    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        chosen = specs_of(task, specs)
        if task.kind == "evaluate":
            shards = self.shards(task)
            if len(shards) > 1:
                return self._evaluate_in_shards(task, chosen, shards, advance)
        if task.kind == "time":
            outcome = self.time(task, chosen, None, advance)
        else:
            [outcome] = self._submit([task], chosen, advance=advance)
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
        images = shards[-1][1]
        told = [0]

        def at_most_all(n: int = 1, note: str | None = None) -> None:  # a retried shard reports its images again
            n = min(n, images - told[0])
            told[0] += n
            if advance:
                advance(n, note)

        whole = evaluation_listing(task, specs)  # each shard's content, so a node reading other images is caught
        planned = [prediction_task(task, start, stop, whole.part(start, stop).content_sha256())
                   for start, stop in shards]
        parts = self._submit(planned, specs, advance=at_most_all if advance else None, lost_ok=True)
        missing = [i for i, part in enumerate(parts) if isinstance(part, DataNotHere)]
        if missing:  # nodes that do not see the folder get their shard's images through the object store
            resent = self._submit([planned[i] for i in missing], specs, lost_ok=True,
                                  payloads=[[self._connect().put(shard_images(whole.part(*shards[i])))]
                                            for i in missing])
            for i, part in zip(missing, resent):
                parts[i] = part
        parts = [self._each_spec_alone(predict, specs) if isinstance(part, RnoptError) else part
                 for part, predict in zip(parts, planned)]
        at_most_all(images, f"{describe(task, specs)}: {len(shards)} shards done on the cluster")
        return merge_predictions(task, [p for p in parts if isinstance(p, OutputsOutcome)])

    def time(self, task: Task, specs: list[VariantSpec], node: dict[str, Any] | None, advance: Advance | None
             ) -> Outcome:
        """A timing task (on `node`, where given). One lost on every try runs again without the variants that
        break a worker by themselves (each loaded and run once, in a fresh process on a node), each of them a
        Failure with the reason; when none does, or all do, the loss is the command's one-line error."""
        [outcome] = self._submit([task], specs, node, advance, lost_ok=True)
        if not isinstance(outcome, RnoptError):
            return outcome
        batch = BenchConfig.from_dict(task.config).batch_sizes[0]
        broken = {}
        for spec in specs:
            try:
                [probe] = self._submit([memory_task(spec, batch)], [spec], node, lost_ok=True)
            except RnoptError as exc:
                probe = exc
            if isinstance(probe, RnoptError):
                broken[spec.id] = str(probe)
        rest = [s for s in specs if s.id not in broken]
        if not broken or not rest:
            raise outcome
        [timed] = self._submit([replace(task, spec_ids=tuple(s.id for s in rest))], rest, node, advance)
        assert isinstance(timed, BenchOutcome)
        timed.failures += [Failure(s.id, s.label, "bench", broken[s.id]) for s in specs if s.id in broken]
        return timed

    def _each_spec_alone(self, predict: Task, specs: list[VariantSpec]) -> OutputsOutcome:
        """A shard whose worker was lost on every try, again one spec per task: a spec that breaks its worker is a
        Failure with the reason, and the others are scored without it."""
        alone = [replace(predict, spec_ids=(spec.id,)) for spec in specs]
        combined = OutputsOutcome()
        for spec, part in zip(specs, self._submit(alone, specs, lost_ok=True)):
            if isinstance(part, RnoptError):
                combined.failures.append(Failure(spec.id, spec.label, "eval", str(part)))
                continue
            assert isinstance(part, OutputsOutcome)
            combined.outputs.update(part.outputs)
            combined.ran.update(part.ran)
            combined.failures += part.failures
            combined.labels, combined.dataset = part.labels, part.dataset
        return combined

    def _submit(self, tasks: list[Task], specs: list[VariantSpec], node: dict[str, Any] | None = None,
                advance: Advance | None = None, lost_ok: bool = False, payloads: list[list[Any]] | None = None
                ) -> list[Outcome]:
        """The tasks sent at once (to `node` only, where given), their outcomes in order; a task's own failure is
        its one line. The workers' progress comes back through `advance` while they run. A task whose worker was
        lost on every try raises its one line, or with `lost_ok` stands in the list as that RnoptError (and a shard
        whose node lacks its folder as DataNotHere). `payloads`: more object-store references for each task."""
        ray = self._connect()
        box = self.progress_box() if advance else None
        refs = [self.remote_for(task).options(**self.options_for(task, node)).remote(
            json.dumps(request_for(task, specs)), box, *self.shipped_for(specs_of(task, specs)), *extra)
            for task, extra in zip(tasks, payloads or [[] for _ in tasks])]

        def relay() -> None:
            for n, note in ray.get(box.take.remote()):
                advance(n, note)

        outcomes: list[Outcome | RnoptError] = []
        for task, value in zip(tasks, _wait(ray, refs, relay if box is not None else None)):
            if isinstance(value, ray.exceptions.RayError):  # a worker or node lost, or a bug there: in one line
                cause = getattr(value, "cause", None) or value  # a task's own exception, without Ray's frame
                lost = RnoptError(f"{describe(task, specs)} failed on the cluster: {type(cause).__name__}: "
                                  f"{first_line(cause, 200)}")
                if not lost_ok:
                    raise lost
                outcomes.append(lost)
                continue
            answer = json.loads(value)
            if answer.get("data_not_here") and lost_ok:
                outcomes.append(DataNotHere(answer["error"]))
                continue
            if "error" in answer:
                raise RnoptError(f"{describe(task, specs)} failed on the cluster: {answer['error']}")
            outcomes.append(OUTCOMES[task.kind].from_dict(answer["ok"]))
        return outcomes  # type: ignore[return-value]  # an RnoptError only where lost_ok

    def progress_box(self) -> Any:
        """The actor workers tell their progress to (no CPU of its own: it only holds counts)."""
        if self._box is None:
            self._box = self._connect().remote(num_cpus=0)(_ProgressBox).remote()
        return self._box

    def shipped_for(self, specs: Sequence[VariantSpec]) -> list[Any]:
        """The object-store references of the model files `specs` load, each built once, here, and put there once:
        a node whose store lacks one takes the bytes instead of building it again (one this machine cannot
        build, for want of a toolkit, is built on the node by recipe, sha256 checked)."""
        from rnopt.artifacts import ArtifactStore

        store = ArtifactStore()
        for spec in specs:
            if spec.artifact.id not in self._shipped and _loads_a_file(spec):
                files = _built_here(store, spec)
                self._shipped[spec.artifact.id] = None if files is None else \
                    self._connect().put({"id": spec.artifact.id, "files": files})
        ids = dict.fromkeys(s.artifact.id for s in specs)
        return [self._shipped[i] for i in ids if self._shipped.get(i) is not None]

    def options_for(self, task: Task, node: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ray's scheduling options for `task`: a timing task gets a whole node (`node`, else the first that
        times), others one CPU (on `node` where given)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if task.kind == "time":
            node = node or self.timing_node()
            return {"num_cpus": node["Resources"]["CPU"], "resources": {TIMING_RESOURCE: 1},
                    "max_retries": TASK_RETRIES,
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
        if node is not None:
            return {"num_cpus": 1, "max_retries": TASK_RETRIES,
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)}
        return {"num_cpus": 1, "max_retries": TASK_RETRIES}

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
            # Ray's C++ side logs to the terminal (its errors are raised anyway), and its init takes SIGTERM over
            with native_stderr_silenced(), _signal_handlers_kept():
                if self.address == "local":  # a private cluster: this machine's cores, one timing slot
                    with ray_silenced():
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
        super().close()
        if self._started:
            _ray().shutdown()
            self._started, self._remotes, self._shipped, self._box = False, {}, {}, None


def _value(ray: Any, ref: Any) -> Any:
    """A task's value, or the RayError that lost it."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return exc


def _wait(ray: Any, refs: list[Any], poll: Callable[[], None] | None = None) -> list[Any]:
    """The tasks' values (a RayError for a task that was lost) once all are done, `poll` called every POLL_S
    meanwhile and at the end; a signal's exception as itself (raised by rnopt's handler inside Ray's native wait,
    it comes out in a SystemError)."""
    try:
        pending = list(refs) if poll else []
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            poll()
        values = [_value(ray, ref) for ref in refs]
        if poll:
            poll()
        return values
    except SystemError as exc:
        if isinstance(exc.__cause__, (Interrupted, KeyboardInterrupt)):
            raise exc.__cause__ from None
        raise


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """The process's SIGTERM, SIGINT and SIGHUP handlers as they were before the block. `ray.init` sets its own
    SIGTERM handler (exit status 1, none of rnopt's cleanup); rnopt's makes SIGTERM unwind like Ctrl-C: partial
    outputs removed, the executor closed, a private cluster shut down with it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


class _Pinned(Executor):
    """The cluster's executor with every task sent to one node: a machine type's timing and memory."""

    name = "ray"

    def __init__(self, cluster: RayExecutor, node: dict[str, Any]) -> None:
        self.cluster, self.node = cluster, node

    def run(self, task: Task, specs: Sequence[VariantSpec], advance: Advance | None = None) -> Outcome:
        if task.kind == "time":
            return self.cluster.time(task, specs_of(task, specs), self.node, advance)
        [outcome] = self.cluster._submit([task], specs_of(task, specs), self.node, advance)
        return outcome


def _loads_a_file(spec: VariantSpec) -> bool:
    """Whether `spec`'s runtime loads a file (PyTorch runs a built-in model as it is)."""
    from rnopt.backends import backend_class

    try:
        formats = backend_class(spec.runtime).formats
    except RnoptError:  # a runtime this machine lacks: whether a file is needed is the node's business
        return True
    return spec.artifact.is_file or bool(spec.artifact.steps) or IN_FRAMEWORK not in formats


def _built_here(store: "ArtifactStore", spec: VariantSpec) -> dict[str, bytes] | None:
    """The files of `spec`'s cache entry, built here first where needed; None: a user's file, or a recipe this
    machine cannot build (the node builds it, or says why not)."""
    try:
        if not spec.artifact.is_file:
            store.model_file(spec.artifact)
    except RnoptError:
        return None
    return store.entry_files(spec.artifact)


class DataNotHere(RnoptError):
    """A node was sent a shard of a folder it does not have."""


def evaluation_listing(task: Task, specs: Sequence[VariantSpec]) -> ImageDataset:
    """An evaluation's images as a worker lists them: labels aligned with the first model's classes, the seeded
    subset."""
    from rnopt.artifacts import ArtifactStore
    from rnopt.backends import backend_class
    from rnopt.data.datasets import align_labels

    assert task.data is not None
    model = ArtifactStore().model_for(specs[0].artifact, backend_class(specs[0].runtime).formats)
    return align_labels(task.data.dataset(), model.class_names).subset(task.data.limit)


def shard_images(shard: ImageDataset) -> dict[str, Any]:
    """A shard read here, to be sent to a node that lacks its folder: each image's bytes with its label and name."""
    return {"name": shard.name, "class_names": shard.class_names,
            "images": [(label, read(), shown) for label, read, shown in shard.samples]}


def parse_selector(text: str) -> tuple[str, str | None]:
    """`KEY=VALUE` (a node label) or `NAME` (a custom resource), checked."""
    key, sep, value = text.strip().partition("=")
    if not key or (sep and not value):
        raise RnoptError(f"--nodes takes KEY=VALUE (a Ray node label) or NAME (a custom resource), not {text!r}")
    return key, value if sep else None


def _matches(node: dict[str, Any], key: str, value: str | None) -> bool:
    if value is None:
        return node.get("Resources", {}).get(key, 0) > 0
    return (node.get("Labels") or {}).get(key) == value


def _custom(resource: str) -> bool:
    """A resource someone named (not Ray's own CPU, memory, node:... or this tool's timing slot)."""
    return resource not in ("CPU", "GPU", "memory", "object_store_memory", TIMING_RESOURCE) \
        and not resource.startswith("node:") and not resource.startswith("accelerator_type:")
