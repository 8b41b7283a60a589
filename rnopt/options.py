"""Config fields that are also command-line flags.

A config dataclass (a runtime's options, the timing, the int8 recipe, the accuracy bound, the export) declares
each of its user-facing fields with `option`: the flag, its help, its choices. The CLI generates its flags from
those declarations (`rnopt.cli.common.add_config_flags`), so an option's name, help, choices and default are
written once, beside the field they set, and the API and the command line cannot drift apart.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

_NO_DEFAULT = dataclasses.MISSING


def option(default: Any = _NO_DEFAULT, flag: str = "", help: str = "", choices: tuple[str, ...] | None = None,
           metavar: str | None = None, *, factory: Callable[[], Any] | None = None,
           parse: Callable[[str], Any] | None = None, negate: bool = False, negatable: bool = False,
           scale: float | None = None) -> Any:
    """A config field that is also the flag `flag`. How the flag reads its value follows the field's default:
    a bool that defaults to True is `FLAG on|off`, one that defaults to False a bare `FLAG`, `bool | None` is
    `FLAG`/`--no-FLAG`; a tuple is a repeatable flag, each value parsed by `parse` into one item or a list of
    items; a list (`factory`) is one value that `parse` turns into the list. `{default}` in `help` is replaced by
    the default the command uses (a command may have its own: `rnopt run` times batch 1 and 8, `tune` batch 1).

    `negate`: a bare flag that sets the bool to the opposite of its default (`--per-tensor` sets per_channel False).
    `negatable`: a bool given as `FLAG`/`--no-FLAG` (its default differs between commands).
    `scale`: the flag's value times `scale` is the field's (a percentage flag for a fraction field).
    """
    metadata = {"flag": flag, "help": help, "choices": choices, "metavar": metavar, "parse": parse,
                "negate": negate, "negatable": negatable, "scale": scale}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_like(cls: type, name: str, **changes: Any) -> Any:
    """The field `name` of config class `cls` declared again (with `changes`) in another config that takes the same
    option: `rnopt run`'s and `tune`'s model options are `ModelOptions`' own."""
    original = next(f for f in dataclasses.fields(cls) if f.name == name)
    metadata = {**original.metadata, **{k: v for k, v in changes.items() if k != "default"}}
    default = changes.get("default", original.default)
    if original.default_factory is not dataclasses.MISSING and "default" not in changes:
        return dataclasses.field(default_factory=original.default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of the config class `cls` that are command-line flags (declared with `option`)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def shown_default(f: dataclasses.Field, value: Any) -> str:
    """A field's value as its flag would spell it, for help texts."""
    if f.metadata.get("scale") and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = value / f.metadata["scale"]
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# Parsers for flags whose values are not a plain number or word. They raise argparse's error so that a bad value
# is a one-line usage error naming the flag.

def names_list(text: str) -> list[str]:
    """`a, b,,a` -> ["a", "b"] (node names or patterns, for a repeatable flag)."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"expected at least one name, got {text!r}")
    return names


def tensor_range(text: str) -> tuple[str, float, float]:
    """TENSOR=MIN,MAX (a range set by hand)."""
    name, _, bounds = text.partition("=")
    try:
        low, high = (float(b) for b in bounds.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TENSOR=MIN,MAX (e.g. relu_3=0,6), got {text!r}") from None
    return name.strip(), low, high


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_ints(text: str) -> list[int]:
    """`1,8` -> [1, 8] (batch sizes)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return [positive_int(part) for part in dict.fromkeys(parts)]
