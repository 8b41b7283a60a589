"""Latency of each runtime and precision, ResNet-20 (CIFAR) and ResNet-50 (224x224), batch 1 and 8.

Run with `make bench` (pytest-benchmark, JSON in benchmarks/results.json). Not part of the unit tests.
"""
from __future__ import annotations

import numpy as np
import pytest

from rnopt.artifacts import ArtifactStore, artifact_for
from rnopt.execute import load_variant
from rnopt.spec import VariantSpec

# (backend, model file, precision asked for); the id names the precision that runs
CASES = [
    ("torch", "fp32", None),
    ("onnxruntime", "fp32", None),
    ("onnxruntime", "int8", None),
    ("openvino", "fp32", "fp32"),
    ("openvino", "fp32", "bf16"),
    ("openvino", "int8", "int8"),
]


def _session(model_files, name, backend, variant, precision):
    artifact = artifact_for(name if backend == "torch" else str(model_files[name][variant]))
    return load_variant(VariantSpec(artifact, backend, threads=2, precision=precision), ArtifactStore()).session


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("backend, variant, precision", CASES, ids=[f"{b}-{p or v}" for b, v, p in CASES])
@pytest.mark.parametrize("name", ["resnet20_cifar10", "resnet50"])
def test_latency(benchmark, model_files, name, backend, variant, precision, batch):
    size = 32 if name.endswith("cifar10") else 224
    session = _session(model_files, name, backend, variant, precision)
    prepared = session.prepare(np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32))
    benchmark.extra_info.update(precision_ran=session.precision, threads=session.threads, batch=batch)
    benchmark.pedantic(session.run, args=(prepared,), rounds=30 if name == "resnet50" else 200,
                       warmup_rounds=5, iterations=1)
