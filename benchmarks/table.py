"""The pytest-benchmark suite's results as the README table, with the same statistics `rnopt bench` reports:
each median with its 95 % interval (order statistics, rnopt/stats.py) and the cv.

    .venv/bin/python benchmarks/table.py benchmarks/results.json     (`make bench` runs it)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnopt.stats import median_ci  # noqa: E402


def cell(stats: dict) -> str:
    ms = [x * 1e3 for x in stats["data"]]
    ci = median_ci(ms)
    return f"{ci.median:.2f} ±{ci.half_width:.1%} (cv {stats['stddev'] / stats['mean']:.1%})"


def main(path: str) -> None:
    rows: dict[tuple[str, str, str], dict[int, dict]] = {}
    for b in json.loads(Path(path).read_text())["benchmarks"]:
        if "data" not in b["stats"]:
            raise SystemExit(f"{path} has no raw timings: run pytest with --benchmark-save-data (`make bench` does)")
        p, info = b["params"], b["extra_info"]
        rows.setdefault((p["name"], p["backend"], info["precision_ran"]), {})[p["batch"]] = b["stats"]
    print("| model | runtime | precision that ran | batch 1 median ms (95 % CI, cv) | batch 8 median ms (95 % CI, cv) "
          "| batch 8 images/s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (name, backend, precision), per_batch in rows.items():
        b1, b8 = per_batch.get(1), per_batch.get(8)
        ips = f"{8 / b8['median']:,.0f}" if b8 else ""
        print(f"| {name} | {backend} | {precision} | {cell(b1) if b1 else ''} | {cell(b8) if b8 else ''} | {ips} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "results.json"))
