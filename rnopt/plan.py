"""The planner: what the user asked (models x runtimes x precisions x devices, or `rnopt run`'s default)
expanded into `VariantSpec`s. Every command and script that builds variants builds them here."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rnopt.backends import BACKEND_NAMES, RuntimeConfig, backend_class, config_class, runtime_names
from rnopt.errors import RnoptError
from rnopt.spec import DEVICES, IN_FRAMEWORK, ArtifactSpec, VariantSpec, format_suffix

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


def default_runtime(artifact: ArtifactSpec, prefer_pytorch: bool = False) -> str:
    """The runtime a command uses for `artifact` when none is named: the first registered one that loads its
    format (a built-in name: its ONNX export), or with `prefer_pytorch` one that runs the model in PyTorch itself
    (eval's reference). Read from what runtimes declare (`RuntimeConfig.loads`), never from their names."""
    formats = [f for f in artifact.formats if prefer_pytorch or f != IN_FRAMEWORK]
    for fmt in formats:
        for runtime in runtime_names():
            if fmt in config_class(runtime).loads:
                return runtime
    raise RnoptError(f"no registered runtime loads {artifact.name} ({', '.join(artifact.formats)}): "
                     f"`rnopt backends` lists them")


def plan(artifacts: list[ArtifactSpec], runtimes: list[str] | None = None, precisions: list[str] | None = None,
         device: str = "cpu", threads: int | None = None, options: dict[str, dict[str, Any]] | None = None,
         default: Callable[[ArtifactSpec], str] = default_runtime) -> list[VariantSpec]:
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
        for runtime in runtimes or [default(artifact)]:
            for precision in precisions or [None]:
                tags = ([runtime] if runtimes and len(runtimes) > 1 else []) + \
                       ([precision] if precision and len(precisions or []) > 1 else [])
                label = f"{artifact.name} [{' '.join(tags)}]" if tags else artifact.name
                specs.append(VariantSpec(artifact, runtime, device, precision, threads,
                                         runtime_config(runtime, options), label))
    return specs


# The runtimes `rnopt run` and `rnopt tune` compare by default: the built-in ones (a runtime registered from
# outside runs where it is asked for by name).
# PyTorch-model runtimes first: the speed reference.
RUN_RUNTIMES: tuple[str, ...] = tuple(sorted(BACKEND_NAMES, key=lambda r: IN_FRAMEWORK not in config_class(r).loads))


def loaded_formats(runtimes: Iterable[str]) -> set[str]:
    """Every artifact format one of `runtimes` loads: which files a run or a search needs to build."""
    return {fmt for runtime in runtimes for fmt in config_class(runtime).loads}


def can_use_cuda(runtime: str) -> bool:
    """Whether `runtime` has CUDA variants and can run them here (its backend sees a CUDA device)."""
    return bool(config_class(runtime).cuda_variants) and "cuda" in backend_class(runtime).devices()


def int8_files(formats: set[str], warnings: list[str], recipes: list[str] | None = None
               ) -> dict[str, tuple[str, str | None]]:
    """The int8 files to build, file name -> (quantizer, recipe name or None): one per quantizer whose file a
    chosen runtime loads (`formats`), or with `recipes`, one per recipe from each quantizer that takes recipes.
    A quantizer that is not installed is left out with a warning in `warnings`."""
    from rnopt.quantization import QUANTIZERS, get_quantizer

    files: dict[str, tuple[str, str | None]] = {}
    for toolkit, entry in QUANTIZERS.items():
        if entry.format not in formats:
            continue
        suffix = format_suffix(entry.format)
        named = {f"model.int8-{r}{suffix}": r for r in recipes} if recipes and entry.takes_recipes else \
            {f"model.int8{suffix}": None}
        try:
            get_quantizer(toolkit)
        except RnoptError as exc:
            warnings.append(f"{toolkit}'s int8 ({', '.join(named)}) skipped: {exc}")
            continue
        files.update({name: (toolkit, recipe) for name, recipe in named.items()})
    return files


def plan_variants(model: ArtifactSpec, files: dict[str, ArtifactSpec], runtimes: list[str], devices: list[str],
                  threads: int | None = None, objective: str | None = None, float_at_fp32: bool = False,
                  speed_reference_first: bool = True) -> list[VariantSpec]:
    """The variants `rnopt run` and `rnopt tune` compare, from what each runtime declares (`RuntimeConfig`):

    on the CPU, a runtime that loads PyTorch models runs `model` itself, and every runtime runs each file in
    `files` (name -> artifact) whose format it loads, with the options that suit `objective`; with
    `float_at_fp32`, a runtime whose default precision is its own rather than the model's (OpenVINO: bf16 on some
    CPUs) also runs the float export at fp32. On CUDA, each runtime runs its `cuda_variants` on the float model.
    PyTorch-model runtimes come first (the speed reference) with `speed_reference_first`, else last (a search
    measures accuracy drops from the first float ONNX variant).
    """
    ordered = sorted(runtimes, key=lambda r: (IN_FRAMEWORK in config_class(r).loads) != speed_reference_first)
    plain = next((r for r in runtime_names() if "onnx" in config_class(r).loads), None)  # labels without [runtime]
    float_name = next((name for name, artifact in files.items() if artifact == model), model.name)
    specs: list[VariantSpec] = []
    for runtime in ordered if "cpu" in devices else []:
        config = config_class(runtime)
        options = config.for_objective(objective) if objective else {}
        title = config.title or runtime
        if IN_FRAMEWORK in config.loads:
            specs.append(VariantSpec.build(model, runtime, threads=threads, label=f"{model.name} ({title})", **options))
        for name, artifact in files.items():
            if not (set(artifact.formats) & set(config.loads)) - {IN_FRAMEWORK}:
                continue
            label = name if runtime == plain else f"{name} [{runtime}]"
            specs.append(VariantSpec.build(artifact, runtime, threads=threads, label=label, **options))
            if float_at_fp32 and artifact == model and not config.runs_model_precision:
                specs.append(VariantSpec.build(artifact, runtime, precision="fp32", threads=threads,
                                               label=f"{name} [{runtime} fp32]", **options))
    for runtime in ordered if "cuda" in devices else []:
        config = config_class(runtime)
        for variant, settings in config.cuda_variants.items() if can_use_cuda(runtime) else ():
            if IN_FRAMEWORK in config.loads:
                label = f"{model.name} ({config.title or runtime} CUDA {variant})"
            else:
                label = f"{float_name} [{runtime} cuda{' ' + variant if variant else ''}]"
            specs.append(VariantSpec.build(model, runtime, "cuda", threads=threads, label=label, **settings))
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
        return _runs_pytorch_models(s) and precision(s) == "fp32"

    onnx_fp32 = [s for s in specs if not _runs_pytorch_models(s) and precision(s) == "fp32"]
    reference = next(iter(onnx_fp32 + [s for s in specs if is_torch_fp32(s)]), None)
    rest = [s for s in specs if s is not reference and not is_torch_fp32(s)]
    return ([reference] if reference else []) + rest


def _runs_pytorch_models(spec: VariantSpec) -> bool:
    return IN_FRAMEWORK in config_class(spec.runtime).loads


def artifact_warnings(specs: list[VariantSpec]) -> list[str]:
    """What a user must know about the models themselves (random weights make accuracy meaningless)."""
    return list(dict.fromkeys(
        f"{s.artifact.source} has no trained weights: it is random-initialised and every accuracy figure for it "
        f"is meaningless (pass --weights PATH)" for s in specs if not s.artifact.is_file and not s.artifact.sha256))
