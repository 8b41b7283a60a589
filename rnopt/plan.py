"""The planner: what the user asked (models x runtimes x precisions x devices, or `rnopt run`'s default)
expanded into `VariantSpec`s. Every command and script that builds variants builds them here."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rnopt.backends import RuntimeConfig, config_class, runtime_names
from rnopt.errors import RnoptError
from rnopt.spec import DEVICES, ArtifactSpec, VariantSpec

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "tf32")


def split_list(text: str | None, what: str = "value") -> list[str]:
    """`a, b,,a` -> ["a", "b"]: the one parser of comma lists (backends, devices, precisions)."""
    names = list(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))
    if text is not None and not names:
        raise RnoptError(f"expected at least one {what}, got {text!r}")
    return names


def check_names(names: Iterable[str], known: Iterable[str], what: str) -> list[str]:
    names, known = list(names), list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RnoptError(f"unknown {what} {', '.join(map(repr, unknown))}: choose one of {', '.join(known)}")
    return names


def runtime_config(runtime: str, options: dict[str, dict[str, Any]] | None) -> RuntimeConfig:
    return config_class(runtime).from_dict((options or {}).get(runtime, {}))


def plan(artifacts: list[ArtifactSpec], runtimes: list[str] | None = None, precisions: list[str] | None = None,
         device: str = "cpu", threads: int | None = None, options: dict[str, dict[str, Any]] | None = None,
         default_runtime: Callable[[ArtifactSpec], str] = lambda a: "onnxruntime") -> list[VariantSpec]:
    """Every artifact on every runtime at every precision (None: what the model holds).

    `options` holds each runtime's own settings by runtime name; a runtime uses only its own. Labels
    name the runtime and precision only where several were asked for.
    """
    bad = [a for a in artifacts if not isinstance(a, ArtifactSpec)]
    if bad:
        raise RnoptError(f"plan() takes ArtifactSpecs (rnopt.artifact(...)), got {bad[0]!r:.40}")
    if runtimes:
        check_names(runtimes, runtime_names(), "backend")
    check_names([device], DEVICES, "device")
    check_names(precisions or [], PRECISIONS, "precision")
    specs = []
    for artifact in artifacts:
        for runtime in runtimes or [default_runtime(artifact)]:
            for precision in precisions or [None]:
                tags = ([runtime] if runtimes and len(runtimes) > 1 else []) + \
                       ([precision] if precision and len(precisions or []) > 1 else [])
                label = f"{artifact.name} [{' '.join(tags)}]" if tags else artifact.name
                specs.append(VariantSpec(artifact, runtime, device, precision, threads,
                                         runtime_config(runtime, options), label))
    return specs


# `rnopt run`: the runtimes it compares, in this order (PyTorch is the speed reference), and the model files
# each one runs. ORT's fused file holds ORT-only operators (FusedConv), so it is ORT's alone; OpenVINO runs
# the fp32 file at its default precision (bf16 where the CPU has it), ORT's QDQ int8 file, and NNCF's IR.
RUN_RUNTIMES = ("torch", "onnxruntime", "openvino")
RUN_FILES = {"onnxruntime": ("model.onnx", "model.fused.onnx", "model.int8.onnx"),
             "openvino": ("model.onnx", "model.int8.onnx", "model.int8.xml")}
# On CUDA: PyTorch fp32 as the baseline, and fp16 with CUDA graphs, the fastest path that needs no
# compilation (benchmarks/README.md "GPU"); ONNX Runtime runs the fp32 file on its CUDA provider.
RUN_TORCH_ON_CUDA = {"fp32": {}, "fp16, CUDA graphs": {"precision": "fp16", "channels_last": True, "cuda_graphs": True}}


def plan_run(model: ArtifactSpec, files: dict[str, ArtifactSpec], runtimes: list[str], devices: list[str],
             threads: int | None = None) -> list[VariantSpec]:
    """The variants `rnopt run` compares: the PyTorch model, then each runtime on the files it runs."""
    specs = []
    if "cpu" in devices:
        if "torch" in runtimes:
            specs.append(VariantSpec(model, "torch", threads=threads, label=f"{model.name} (PyTorch)"))
        for runtime in runtimes:
            for name in RUN_FILES.get(runtime, ()):
                if name in files:  # NNCF's IR is missing without NNCF
                    label = name if runtime == "onnxruntime" else f"{name} [{runtime}]"
                    specs.append(VariantSpec(files[name], runtime, threads=threads, label=label))
    if "cuda" in devices:
        if "torch" in runtimes:
            for title, settings in RUN_TORCH_ON_CUDA.items():
                specs.append(VariantSpec.build(model, "torch", "cuda", threads=threads,
                                               label=f"{model.name} (PyTorch CUDA {title})", **settings))
        if "onnxruntime" in runtimes:
            specs.append(VariantSpec.build(files["model.onnx"], "onnxruntime", "cuda", threads=threads,
                                           label="model.onnx [onnxruntime cuda]", provider="cuda"))
    return specs


def is_quantized(artifact: ArtifactSpec) -> bool:
    return artifact.quantized


def eval_order(specs: list[VariantSpec], ran: dict[str, str] | None = None) -> list[VariantSpec]:
    """The specs to evaluate, the float reference first: an ONNX fp32 file when one ran, else PyTorch fp32.

    `ran` maps spec ids to the precision that actually ran, where known (OpenVINO runs an fp32 file in
    bf16 on a CPU that has it: that is no float reference). Other PyTorch fp32 variants are not
    evaluated: the export check already showed that PyTorch agrees with the ONNX fp32 file, and eager
    runs are the slowest. PyTorch fp16 on CUDA is evaluated.
    """
    def precision(s: VariantSpec) -> str:
        return (ran or {}).get(s.id) or s.precision or ("int8" if is_quantized(s.artifact) else "fp32")

    def is_torch_fp32(s: VariantSpec) -> bool:
        return s.runtime == "torch" and precision(s) == "fp32"

    onnx_fp32 = [s for s in specs if s.runtime != "torch" and precision(s) == "fp32"]
    reference = next(iter(onnx_fp32 + [s for s in specs if is_torch_fp32(s)]), None)
    rest = [s for s in specs if s is not reference and not is_torch_fp32(s)]
    return ([reference] if reference else []) + rest


def artifact_warnings(specs: list[VariantSpec]) -> list[str]:
    """What a user must know about the models themselves (random weights make accuracy meaningless)."""
    return list(dict.fromkeys(
        f"{s.artifact.source} has no trained weights: it is random-initialised and every accuracy figure for it "
        f"is meaningless (pass --weights PATH)" for s in specs if not s.artifact.is_file and not s.artifact.sha256))
