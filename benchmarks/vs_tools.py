"""`rnopt tune`'s recommendation against the runtimes' own tools, on the model files the tune made.

    .venv/bin/python benchmarks/vs_tools.py REPORT_JSON [--seconds 15] [--out results.json]

REPORT_JSON is a `rnopt tune` record (its folder holds every candidate's file). Right after the tune, in the same
sitting, every .onnx and .xml file of the folder is timed by

  - OpenVINO's `benchmark_app` (`-hint latency`, or `-hint throughput` for a throughput search; its median latency
    and its throughput in FPS), and
  - a bare ONNX Runtime loop (default session options; `InferenceSession.run` on one fixed batch in a loop; the
    median of the calls), for the .onnx files,

and the recommendation's figure from the tune is compared with the best of each tool. Ratio = rnopt's median /
the tool's best median (latency: goal <= 1.00), or the tool's best images/s / rnopt's (throughput: goal <= 1.00).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def benchmark_app(model: Path, hint: str, batch: int, size: int, seconds: int) -> dict[str, float] | None:
    """benchmark_app's median latency (ms) and throughput (FPS) for `model` at a static input shape."""
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    shape = f"[{batch},3,{size},{size}]"
    done = subprocess.run([tool, "-m", str(model), "-d", "CPU", "-hint", hint, "-t", str(seconds), "-shape", shape],
                          capture_output=True, text=True)
    median = re.search(r"Median:\s+([\d.]+) ms", done.stdout)
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", done.stdout)
    if done.returncode != 0 or not median or not fps:
        print(f"benchmark_app failed on {model.name}: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return {"median_ms": float(median.group(1)), "throughput_fps": float(fps.group(1))}


def bare_ort(model: Path, batch: int, size: int, seconds: int) -> dict[str, float]:
    """A bare ONNX Runtime loop: default session options, one fixed batch, the median of the calls."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch_data = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    for _ in range(10):
        session.run(None, {name: batch_data})
    calls, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        session.run(None, {name: batch_data})
        calls.append((time.perf_counter() - start) * 1000)
    median = statistics.median(calls)
    return {"median_ms": median, "throughput_fps": batch * 1000 / median, "calls": len(calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    record = json.loads(args.report.read_text())
    search = record["searches"][0]
    chosen = next(c for c in search["candidates"] if c["spec_id"] == search["chosen_id"])
    folder = Path(record.get("folder") or args.report.parent)
    size, batch = record["model"]["input_size"], chosen.get("batch_size") or search["batch_size"]
    hint = "throughput" if search["objective"] == "throughput" else "latency"
    rows = []
    for model in sorted([*folder.glob("*.onnx"), *folder.glob("*.xml")]):
        if ".fused." in model.name:  # ONNX Runtime's own operators: OpenVINO cannot read it
            rows.append({"file": model.name, "tool": "bare ORT loop", **bare_ort(model, batch, size, args.seconds)})
            continue
        found = benchmark_app(model, hint, batch, size, args.seconds)
        if found:
            rows.append({"file": model.name, "tool": f"benchmark_app -hint {hint}", **found})
        if model.suffix == ".onnx":
            rows.append({"file": model.name, "tool": "bare ORT loop", **bare_ort(model, batch, size, args.seconds)})
    for row in rows:
        print(f"{row['tool']:<30} {row['file']:<36} median {row['median_ms']:8.3f} ms  {row['throughput_fps']:9.1f} "
              f"images/s")
    summary = {"chosen": chosen["label"], "chosen_p50_ms": chosen["p50_ms"], "chosen_ci_ms": chosen["p50_ci_ms"],
               "chosen_ips": chosen["throughput_ips"], "objective": search["objective"], "batch": batch, "rows": rows}
    for tool in sorted({r["tool"] for r in rows}):
        mine = [r for r in rows if r["tool"] == tool]
        if hint == "throughput":
            best = max(mine, key=lambda r: r["throughput_fps"])
            ratio = best["throughput_fps"] / chosen["throughput_ips"]
        else:
            best = min(mine, key=lambda r: r["median_ms"])
            ratio = chosen["p50_ms"] / best["median_ms"]
        summary[tool] = {"best_file": best["file"], "median_ms": best["median_ms"],
                         "throughput_fps": best["throughput_fps"], "ratio": ratio}
        print(f"rnopt's {chosen['label']} vs the best of {tool} ({best['file']}): ratio {ratio:.2f} (goal <= 1.00)")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
