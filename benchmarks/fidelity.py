"""Does rnopt's harness agree with the runtimes' own tools? Interleaved, in one sitting.

ONNX Runtime: rnopt's median vs a bare `session.run` loop on the same session options.
OpenVINO: rnopt's median vs `benchmark_app` (latency hint, batch 1, same model, OpenVINO's default threads).
Each comparison alternates the two measurements for ROUNDS rounds and quotes the median of medians.

    python benchmarks/fidelity.py            # prints a Markdown table
"""
from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from conftest import build  # noqa: E402

from rnopt.artifacts import artifact_for  # noqa: E402
from rnopt.bench import BenchConfig  # noqa: E402
from rnopt.execute import InProcessExecutor  # noqa: E402
from rnopt.backends.onnxruntime.session import create_session  # noqa: E402
from rnopt.spec import VariantSpec  # noqa: E402

ROUNDS = 7
SECONDS = 5.0
THREADS = 2


def rnopt_median(backend: str, path: Path) -> float:
    # benchmark_app allows no thread count with a hint: both sides take OpenVINO's default (all cores).
    spec = VariantSpec(artifact_for(str(path)), backend, threads=THREADS if backend == "onnxruntime" else None)
    [result] = InProcessExecutor().bench([spec], BenchConfig([1], 10, 50, SECONDS)).results
    return result.latency_ms.p50


def bare_ort_median(path: Path) -> float:
    session = create_session(str(path), THREADS)
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)}
    for _ in range(10):
        session.run(None, feed)
    samples, end = [], time.perf_counter() + SECONDS
    while time.perf_counter() < end:
        t = time.perf_counter()
        session.run(None, feed)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e3


def benchmark_app_median(path: Path) -> float:
    tool = str(Path(sys.executable).parent / "benchmark_app")
    out = subprocess.run([tool, "-m", str(path), "-d", "CPU", "-hint", "latency", "-shape", "[1,3,224,224]",
                          "-t", str(int(SECONDS))], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))


def compare(label: str, ours, theirs) -> str:
    mine, other = [], []
    for _ in range(ROUNDS):
        mine.append(ours())
        other.append(theirs())
    a, b = statistics.median(mine), statistics.median(other)
    return f"| {label} | {a:.2f} | {b:.2f} | {(a / b - 1) * 100:+.1f} % | {json.dumps([round(x, 2) for x in mine])} | {json.dumps([round(x, 2) for x in other])} |"


if __name__ == "__main__":
    files = build("resnet50")
    print("| comparison (ResNet-50, batch 1, 2 threads) | rnopt p50 ms | reference p50 ms | difference | rnopt per round | reference per round |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    print(compare("ORT fp32 vs bare session.run", lambda: rnopt_median("onnxruntime", files["fp32"]),
                  lambda: bare_ort_median(files["fp32"])), flush=True)
    print(compare("OpenVINO int8 (QDQ) vs benchmark_app", lambda: rnopt_median("openvino", files["int8"]),
                  lambda: benchmark_app_median(files["int8"])), flush=True)
