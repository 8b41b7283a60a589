"""Does ONNX Runtime's parallel execution mode (inter-op threads) help a ResNet here? Interleaved, in one run.

    .venv/bin/python benchmarks/ort_inter_op.py [MODEL.onnx]     # default: ResNet-50 from benchmarks/.cache
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnopt.backends import BackendOptions, get_backend, open_model  # noqa: E402
from rnopt.bench import BenchConfig, Variant, bench_variants  # noqa: E402

SETTINGS = {
    "sequential, intra-op 2": BackendOptions(threads=2),
    "parallel, intra-op 1, inter-op 2": BackendOptions(threads=1, ort_inter_op=2),
    "parallel, intra-op 2, inter-op 2": BackendOptions(threads=2, ort_inter_op=2),
}


def main(path: str) -> None:
    model, ort = open_model(path), get_backend("onnxruntime")
    variants = [Variant(name, ort.load(model, options), model.input_size) for name, options in SETTINGS.items()]
    for r in bench_variants(variants, BenchConfig([1], warmup=5, iterations=30, min_time=3.0)):
        print(f"{r.model:34s} p50 {r.latency_ms.p50:7.2f} ms  cv {r.cv:5.1%}  n={r.iterations}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / ".cache" / "resnet50.onnx"))
