"""Leaving a finished `rnopt` process without Python's teardown.

Once a command is done, the interpreter frees every module it imported before the process ends. With PyTorch, its
exporter's modules (torch._dynamo, onnxscript, sympy) and NNCF loaded, that alone took 0.9 s here, after the last
line was printed (benchmarks/README.md, "Leaving without the teardown"): time the user waits for nothing. What the
teardown does that matters is done here first: other threads finished, the exit handlers run (logging flushes,
temporary folders go), stdout and stderr flushed. Only the `rnopt` program and its worker
processes leave this way; `rnopt.cli.main()` called from Python returns as before.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process with `code`, skipping the interpreter's teardown (or through it, while a thread of ours still
    runs: a normal exit waits for it)."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what a normal exit runs after joining the threads
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), or a stream already closed
            pass
    os._exit(code)
