"""Typed JSON: building result dataclasses from JSON read from anywhere, every field's type and range checked.

A result file may come from another machine, another rnopt or a hand edit, so nothing in it is trusted: `build`
makes a dataclass from it or raises one TypeError/ValueError naming the field. `check_fields` is the same check for
the public configs and specs made in Python. This module knows no result type: `rnopt.results` registers the
ranges of its fields (`RANGES`) and the types that load themselves (`LOADERS`).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any

# The ranges readers rely on: a result file may come from anywhere and say anything, so these are checked when it
# is read (besides every field's type), and a file that breaks one is refused by name rather than crashing a
# renderer or a division later.
POSITIVE, NON_NEGATIVE, FRACTION, INTERVAL = "positive", "zero or more", "a fraction (0 to 1)", "interval"
RANGES: dict[str, dict[str, str]] = {}  # class name -> field -> rule (rnopt.results fills it)
# Types that rebuild themselves from JSON with their own checks (a VariantSpec): type -> loader
LOADERS: dict[type, Callable[[Any], Any]] = {}
MAX_DEPTH = 32  # free-form objects (settings, listings) nested deeper than this are refused
MAX_MAGNITUDE = 1e300  # numbers beyond it (10**400 as an integer) are refused, not overflowed later


def build(cls: type, data: Any) -> Any:
    """Instantiate dataclass `cls` from plain JSON data, recursing into nested dataclasses and lists; every
    field's type and the ranges in `RANGES` are checked (TypeError or ValueError naming the field).

    Unknown keys are ignored, so files from a newer rnopt with extra fields still load.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} expects an object, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    ranges = RANGES.get(cls.__name__, {})
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            try:
                kwargs[f.name] = _convert(hints[f.name], data[f.name])
                _check_range(ranges.get(f.name), kwargs[f.name])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{cls.__name__}.{f.name}: {exc}") from None
    try:
        return cls(**kwargs)
    except TypeError:  # a required field left out
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        raise TypeError(f"{cls.__name__} lacks {', '.join(missing)}") from None


def _check_range(rule: str | None, value: Any) -> None:
    if rule is None or value is None:
        return
    if rule == INTERVAL:
        if len(value) != 2 or not 0 <= value[0] <= value[1]:
            raise ValueError(f"expected an interval [low, high] with 0 <= low <= high, got {_shown(value)}")
        return
    ok = {POSITIVE: value > 0, NON_NEGATIVE: value >= 0, FRACTION: 0 <= value <= 1}[rule]
    if not ok:
        raise ValueError(f"expected {rule}, got {_shown(value)}")


def _shown(value: Any) -> str:
    return "null" if value is None else f"{value!r:.40}"


def _convert(hint: Any, value: Any, depth: int = 0) -> Any:
    """`value` as `hint` says, checked: result files are read from anywhere, so their types are not trusted."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if hint is Any:
        return _free_form(value, depth)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise TypeError("expected a value, got null")
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, depth) if len(inner) == 1 else _free_form(value, depth)
    if value is None:
        raise TypeError(f"expected {_type_name(hint)}, got null")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {_shown(value)}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, depth + 1) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_shown(value)}")
        _, item = typing.get_args(hint)
        return {_convert(str, k, depth + 1): _convert(item, v, depth + 1) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):  # an instance checked itself when it was made
        if isinstance(value, hint):
            return value
        return _load(hint, value) if hint in LOADERS else build(hint, value)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise TypeError(f"expected a finite number, got {_shown(value)}")
        if hint is int and not isinstance(value, int):
            raise TypeError(f"expected a whole number, got {_shown(value)}")
        return value
    if hint is str and not isinstance(value, str):
        raise TypeError(f"expected text, got {_shown(value)}")
    if hint is bool and not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {_shown(value)}")
    return value


def _load(hint: type, value: Any) -> Any:
    from rnopt.errors import RnoptError

    if not isinstance(value, dict):
        raise TypeError(f"expected an object ({hint.__name__}), got {_shown(value)}")
    try:
        return LOADERS[hint](value)
    except RnoptError as exc:
        raise ValueError(str(exc)) from None


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value) and abs(float(value)) <= MAX_MAGNITUDE
    except OverflowError:  # an integer too large for a float
        return False


def _free_form(value: Any, depth: int) -> Any:
    """JSON of any shape (settings, listings): only JSON's own types, finite numbers, bounded depth."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {_convert(str, k, depth + 1): _free_form(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_free_form(v, depth + 1) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
        raise TypeError(f"expected a finite number, got {_shown(value)}")
    return value


def _type_name(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return f"an object ({hint.__name__})"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(hint, "a value")


def check_fields(obj: Any) -> None:
    """The public constructors' check (BenchConfig, RunOptions, TuneOptions, AccuracyControl, specs): every field
    of dataclass `obj` holds its annotated type, else one RnoptError naming the field. A path field also takes
    text, turned into a Path."""
    from pathlib import Path

    from rnopt.errors import RnoptError

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if Path in (hint, *typing.get_args(hint)) and isinstance(value, (str, Path)):
            object.__setattr__(obj, f.name, Path(value))
            continue
        if dataclasses.is_dataclass(hint) and isinstance(value, hint) or typing.get_origin(hint) is Callable:
            continue
        try:
            _convert(hint, value)
        except (TypeError, ValueError) as exc:
            raise RnoptError(f"{type(obj).__name__}.{f.name}: {exc}") from None
