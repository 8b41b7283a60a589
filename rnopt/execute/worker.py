"""The child side of the subprocess executor (and of any remote one): a JSON request on stdin (a task and the
specs it names), the task run here (rnopt.execute.handlers), its outcome as one JSON line on stdout. A failure
is one line on stderr and exit status 1.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

from rnopt.data import ImageDataset
from rnopt.errors import RnoptError
from rnopt.execute.handlers import Advance, perform
from rnopt.execute.inprocess import InProcessExecutor
from rnopt.execute.tasks import DataRef, Task
from rnopt.spec import VariantSpec


def handle(request: dict[str, Any], advance: Advance | None = None, shard: ImageDataset | None = None
           ) -> dict[str, Any]:
    """The request's task run here, its outcome as JSON-ready data; progress told to `advance` (a cluster's).
    `shard`: a predict task's images, sent because this machine does not have its folder (read in place of it)."""
    task = Task.from_dict(request["task"])
    if shard is not None:
        task = replace(task, data=DataRef.of(shard), config={**task.config, "start": 0, "stop": len(shard)})
    specs = [VariantSpec.from_dict(s) for s in request["specs"]]
    here = InProcessExecutor()
    return perform(task, specs, here.load, here.store, advance).to_dict()  # memory too: this process is the fresh one


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
