"""Writing output files so that a failure never leaves a half-written file behind."""
from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rnopt.errors import RnoptError


# Whether this command may replace a file that already exists (the CLI's --force, the API's force=True). Without
# it an output is moved into place only if nothing is there at that moment: a file that appeared while a long
# command ran is kept, not replaced.
_replacing: contextvars.ContextVar[bool] = contextvars.ContextVar("rnopt_replacing", default=False)


@contextlib.contextmanager
def replacing(allowed: bool = True) -> Iterator[None]:
    """Within this block, outputs may replace files that exist (the user said so)."""
    token = _replacing.set(allowed)
    try:
        yield
    finally:
        _replacing.reset(token)


def check_writable_output(dest: str | os.PathLike[str], force: bool | None = None) -> None:
    """Before any work: the output's folder exists, the output is not a folder or a special file (a FIFO, a device:
    replacing one with a regular file would break whatever uses it), and it exists only if replacing is allowed."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise RnoptError(f"output folder {parent} does not exist: create it or choose another path")
    if dest.is_dir():
        raise RnoptError(f"output {dest} is a folder: give a file name")
    if dest.exists() or dest.is_symlink():
        if not dest.is_file():
            raise RnoptError(f"output {dest} is not a regular file (a FIFO, a device or a socket): choose a file path")
        if not (_replacing.get() if force is None else force):
            raise RnoptError(f"{dest} already exists: choose another path or pass --force (force=True) to replace it")


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; move it onto `dest` only if the block succeeds (and, unless
    replacing is allowed, only if `dest` still does not exist)."""
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    check_writable_output(dest, force=True)  # existence is judged at the move, the moment that matters
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
        move_into_place(tmp_path, dest)
    except OSError as exc:  # a full disk, a quota: say which file could not be written
        raise RnoptError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def move_into_place(tmp: Path, dest: Path) -> None:
    """Rename `tmp` onto `dest`. Unless replacing is allowed, never over something that exists now: a hard link
    fails atomically if `dest` appeared meanwhile (where the file system has no hard links, a check right
    before the rename)."""
    if _replacing.get():
        if dest.exists() and not dest.is_file():
            raise RnoptError(f"output {dest} is not a regular file (a FIFO, a device or a socket): not replaced")
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise RnoptError(f"{dest} appeared while this command ran: it was left as it is (pass --force to "
                         f"replace it)") from None
    except OSError:  # no hard links here
        if dest.exists() or dest.is_symlink():
            raise RnoptError(f"{dest} appeared while this command ran: it was left as it is (pass --force to "
                             f"replace it)") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


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


def encode_array(array: np.ndarray) -> str:
    """An array as JSON-safe text (base64 .npy): dtype and bits kept, so outputs compare bit for bit."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_array(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)
