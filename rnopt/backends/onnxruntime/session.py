"""ONNX Runtime sessions for every part of rnopt that runs an ONNX file: the export check, the optimizer,
output comparisons, sensitivity and the onnxruntime backend. The runtime's own module (no code outside
`backends/` opens a session); it imports no other rnopt runtime code, so conversion steps and the backend can
both use it without depending on each other."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import onnxruntime as ort

from rnopt.errors import RnoptError, first_line

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
DEVICE_OF_PROVIDER = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "cuda"}
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(threads: int | None = None, opt_level: str = "all", spinning: bool = True,
                    inter_op: int | None = None) -> ort.SessionOptions:
    if opt_level not in OPT_LEVELS:
        raise RnoptError(f"unknown ONNX Runtime optimization level {opt_level!r}: choose {', '.join(OPT_LEVELS)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPT_LEVELS[opt_level]
    opts.log_severity_level = 3  # errors only: ORT's warnings are not for our users
    if threads:
        opts.intra_op_num_threads = threads
    if inter_op:
        # Inter-op threads run independent branches side by side (in a ResNet, a downsampling shortcut
        # beside its block), which ORT does only in parallel execution mode.
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        opts.inter_op_num_threads = inter_op
    elif threads:
        opts.inter_op_num_threads = 1
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def available_providers() -> list[str]:
    """rnopt's names for the execution providers this onnxruntime build has."""
    have = ort.get_available_providers()
    return [name for name, provider in PROVIDERS.items() if provider in have]


def write_optimized(source: str, output: str, level: str) -> None:
    """ONNX Runtime's graph optimizations at `level` applied to `source`, the graph written to `output` (ORT
    writes it while it opens a session with `optimized_model_filepath` set)."""
    opts = session_options(opt_level=level)
    opts.optimized_model_filepath = output
    try:
        ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unloadable graphs
        raise RnoptError(f"onnxruntime cannot optimize {source}: {first_line(exc)}") from None


def create_session(path: str, threads: int | None = None, provider: str = "cpu", opt_level: str = "all",
                   spinning: bool = True, inter_op: int | None = None) -> ort.InferenceSession:
    if provider not in PROVIDERS or provider not in available_providers():
        raise RnoptError(f"this onnxruntime has no {provider!r} execution provider: it has "
                         f"{', '.join(available_providers())} (install onnxruntime-gpu for cuda/tensorrt)")
    providers = [PROVIDERS[provider]] + (["CPUExecutionProvider"] if provider != "cpu" else [])
    try:
        return ort.InferenceSession(path, session_options(threads, opt_level, spinning, inter_op), providers=providers)
    except Exception as exc:  # ORT raises its own exception types for unloadable graphs
        raise RnoptError(f"onnxruntime cannot load {path}: {first_line(exc)}") from None


def run_once(session: ort.InferenceSession, batch) -> "np.ndarray":  # noqa: F821 - numpy in, numpy out
    """The first output of one call with `batch` as the first input."""
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def optimized_graph_sha256(path: str, opts: ort.SessionOptions) -> str:
    """The sha256 of the graph ONNX Runtime runs for `path` under `opts` (its load-time optimizations applied, as
    ORT writes it with `optimized_model_filepath`), in a canonical form: two files with the same digest run the same
    operators on the same weights, so their outputs are the same bits. (ORT writes opsets and a node's attributes in no
    fixed order, and its shape annotations vary: those are sorted or left out.)"""
    import onnx  # only here: opening a session needs no ONNX parser of ours

    with tempfile.TemporaryDirectory(prefix="rnopt-ort-graph-") as tmp:
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        try:
            ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unloadable graphs
            raise RnoptError(f"onnxruntime cannot load {path}: {first_line(exc)}") from None
        model = onnx.load(opts.optimized_model_filepath)
    graph = model.graph
    digest = hashlib.sha256()

    def add(part) -> None:
        data = part.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "little") + data)  # lengths first: no two graphs hash alike by chance

    for part in (*sorted(model.opset_import, key=lambda o: o.domain), *graph.input, *graph.output):
        add(part)
    for node in graph.node:
        attributes = sorted(node.attribute, key=lambda a: a.name)
        bare = onnx.NodeProto(input=node.input, output=node.output, op_type=node.op_type, domain=node.domain)
        for part in (bare, *attributes):
            add(part)
    for part in sorted(graph.initializer, key=lambda t: t.name):
        add(part)
    return digest.hexdigest()
