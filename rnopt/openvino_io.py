"""Reading models with OpenVINO without its noise: the useful line of its exceptions, and no native log spam.

OpenVINO's exceptions start with source locations ("Exception from src/inference/src/cpp/core.cpp:84:",
"Check '...' failed at ..."); the reason ("bin file cannot be found!") comes after. Asked to read a file that
is not a model, its TensorFlow frontend logs through absl straight to file descriptor 2.
"""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def reason(exc: BaseException, limit: int = 200) -> str:
    """The first line of an OpenVINO exception that is not a source location."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from ", "Check '"))]
    return ((useful or lines or [type(exc).__name__])[0])[:limit]


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block (native libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def read_model(core, path: str):  # noqa: ANN001, ANN201 - openvino types, imported by the caller
    """core.read_model, quietly; an unreadable model raises RuntimeError with its useful line."""
    try:
        with native_stderr_silenced():
            return core.read_model(path)
    except Exception as exc:  # OpenVINO raises RuntimeError and its own subclasses
        raise RuntimeError(reason(exc)) from None
