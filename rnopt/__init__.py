"""rnopt: export, fuse, quantize, benchmark and evaluate PyTorch ResNets for inference.

The public Python API (the CLI is a thin layer over it):

    import rnopt
    specs = rnopt.plan([rnopt.artifact("resnet20_cifar10")], runtimes=["onnxruntime", "torch"])
    timing = rnopt.bench(specs, rnopt.BenchConfig(batch_sizes=[1], min_time=0.2))   # -> rnopt.Record
    accuracy = rnopt.evaluate(specs, data="cifar10", limit=500)                      # -> rnopt.Record
    timing.to_dict()                                                                 # the JSON the CLI writes

`artifact`, `plan`, `VariantSpec` name variants; `export`, `optimize`, `quantize` (accuracy-aware with an
`AccuracyControl`), `sensitivity`, `bench`, `evaluate`, `embed`, `run` (with `RunOptions`) and `tune` (the search,
with `TuneOptions`) do the work and return `Record`s. Everything else is internal.
"""
from rnopt.api import (artifact, bench, build, compare_runs, describe_models, describe_runtimes, embed, evaluate, export,
                       list_models, list_runtimes, load_spec, optimize, plan, quantize, run, sensitivity, tune)
from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.results import Record
from rnopt.spec import ArtifactSpec, VariantSpec

__all__ = ["ArtifactSpec", "BenchConfig", "Record", "RnoptError", "VariantSpec", "artifact", "bench", "build",
           "compare_runs", "describe_models", "describe_runtimes", "embed",
           "evaluate", "export", "list_models", "list_runtimes", "load_spec", "optimize", "plan", "quantize", "run",
           "sensitivity", "tune",
           "AccuracyControl", "RunOptions",
           "TuneOptions"]

# No submodule shares a verb's name (rnopt/evaluation.py, onnx_export.py, fusion.py, quantization/,
# embedding.py, search.py): importing one would replace the function of that name in this package.


def __getattr__(name: str):  # noqa: ANN202 - RunOptions lives with the pipeline, imported on first use
    if name == "RunOptions":
        from rnopt.pipeline import RunOptions

        return RunOptions
    if name == "TuneOptions":
        from rnopt.search import TuneOptions

        return TuneOptions
    if name == "AccuracyControl":  # the quantizers' module imports onnxruntime: only on use
        from rnopt.quantization import AccuracyControl

        return AccuracyControl
    raise AttributeError(f"module 'rnopt' has no attribute {name!r}")
