"""Executors run tasks: every kind, in this process and in a fresh worker that rebuilds the task, its specs and
its data from JSON, with the same outcome (what a cluster executor relies on)."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from rnopt.accuracy import validation_set
from rnopt.artifacts import artifact_for
from rnopt.bench import BenchConfig
from rnopt.embedding import Embedded
from rnopt.errors import RnoptError
from rnopt.execute import DataRef, EvalOutcome, InProcessExecutor, OutputsOutcome, SubprocessExecutor, Task
from rnopt.execute.tasks import embedding_task, evaluation_task, validation_task
from rnopt.onnx_model import model_meta
from rnopt.spec import VariantSpec


@pytest.fixture(scope="module")
def pair(fp32_onnx, int8_onnx):
    return [VariantSpec(artifact_for(str(fp32_onnx)), "onnxruntime"), VariantSpec(artifact_for(str(int8_onnx)),
                                                                                   "onnxruntime")]


def _both(task, specs):
    """The task's outcome in this process and in a fresh worker (the task sent as JSON)."""
    task = Task.from_dict(json.loads(json.dumps(task.to_dict())))
    return InProcessExecutor().run(task, specs), SubprocessExecutor().run(task, specs)


def test_an_evaluation_task_gives_the_same_figures_in_a_fresh_process(pair):
    here, there = _both(evaluation_task(pair, DataRef("cifar10", 200), 50), pair)
    assert isinstance(there, EvalOutcome) and not there.failures
    assert asdict(there.section) == asdict(here.section)
    [fp32, int8] = there.section.results
    assert fp32.n == int8.n == 200 and (fp32.spec_id, int8.spec_id) == (pair[0].id, pair[1].id)
    assert there.section.comparisons[0].candidate_id == pair[1].id


def test_a_validation_task_gives_each_specs_outputs_on_the_images_named_by_content(pair, fp32_onnx):
    validation = validation_set(model_meta(fp32_onnx), None, 60)
    here, there = _both(validation_task(pair, validation, 25), pair)
    assert isinstance(there, OutputsOutcome) and not there.failures
    # the worker decoded the validation images again, checked their sha256, and ran both specs in order
    [fp32], _ = InProcessExecutor().load([pair[0]])
    expected = fp32.session.predict(validation.images)
    assert np.array_equal(there.outputs[pair[0].id], expected)
    assert np.array_equal(there.outputs[pair[1].id], here.outputs[pair[1].id])
    assert not np.array_equal(there.outputs[pair[1].id], expected)  # the int8 model's own outputs
    # other images under the same name are refused, not silently used
    other = validation_set(model_meta(fp32_onnx), None, 59)
    other.sha256  # noqa: B018 - computed from 59 images, then named as the 60 the task reads
    mislabelled = validation_task(pair, other, 25)
    mislabelled = Task(mislabelled.kind, mislabelled.spec_ids, DataRef("cifar10-val", 60, other.sha256),
                       mislabelled.config)
    with pytest.raises(RnoptError, match="are not those cifar10-val gives here"):
        SubprocessExecutor().run(mislabelled, pair)


def test_an_embedding_task_gives_the_same_vectors_in_a_fresh_process(image_folder):
    spec = VariantSpec(artifact_for("resnet20_cifar10", head="features"), "onnxruntime")
    here, there = _both(embedding_task(spec, DataRef(str(image_folder), unlabelled_ok=True), 7), [spec])
    assert isinstance(there, Embedded) and there.vectors.shape == (18, 64)
    assert np.array_equal(there.vectors, here.vectors) and there.paths == here.paths
    assert there.class_names == ["airplane", "cat", "ship"] and list(there.labels) == list(here.labels)
    assert there.spec == spec.to_dict() and there.model_meta["head"] == "features"


