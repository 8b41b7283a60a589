"""rnopt's throughput figure against OpenVINO's `benchmark_app -hint throughput` on one file, in alternated sittings.

    .venv/bin/python benchmarks/throughput_vs_benchmark_app.py MODEL.xml [--batch 32] [--size 224] [--seconds 30]
        [--pairs 4] [--out results.json]

Each pair runs `rnopt bench MODEL --backend openvino --hint throughput` and `benchmark_app -hint throughput` on the
same file at the same static batch, back to back, the first of the pair alternating (rnopt first, then
benchmark_app first, ...) so that a host that speeds up or slows down favours neither. Both keep OpenVINO's
optimal number of requests in flight. Printed: every sitting's images/s, each pair's ratio (benchmark_app's
images/s over rnopt's: goal <= 1.00), and the median ratio with the range of the pairs.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def rnopt_images_per_s(model: Path, batch: int, seconds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        subprocess.run([str(Path(sys.executable).with_name("rnopt")), "bench", str(model), "--backend", "openvino",
                        "--hint", "throughput", "--batch-size", str(batch), "--warmup", "2", "--target-ci", "2",
                        "--max-time", str(seconds), "--no-memory", "--quiet", "--json", str(out)], check=True)
        return float(json.loads(out.read_text())["bench"][0]["throughput_ips"])


def benchmark_app_images_per_s(model: Path, batch: int, size: int, seconds: int) -> float:
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    done = subprocess.run([tool, "-m", str(model), "-d", "CPU", "-hint", "throughput", "-t", str(seconds),
                           "-shape", f"[{batch},3,{size},{size}]"], capture_output=True, text=True, check=True)
    fps = re.search(r"Throughput:\s+([\d.]+) FPS", done.stdout)
    if fps is None:
        raise SystemExit(f"benchmark_app printed no throughput for {model}")
    return float(fps.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sittings = {"rnopt": lambda: rnopt_images_per_s(args.model, args.batch, args.seconds),
                "benchmark_app": lambda: benchmark_app_images_per_s(args.model, args.batch, args.size, args.seconds)}
    pairs = []
    for k in range(args.pairs):
        order = ["rnopt", "benchmark_app"] if k % 2 == 0 else ["benchmark_app", "rnopt"]
        pair = {}
        for tool in order:
            pair[tool] = sittings[tool]()
            print(f"pair {k + 1}: {tool:13} {pair[tool]:8.2f} images/s", flush=True)
        pair["ratio"] = pair["benchmark_app"] / pair["rnopt"]
        pairs.append(pair)
    ratios = [p["ratio"] for p in pairs]
    summary = {"model": str(args.model), "batch": args.batch, "seconds": args.seconds, "pairs": pairs,
               "median_ratio": statistics.median(ratios), "min_ratio": min(ratios), "max_ratio": max(ratios),
               "rnopt_median": statistics.median(p["rnopt"] for p in pairs),
               "benchmark_app_median": statistics.median(p["benchmark_app"] for p in pairs)}
    print(f"benchmark_app / rnopt: median {summary['median_ratio']:.3f} (pairs {min(ratios):.3f}-{max(ratios):.3f}); "
          f"images/s medians: rnopt {summary['rnopt_median']:.2f}, benchmark_app {summary['benchmark_app_median']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
