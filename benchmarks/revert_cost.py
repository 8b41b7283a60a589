"""What does keeping layers in float cost? ResNet-50 int8 with its first 1, 3 and 10 convolutions reverted to
float, against full int8, on ONNX Runtime and OpenVINO: one interleaved run, medians with 95 % intervals.

    .venv/bin/python benchmarks/revert_cost.py [--max-time S] [--json benchmarks/revert_cost.json]

The reverted models are the full int8 model (ORT QDQ, from benchmarks/.cache) edited as accuracy-aware int8
edits it (rnopt.quantization.sensitivity.keep_nodes_float): the first convolutions are the layers users most often
keep in float. OpenVINO runs the same QDQ files (it turns QDQ into int8 kernels itself); its float layers run
in its default precision (bf16 on CPUs with AVX512-BF16 or AMX).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import build  # noqa: E402

from rnopt import api  # noqa: E402
from rnopt.artifacts import artifact_for  # noqa: E402
from rnopt.bench import BenchConfig  # noqa: E402
from rnopt.quantization.accuracy_aware import quantized_layers  # noqa: E402
from rnopt.quantization.sensitivity import keep_nodes_float, pre_process  # noqa: E402
from rnopt.report.tables import median_interval  # noqa: E402
from rnopt.spec import VariantSpec  # noqa: E402
from rnopt.stats import ratio_interval  # noqa: E402

REVERTED = (1, 3, 10)
RUNTIMES = ("onnxruntime", "openvino")


def reverted_models(fp32: Path, int8: Path, folder: Path) -> dict[int, Path]:
    prepped = folder / "float.onnx"
    pre_process(fp32, prepped)  # as rnopt quantize did: the int8 model's tensor names match this graph
    float_model, full = onnx.load(str(prepped)), onnx.load(str(int8))
    convs = [name for name in quantized_layers(full)
             if next(n for n in full.graph.node if n.name == name).op_type == "Conv"]
    models = {0: int8}
    for k in REVERTED:
        models[k] = folder / f"int8-first-{k}-float.onnx"
        onnx.save(keep_nodes_float(full, float_model, convs[:k]), str(models[k]))
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=float, default=120.0, help="seconds of interleaved rounds, at most")
    parser.add_argument("--json", default=str(Path(__file__).parent / "revert_cost.json"))
    args = parser.parse_args()
    files = build("resnet50")
    with tempfile.TemporaryDirectory() as scratch:
        models = reverted_models(files["fp32"], files["int8"], Path(scratch))
        specs = [VariantSpec.build(artifact_for(str(path)), runtime, threads=2,
                                   label=f"{runtime}: {k} conv{'s' if k != 1 else ''} float" if k else
                                   f"{runtime}: full int8")
                 for runtime in RUNTIMES for k, path in models.items()]
        record = api.bench(specs, BenchConfig([1], warmup=10, target_ci=0.01, max_time=args.max_time))
    rows = []
    by_id = {r.spec_id: r for r in record.bench}
    for runtime in RUNTIMES:
        base = by_id[specs[RUNTIMES.index(runtime) * len(models)].id]
        for i, k in enumerate(models):
            r = by_id[specs[RUNTIMES.index(runtime) * len(models) + i].id]
            ci, base_ci = median_interval(r), median_interval(base)
            low, high = ratio_interval(ci, base_ci) if ci and base_ci else (None, None)
            rows.append({"runtime": runtime, "reverted": k, "p50_ms": r.latency_ms.p50, "p50_ci": r.p50_ci,
                         "ratio_to_full_int8": r.latency_ms.p50 / base.latency_ms.p50,
                         "ratio_interval": [low, high], "rounds": r.rounds, "precision": r.precision})
            print(f"{r.model:34s} p50 {r.latency_ms.p50:7.2f} ms ±{(r.p50_ci or 0):.1%}  "
                  f"x{r.latency_ms.p50 / base.latency_ms.p50:.3f}" + (f" ({low:.3f}-{high:.3f})" if low else ""))
    Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                                           "warnings": record.warnings,
                                           "environment": record.to_dict()["environment"]}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
