"""Writing output files so that a failure never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnopt.errors import RnoptError


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it onto `dest` only if the block succeeds."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise RnoptError(f"output folder {parent} does not exist: create it or choose another path")
    if dest.is_dir():
        raise RnoptError(f"output {dest} is a folder: give a file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise RnoptError(f"cannot write in {parent}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); the user's file gets the usual mode for their umask.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, dest)
    except OSError as exc:  # a full disk, a quota: say which file could not be written
        raise RnoptError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(dest: str | os.PathLike[str], payload: Any) -> None:
    """Strict JSON: a non-finite number (NaN, Infinity: not JSON) is written as null."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(_finite(payload), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)


def readable_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return `path` as a Path if it is an existing readable file, else raise a clear error."""
    p = Path(path)
    if not p.exists():
        raise RnoptError(f"{what} {p} does not exist")
    if not p.is_file():
        raise RnoptError(f"{what} {p} is not a file")
    if not os.access(p, os.R_OK):
        raise RnoptError(f"{what} {p} is not readable: check its permissions")
    return p


def ensure_output_differs(inputs: list[Path], output: Path) -> None:
    """Refuse to overwrite an input file with an output: the user would lose their model."""
    out = output.resolve()
    for p in inputs:
        if p.resolve() == out:
            raise RnoptError(f"output {output} is the same file as the input: choose another output path")


def sha256_of(*paths: str | os.PathLike[str]) -> str:
    """The sha256 of the files' bytes, in order (a model file and its weights file hash as one)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
