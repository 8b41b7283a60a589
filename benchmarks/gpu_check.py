"""GPU paths, proven on a real GPU: numerics against CPU fp32, then ResNet-50 timings, one table.

    bash benchmarks/gpu_check.sh          # on a machine with a CUDA GPU and PyTorch installed

Checks PyTorch on CUDA in fp32/fp16/bf16 (eager, channels_last, CUDA graphs; torch.compile with --compile) and
ONNX Runtime's CUDA/TensorRT providers when the installed onnxruntime has them. Exits non-zero when a
numeric check fails. Needs no network: ResNet-50 runs random-initialised (speed does not depend on it).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from rnopt.backends import BackendOptions, ModelFile, TorchModel, get_backend
from rnopt.backends.onnxruntime import available_providers
from rnopt.bench import BenchConfig, Variant, bench_variants
from rnopt.errors import RnoptError
from rnopt.export import export_model
from rnopt.models import create_model
from rnopt.onnx_model import load_onnx, read_meta
from rnopt.report.render import print_table
from rnopt.report.tables import bench_table

# max abs logit difference allowed against CPU fp32, per precision (ResNet-50, random weights)
TOLERANCE = {"fp32": 1e-2, "fp16": 0.5, "bf16": 2.0}


def main(compile_too: bool) -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    torch.manual_seed(0)
    loaded = create_model("resnet50")
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224), dtype=np.float32)
    with torch.inference_mode():
        reference = loaded.module(torch.from_numpy(x)).numpy()

    variants, failures = [], []
    # (precision, channels_last, CUDA graphs, torch.compile)
    configs = [(p, cl, False, False) for p in ("fp32", "fp16", "bf16") for cl in (False, True)]
    configs += [("fp32", True, True, False), ("fp16", True, True, False)]
    if compile_too:
        configs += [("fp16", True, False, True)]
    for precision, channels_last, graphs, compiled in configs:
        opts = BackendOptions(device="cuda", precision=precision, channels_last=channels_last, cuda_graphs=graphs,
                              compile=compiled)
        session = get_backend("torch").load(TorchModel(loaded), opts)
        diff = float(np.abs(session.predict(x) - reference).max())
        label = f"torch {precision} {session.describe()}"
        print(f"{label}: max abs diff vs CPU fp32 {diff:.4g}")
        if diff > TOLERANCE[precision]:
            failures.append(f"{label}: {diff:.4g} > {TOLERANCE[precision]}")
        variants.append(Variant(label, session, 224))

    providers = [p for p in ("cuda", "tensorrt") if p in available_providers()]
    if providers:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "resnet50.onnx"
            export_model(loaded, path)
            model = ModelFile(path, read_meta(load_onnx(path)))
            for provider in providers:
                try:
                    session = get_backend("onnxruntime").load(model, BackendOptions(device="cuda", ort_provider=provider))
                except RnoptError as exc:
                    print(f"onnxruntime {provider}: {exc}")
                    continue
                diff = float(np.abs(session.predict(x) - reference).max())
                print(f"onnxruntime {provider}: max abs diff vs CPU fp32 {diff:.4g}")
                variants.append(Variant(f"onnxruntime {provider}", session, 224))
            results = bench_variants(variants, BenchConfig([1, 8, 32], 10, 50, 1.0))
    else:
        print(f"onnxruntime has no GPU provider here ({', '.join(available_providers())})")
        results = bench_variants(variants, BenchConfig([1, 8, 32], 10, 50, 1.0))
    print_table(bench_table(results))
    for failure in failures:
        print(f"NUMERIC CHECK FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main("--compile" in sys.argv))
