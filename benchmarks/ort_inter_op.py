"""Does ONNX Runtime's parallel execution mode (inter-op threads) help a ResNet here? Interleaved, in one run.

    .venv/bin/python benchmarks/ort_inter_op.py [MODEL.onnx]     # default: ResNet-50 from benchmarks/.cache

ONNX Runtime's thread pools belong to each session, so the settings can share one process and be interleaved.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnopt.artifacts import artifact_for  # noqa: E402
from rnopt.bench import BenchConfig  # noqa: E402
from rnopt.execute import InProcessExecutor  # noqa: E402
from rnopt.spec import VariantSpec  # noqa: E402

SETTINGS = {  # label -> (intra-op threads, inter-op threads)
    "sequential, intra-op 2": (2, None),
    "parallel, intra-op 1, inter-op 2": (1, 2),
    "parallel, intra-op 2, inter-op 2": (2, 2),
}


def main(path: str) -> None:
    model = artifact_for(path)
    specs = [VariantSpec.build(model, "onnxruntime", threads=threads, label=label, inter_op=inter_op)
             for label, (threads, inter_op) in SETTINGS.items()]
    outcome = InProcessExecutor().bench(specs, BenchConfig([1], warmup=5, iterations=30, min_time=3.0))
    for r in outcome.results:
        print(f"{r.model:34s} p50 {r.latency_ms.p50:7.2f} ms  cv {r.cv:5.1%}  n={r.iterations}")
    for f in outcome.failures:
        print(f"{f.label}: {f.reason}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / ".cache" / "resnet50.onnx"))
