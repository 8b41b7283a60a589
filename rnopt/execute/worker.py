"""The child side of the subprocess executor (and of any remote one): a JSON request on stdin, one JSON
line on stdout. Tasks: `bench` (time one spec in this fresh process) and `memory` (what one spec adds to
a fresh process's peak memory at one batch size). A failure is one line on stderr and exit status 1.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from rnopt.bench import BenchConfig
from rnopt.errors import RnoptError
from rnopt.spec import VariantSpec


def handle(request: dict) -> dict:
    spec = VariantSpec.from_dict(request["spec"])
    if request["task"] == "memory":
        from rnopt.memory import measure_here

        return asdict(measure_here(spec, int(request["batch_size"])))
    if request["task"] == "bench":
        from rnopt.execute.inprocess import InProcessExecutor

        outcome = InProcessExecutor().bench([spec], BenchConfig.from_dict(request["config"]))
        return {"results": [asdict(r) for r in outcome.results], "failures": [asdict(f) for f in outcome.failures]}
    raise RnoptError(f"unknown worker task {request['task']!r}")


def main() -> int:
    try:
        answer = handle(json.loads(sys.stdin.read()))
    except (RnoptError, OSError, KeyError, ValueError) as exc:
        print(f"{type(exc).__name__ if not isinstance(exc, RnoptError) else 'error'}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
