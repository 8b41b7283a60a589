"""rnopt: export, fuse, quantize, benchmark and evaluate PyTorch ResNets for inference.

The public Python API (the CLI is a thin layer over it):

    import rnopt
    specs = rnopt.plan([rnopt.artifact("resnet20_cifar10")], runtimes=["onnxruntime", "torch"])
    timing = rnopt.bench(specs, rnopt.BenchConfig(batch_sizes=[1], min_time=0.2))   # -> rnopt.Record
    accuracy = rnopt.evaluate(specs, rnopt.EvalConfig(limit=500))                   # -> rnopt.Record
    timing.to_dict()                                                                 # the JSON the CLI writes

`artifact`, `plan`, `VariantSpec` name variants; `export`, `optimize`, `quantize` (each with its typed config:
`ExportConfig`, `OptimizeConfig`, `QuantizeConfig` with a `QuantRecipe` and, for accuracy-aware int8, an
`AccuracyControl`), `sensitivity` (`SensitivityConfig`), `bench`, `evaluate`, `embed`, `run` (with `RunOptions`) and `tune` (the search,
with `TuneOptions`) do the work and return `Record`s. Everything else is internal.
"""
from rnopt.api import (artifact, bench, build, compare_runs, describe_models, describe_runtimes, embed, evaluate, export,
                       list_models, list_runtimes, load_spec, merge_results, optimize, plan, quantize, run,
                       sensitivity, tune)
from rnopt.artifacts import ModelOptions
from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.results import Record
from rnopt.spec import ArtifactSpec, VariantSpec

__all__ = ["ArtifactSpec", "BenchConfig", "ModelOptions", "Record", "RnoptError", "VariantSpec", "artifact", "bench",
           "build", "compare_runs", "describe_models", "describe_runtimes", "embed", "evaluate", "export",
           "list_models", "list_runtimes", "load_spec", "merge_results", "optimize", "plan", "quantize", "run",
           "sensitivity", "tune",
           "AccuracyControl", "CompareConfig", "EmbedConfig", "EvalConfig", "ExportConfig", "PlanConfig", "OptimizeConfig", "QuantizeConfig", "QuantRecipe", "RunOptions",
           "SensitivityConfig", "TuneOptions"]

# Imported on first use: their modules pull in ONNX and the quantizers, which `import rnopt` does not need.
_LAZY = {"AccuracyControl": "rnopt.quantization", "QuantRecipe": "rnopt.quantization.base",
         **{name: "rnopt.configs" for name in ("EmbedConfig", "EvalConfig", "ExportConfig", "OptimizeConfig",
                                               "PlanConfig", "QuantizeConfig", "RunOptions", "SensitivityConfig", "CompareConfig",
                                               "TuneOptions")}}

# No submodule shares a verb's name (rnopt/evaluation.py, onnx_export.py, fusion.py, quantization/,
# embedding.py, search.py): importing one would replace the function of that name in this package.


def __getattr__(name: str):  # noqa: ANN202 - a config class, imported on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rnopt' has no attribute {name!r}")
