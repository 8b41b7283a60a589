"""A runtime added from outside rnopt, as a user would: one module (its config and its backend) and one
`register_runtime` call. It runs one tiny model family in NumPy (global average pool, then a linear layer, read
from the ONNX file's initializers), which is enough to show that the planner, the executors, timing and evaluation
take a new runtime without any change to rnopt (tests/test_spec.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from rnopt.backends.base import Backend, ModelFile, ModelInput, RunSettings, RuntimeConfig, Session
from rnopt.options import option
from rnopt.errors import RnoptError


@dataclass(frozen=True)
class NumpyConfig(RuntimeConfig):
    dtype: str = option("float32", "--numpy-dtype", "the NumPy runtime's accumulation type", ("float32", "float64"))

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise RnoptError(f"dtype must be float32 or float64, not {self.dtype!r}")


class NumpySession(Session):
    backend, device, precision, threads = "numpy", "cpu", "fp32", 1

    def __init__(self, weight: np.ndarray, bias: np.ndarray, dtype: str) -> None:
        self.weight, self.bias, self.dtype = weight.astype(dtype), bias.astype(dtype), dtype

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch, dtype=self.dtype)

    def run(self, prepared: np.ndarray) -> np.ndarray:
        return prepared.mean(axis=(2, 3)) @ self.weight + self.bias

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)


class NumpyBackend(Backend):
    name = "numpy"
    precisions = ("fp32",)
    formats = ("onnx",)

    @classmethod
    def devices(cls) -> list[str]:
        return ["cpu"]

    def load(self, model: ModelInput, spec: RunSettings) -> Session:
        self.check_format(model)
        assert isinstance(model, ModelFile)
        graph = onnx.load(str(model.path)).graph
        ops = [n.op_type for n in graph.node]
        if ops != ["GlobalAveragePool", "Flatten", "Gemm"]:
            raise RnoptError(f"the numpy runtime runs pool-and-linear models only, not {' -> '.join(ops)}")
        weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        config = spec.config if isinstance(spec.config, NumpyConfig) else NumpyConfig()
        return NumpySession(weights["W"], weights["B"], config.dtype)


def tiny_model(path: str, meta_source: str) -> None:
    """A pool-and-linear classifier (3 channels -> 10 classes) carrying `meta_source`'s rnopt metadata (its classes
    and preprocessing), so rnopt evaluates it like any of its own files."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3, 10)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y], [numpy_helper.from_array(weight, "W"),
                                                       numpy_helper.from_array(bias, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    source = onnx.load(meta_source, load_external_data=False)
    for prop in source.metadata_props:
        if prop.key == "rnopt":
            entry = model.metadata_props.add()
            entry.key, entry.value = prop.key, prop.value
    onnx.save(model, path)
