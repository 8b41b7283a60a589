"""`rnopt run`: export -> check -> fuse -> quantize -> bench -> eval -> report, on one model, every runtime."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from rnopt import progress
from rnopt.backends import BackendOptions, ModelFile, TorchModel, backend_class, get_backend
from rnopt.bench import BenchConfig, Variant, bench_variants, summarize_warnings
from rnopt.data import ImageDataset, align_labels, load_dataset
from rnopt.errors import RnoptError
from rnopt.evaluate import evaluate
from rnopt.export import export_model, meta_for
from rnopt.fileio import write_json, write_text
from rnopt.memory import probe_for
from rnopt.models.registry import LoadedModel, create_model
from rnopt.onnx_model import load_onnx, read_ir_meta, read_meta
from rnopt.optimize import optimize_model
from rnopt.quantize import quantize_onnx
from rnopt.quantize.calibration import calibration_set
from rnopt.quantize.openvino import quantize_openvino
from rnopt.report.html import to_html
from rnopt.report.loading import from_payload
from rnopt.report.markdown import to_markdown
from rnopt.report.results import Report

DEFAULT_MODEL = "resnet20_cifar10"
CALIB_SIZE = 500
EVAL_BATCH = 250  # large batches amortise per-call overhead: the full test set in seconds
# What `rnopt run` compares, in this order: the PyTorch reference, then each runtime on the ONNX files.
RUN_BACKENDS = ("torch", "onnxruntime", "openvino")
RUN_DEVICES = ("cpu", "cuda")


@dataclass
class RunOptions:
    model: str = DEFAULT_MODEL
    weights: str | None = None
    num_classes: int | None = None
    labels: str | None = None
    output: Path = Path("reports")
    data: str | None = None  # accuracy data; default: the bundled CIFAR-10 test set for CIFAR models
    calib_data: str | None = None
    eval_limit: int | None = None
    bench: BenchConfig = field(default_factory=BenchConfig)
    threads: int | None = None
    command: str = ""
    backends: list[str] | None = None  # None: every one of RUN_BACKENDS whose runtime is installed
    devices: list[str] | None = None  # None: the CPU, and CUDA too when a chosen runtime can use it here


def run_dir(base: Path, model: str) -> Path:
    """A fresh folder `<model>-<UTC timestamp>`; never reuses one that exists."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, n = base / f"{model}-{stamp}", 1
    while candidate.exists():
        n += 1
        candidate = base / f"{model}-{stamp}-{n}"
    return candidate


