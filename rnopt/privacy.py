"""Nothing leaves the machine: the libraries rnopt drives that report usage by default (OpenVINO and NNCF
through openvino_telemetry, Ray's usage stats) start with it off, unless the user opted in through the library's
own consent file. Each reads its setting from the environment as it starts; the environment is set for that moment
only, so child processes and the rest of the program see the user's own."""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

# What openvino_telemetry (CI: it declines in CI) and NNCF (NNCF_CI: its telemetry object is a stub) read.
NNCF_SILENT = {"CI": "true", "NNCF_CI": "1"}
RAY_SILENT = {"RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ for the block, then every name as it was."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_openvino() -> ModuleType:
    """openvino, its telemetry off unless the user opted in. With no consent file, `import openvino` itself sends
    an "import" event to Google Analytics (openvino.tools.ovc, from a thread it starts) and writes a client id into
    ~/intel: every rnopt module imports OpenVINO through this, so the first import is always the silenced one."""
    return _imported_silenced("openvino")


def import_nncf() -> ModuleType:
    """nncf, its usage telemetry off unless the user opted in: NNCF decides as it is imported."""
    return _imported_silenced("nncf")


def _imported_silenced(name: str) -> ModuleType:
    """Module `name`, imported with its telemetry off the first time (a later import changes nothing)."""
    with contextlib.nullcontext() if name in sys.modules else nncf_silenced():
        return importlib.import_module(name)


def nncf_silenced() -> contextlib.AbstractContextManager[None]:
    """Around the first import of NNCF or OpenVINO: their telemetry off unless OpenVINO's consent file
    (`opt_in_out --opt_in`) says yes. With no consent file NNCF sends usage events to Google Analytics (each from a
    process forked for it) and writes a client id into ~/intel."""
    try:
        consented = (Path.home() / "intel" / "openvino_telemetry").read_text().strip() == "1"
    except OSError:
        consented = False
    return contextlib.nullcontext() if consented else environment(NNCF_SILENT)


def ray_silenced() -> contextlib.AbstractContextManager[None]:
    """Around the start of a private Ray cluster: usage stats off unless the user chose (the variable set, or
    `ray enable-usage-stats`' config file); Ray enables them by default."""
    if "RAY_USAGE_STATS_ENABLED" in os.environ:
        return contextlib.nullcontext()
    config = Path(os.environ.get("RAY_USAGE_STATS_CONFIG_PATH", Path.home() / ".ray" / "config.json"))
    try:
        if json.loads(config.read_text()).get("usage_stats") is True:
            return contextlib.nullcontext()
    except (OSError, ValueError, AttributeError):
        pass
    return environment(RAY_SILENT)