def test_timing_and_memory_tasks_run_in_either_executor(pair):
    config = BenchConfig([1], warmup=1, iterations=5, min_time=0, memory=True)
    for executor in (InProcessExecutor(), SubprocessExecutor()):
        outcome = executor.bench(pair, config)
        assert [r.spec_id for r in outcome.results] == [s.id for s in pair] and not outcome.failures
        assert all(r.memory_mb and 0 < r.memory_mb < r.memory_process_mb for r in outcome.results)


def test_tasks_are_checked_and_travel_as_json(pair):
    task = evaluation_task(pair, DataRef("cifar10", 10), 5)
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task
    with pytest.raises(RnoptError, match="unknown task kind 'train'"):
        Task("train", (pair[0].id,))
    with pytest.raises(RnoptError, match="a memory task runs one spec, not 2"):
        Task("memory", tuple(s.id for s in pair), None, {"batch_size": 1})
    with pytest.raises(RnoptError, match="a probe task names two specs: the int8 model and the float model"):
        Task("probe", (pair[1].id,), None, {"nodes": ["Conv_0"]})
    with pytest.raises(RnoptError, match=f"names spec {pair[1].id}, which was not sent with it"):
        InProcessExecutor().run(task, pair[:1])


def test_no_runtime_session_is_opened_outside_the_backends():
    """Sessions and compiled models live in backends/ (the export check, optimizer, sensitivity and NNCF's
    scoring call the runtime's session module), so an executor that ships tasks needs nothing else."""
    from pathlib import Path

    import rnopt

    root = Path(rnopt.__file__).parent
    opening = ("InferenceSession(", ".compile_model(")
    found = [f"{path.relative_to(root)}: {needle}" for path in root.rglob("*.py")
             if path.relative_to(root).parts[0] != "backends" for needle in opening if needle in path.read_text()]
    assert found == []


def test_an_evaluation_put_back_together_from_shards_equals_the_whole(pair, fp32_onnx):
    """Predict tasks over ranges of whole batches, merged, give the evaluation task's figures bit for bit (a
    cluster fans an evaluation out this way)."""
    from rnopt.execute.handlers import merge_predictions
    from rnopt.execute.tasks import prediction_task

    whole = evaluation_task(pair, DataRef("cifar10", 250), 50)
    here = InProcessExecutor()
    parts = [here.run(prediction_task(whole, start, stop), pair) for start, stop in ((0, 100), (100, 200),
                                                                                   (200, 300))]
    assert [len(p.labels) for p in parts] == [100, 100, 50]  # the last range runs past the end: clipped
    merged = merge_predictions(whole, parts)
    assert asdict(merged.section) == asdict(here.run(whole, pair).section)
    features = [VariantSpec(artifact_for("resnet20_cifar10", head="features"), runtime) for runtime in
                ("onnxruntime", "torch")]
    whole = evaluation_task(features, DataRef("cifar10", 120), 40)
    parts = [here.run(prediction_task(whole, start, stop), features) for start, stop in ((0, 80), (80, 120))]
    assert asdict(merge_predictions(whole, parts).section) == asdict(here.run(whole, features).section)


def test_a_shard_read_from_other_images_than_planned_is_refused(pair, image_folder, tmp_path):
    """A predict task names its shard's content: a node whose copy of the folder differs says so, in one line."""
    import shutil

    from rnopt.execute.cluster import evaluation_listing  # what a cluster's driver plans shards from
    from rnopt.execute.tasks import prediction_task

    copy = tmp_path / "copy"
    shutil.copytree(image_folder, copy)
    whole = evaluation_task(pair, DataRef(str(copy)), 3)
    planned = evaluation_listing(whole, pair).part(0, 9).content_sha256()
    here = InProcessExecutor()
    assert here.run(prediction_task(whole, 0, 9, planned), pair).outputs  # the same images: read
    first = sorted((copy / "airplane").iterdir())[0]
    first.write_bytes((copy / "cat" / sorted((copy / "cat").iterdir())[0].name).read_bytes())  # one image replaced
    with pytest.raises(RnoptError, match=r"images 0-9 of .* here are not those the evaluation was planned on"):
        here.run(prediction_task(whole, 0, 9, planned), pair)