def run_pipeline(opts: RunOptions) -> tuple[Report, Path]:
    backends, skipped = run_backends(opts.backends)
    devices, not_on_cuda = run_devices(opts.devices, backends)
    loaded = create_model(opts.model, opts.weights, opts.num_classes, opts.labels)
    data_name = opts.data or ("cifar10" if loaded.spec.family == "cifar10" else None)
    # Fail on bad data before the long steps.
    dataset = load_dataset(data_name) if data_name else None
    _, calibration = calibration_set(meta_for(loaded), opts.calib_data, CALIB_SIZE)
    out = _make_run_dir(opts.output, loaded.name)
    try:
        return _run_steps(opts, backends, devices, skipped + not_on_cuda, loaded, dataset, len(calibration), out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-finished run folder left behind
        raise


def run_backends(asked: list[str] | None) -> tuple[list[str], list[str]]:
    """The backends to compare, and a warning for each default one that is not installed.

    Asked-for backends must all be usable (checked before any long step); by default a missing
    OpenVINO or PyTorch runtime is skipped with a warning.
    """
    if asked:
        unknown = [name for name in asked if name not in RUN_BACKENDS]
        if unknown:
            raise RnoptError(f"rnopt run compares {', '.join(RUN_BACKENDS)}, not {', '.join(unknown)}")
        for name in asked:
            backend_class(name)  # a clear error now if its runtime is missing
        return [name for name in RUN_BACKENDS if name in asked], []
    usable, skipped = [], []
    for name in RUN_BACKENDS:
        try:
            backend_class(name)
            usable.append(name)
        except RnoptError as exc:
            skipped.append(f"{name} skipped: {exc}")
    return usable, skipped


def run_devices(asked: list[str] | None, backends: list[str]) -> tuple[list[str], list[str]]:
    """The devices to run on, and a warning for each chosen runtime that cannot use CUDA when CUDA runs.

    By default: the CPU, and CUDA too when one of the chosen runtimes can use a CUDA device here
    (PyTorch with a GPU, an onnxruntime with the CUDA provider). OpenVINO runs on the CPU only here.
    """
    if asked:
        unknown = [name for name in asked if name not in RUN_DEVICES]
        if unknown:
            raise RnoptError(f"--device takes {', '.join(RUN_DEVICES)}, not {', '.join(unknown)}")
    on_cuda = [name for name in backends if name in _CUDA_RUNTIMES and "cuda" in backend_class(name).devices()]
    chosen = asked or (["cpu", "cuda"] if on_cuda else ["cpu"])
    if "cuda" in chosen and not on_cuda:
        raise RnoptError(f"--device cuda: none of {', '.join(backends)} can use a CUDA device here (rnopt runs CUDA "
                         "through PyTorch on a GPU, or onnxruntime-gpu): use --device cpu, or leave it out")
    # OpenVINO never runs on NVIDIA GPUs: say so only when CUDA was asked for by name.
    skipped = [f"{name} not run on cuda: {_NOT_ON_CUDA[name]}" for name in backends
               if "cuda" in chosen and name not in on_cuda and (asked or name != "openvino")]
    return [device for device in RUN_DEVICES if device in chosen], skipped


def _make_run_dir(base: Path, model: str) -> Path:
    if base.exists() and not base.is_dir():
        raise RnoptError(f"--output {base} is a file, not a folder: give a folder for the reports")
    try:
        base.mkdir(parents=True, exist_ok=True)
        out = run_dir(base, model)
        out.mkdir()
    except OSError as exc:
        raise RnoptError(f"cannot create a report folder in {base}: {exc.strerror}") from None
    return out


def _run_steps(opts: RunOptions, backends: list[str], devices: list[str], skipped: list[str], loaded: LoadedModel,
               dataset: ImageDataset | None, calib_images: int, out: Path) -> tuple[Report, Path]:
    report = Report("run", command=opts.command, warnings=list(loaded.warnings) + skipped)
    report.sections["model"] = _model_section(loaded)

    fp32, fused, int8 = out / "model.onnx", out / "model.fused.onnx", out / "model.int8.onnx"
    with progress.task("exporting and checking", None):
        report.sections["export"] = export_model(loaded, fp32)
    with progress.task("fusing operators", None):
        report.sections["optimize"] = optimize_model(fp32, fused, "extended")
    with progress.task("calibrating int8", calib_images) as advance:
        report.sections["quantize"] = quantize_onnx(fp32, int8, opts.calib_data, CALIB_SIZE, on_batch=advance)
    files = {p.name: ModelFile(p, read_meta(load_onnx(p, load_weights=False), p)) for p in (fp32, fused, int8)}
    if "openvino" in backends:
        files.update(_nncf_int8(opts, fp32, out / "model.int8.xml", calib_images, report))

    with progress.task("loading", None):
        variants = _variants(loaded, files, backends, devices, BackendOptions(threads=opts.threads))
    with progress.task("benchmarking", None) as advance:
        bench = bench_variants(variants, opts.bench, on_round=lambda note: advance(1, note))
    report.sections["bench"] = {"config": opts.bench, "results": bench}
    report.warnings += summarize_warnings(bench)

    if dataset is not None:
        dataset = align_labels(dataset, loaded.class_names).subset(opts.eval_limit)
        sessions = [(v.model, v.session) for v in _eval_order(variants)]
        with progress.task(f"evaluating on {dataset.name}", len(dataset)) as advance:
            results, comparisons = evaluate(sessions, dataset, loaded.spec.preprocessing, EVAL_BATCH, advance)
        report.sections["eval"] = {"dataset": dataset.name, "results": results, "comparisons": comparisons}
    else:
        report.warnings.append(f"no labelled data for {loaded.name}: accuracy not measured (pass --data DIR)")
    payload = report.to_dict()
    write_json(out / "report.json", payload)
    data = from_payload(payload, str(out / "report.json"))  # the renderers read what the JSON says
    write_text(out / "report.md", to_markdown(data))
    write_text(out / "report.html", to_html(data))
    return report, out


def _eval_order(variants: list[Variant]) -> list[Variant]:
    """The variants to evaluate, the float reference first: ONNX fp32 when it ran, else PyTorch fp32.

    Other PyTorch fp32 variants are not evaluated: the export check already showed that PyTorch agrees
    with the ONNX fp32 file, and eager runs are the slowest. PyTorch fp16 on CUDA is evaluated.
    """
    def is_torch_fp32(v: Variant) -> bool:
        return v.session.backend == "torch" and v.session.precision == "fp32"

    onnx_fp32 = [v for v in variants if v.session.backend != "torch" and v.session.precision == "fp32"]
    reference = next(iter(onnx_fp32 + [v for v in variants if is_torch_fp32(v)]), None)
    rest = [v for v in variants if v is not reference and not is_torch_fp32(v)]
    return ([reference] if reference else []) + rest


def _nncf_int8(opts: RunOptions, fp32: Path, output: Path, calib_images: int, report: Report) -> dict[str, ModelFile]:
    """OpenVINO's own int8 (NNCF, same calibration images as ORT's), when NNCF is installed."""
    try:
        import nncf  # noqa: F401
    except ImportError:
        report.warnings.append("NNCF is not installed: OpenVINO's own int8 (model.int8.xml) skipped (pip install nncf)")
        return {}
    with progress.task("calibrating int8 for OpenVINO (NNCF)", calib_images) as advance:
        report.sections["quantize_openvino"] = quantize_openvino(fp32, output, opts.calib_data, CALIB_SIZE, advance)
    return {output.name: ModelFile(output, read_ir_meta(output))}


# The model files each runtime runs. ORT's fused file holds ORT-only operators (FusedConv), so it is
# ORT's alone; OpenVINO runs the fp32 file at its default precision (bf16 where the CPU has it), ORT's
# QDQ int8 file, and NNCF's int8 IR.
_FILES_PER_BACKEND = {"onnxruntime": ("model.onnx", "model.fused.onnx", "model.int8.onnx"),
                      "openvino": ("model.onnx", "model.int8.onnx", "model.int8.xml")}


def _variants(loaded: LoadedModel, files: dict[str, ModelFile], backends: list[str], devices: list[str],
              options: BackendOptions) -> list[Variant]:
    on_cpu = _cpu_variants(loaded, files, backends, options) if "cpu" in devices else []
    on_cuda = _cuda_variants(loaded, files, backends, replace(options, device="cuda")) if "cuda" in devices else []
    return on_cpu + on_cuda


def _cpu_variants(loaded: LoadedModel, files: dict[str, ModelFile], backends: list[str],
                  options: BackendOptions) -> list[Variant]:
    variants = []
    if "torch" in backends:
        variants.append(_torch_variant(loaded, f"{loaded.name} (PyTorch)", options))
    for name in backends:
        for file_name in _FILES_PER_BACKEND.get(name, ()):
            if file_name in files:  # NNCF's IR is missing without NNCF
                label = file_name if name == "onnxruntime" else f"{file_name} [{name}]"
                variants.append(_file_variant(files[file_name], name, label, options))
    return variants


# On CUDA: PyTorch fp32 as the baseline, and fp16 with CUDA graphs, the fastest path that needs no
# compilation (benchmarks/README.md "GPU"); ONNX Runtime runs the fp32 file on its CUDA provider.
_CUDA_RUNTIMES = ("torch", "onnxruntime")
_NOT_ON_CUDA = {"torch": "this PyTorch sees no CUDA device",
                "onnxruntime": "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)",
                "openvino": "OpenVINO runs on CPUs and Intel GPUs, not NVIDIA ones"}
_TORCH_ON_CUDA = {"fp32": {}, "fp16, CUDA graphs": {"precision": "fp16", "channels_last": True, "cuda_graphs": True}}


def _cuda_variants(loaded: LoadedModel, files: dict[str, ModelFile], backends: list[str],
                   options: BackendOptions) -> list[Variant]:
    variants = []
    if "torch" in backends and "cuda" in backend_class("torch").devices():
        for title, settings in _TORCH_ON_CUDA.items():
            label = f"{loaded.name} (PyTorch CUDA {title})"
            variants.append(_torch_variant(loaded, label, replace(options, **settings)))
    if "onnxruntime" in backends and "cuda" in backend_class("onnxruntime").devices():
        variants.append(_file_variant(files["model.onnx"], "onnxruntime", "model.onnx [onnxruntime cuda]",
                                      replace(options, ort_provider="cuda")))
    return variants


def _torch_variant(loaded: LoadedModel, label: str, options: BackendOptions) -> Variant:
    model = TorchModel(loaded)
    return Variant(label, get_backend("torch").load(model, options), model.input_size, model.size_bytes,
                   probe_for(model, "torch", options))


def _file_variant(model: ModelFile, backend: str, label: str, options: BackendOptions) -> Variant:
    return Variant(label, get_backend(backend).load(model, options), model.input_size, model.size_bytes,
                   probe_for(model, backend, options))


def _model_section(loaded: LoadedModel) -> dict:
    return {"name": loaded.name, "weights": loaded.weights_source, "weights_sha256": loaded.weights_sha256,
            "num_classes": len(loaded.class_names), "input_size": loaded.spec.preprocessing.crop,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
