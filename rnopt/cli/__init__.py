"""The `rnopt` command: one module per command (its options and what it runs), each calling the public API;
this module parses the command line and turns errors and signals into one line and an exit status."""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Callable

from rnopt import progress
from rnopt.cli import (
    backends,
    bench,
    build,
    compare_runs,
    embed,
    eval,
    export,
    models,
    optimize,
    quantize,
    report,
    run,
    sensitivity,
    tune,
)
from rnopt.cli.common import _Parser, _show_warnings
from rnopt.console import ProgressBars
from rnopt.errors import Interrupted, RnoptError, first_line
from rnopt.fileio import replacing
from rnopt.report.render import err_console, printable
from rnopt.results import invoked_as

COMMANDS = (models, export, build, optimize, quantize, sensitivity, backends, bench, eval, embed, report, compare_runs,
            run, tune)  # in the order `rnopt --help` lists them


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnopt", description="Export, fuse, quantize, benchmark and evaluate PyTorch ResNets.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    common.add_argument("--quiet", action="store_true", help="no tables or progress bars")
    common.add_argument("--force", action="store_true", help="replace output files that already exist")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = "rnopt " + shlex.join(argv)
    func: Callable[[argparse.Namespace], None] = args.func
    previous = _handle_termination()
    try:
        with replacing(bool(getattr(args, "force", False))), warnings.catch_warnings(), \
                progress.listening(None if args.quiet else ProgressBars()), invoked_as(args.command_line):
            warnings.showwarning = _show_library_warning
            func(args)
        _show_notices()
    except RnoptError as exc:
        err_console.print(f"error: {printable(str(exc))}", markup=False, soft_wrap=True)
        return 1
    except OSError as exc:  # the system refused (disk full, permissions...): say what, on one line
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(printable(f"error: {exc.strerror or exc}{where}"), markup=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        _caught.set()
        _stop_workers()
        err_console.print("error: interrupted (SIGINT): partial outputs removed", markup=False)
        return 130
    except Interrupted as exc:
        _caught.set()
        _stop_workers()
        name = signal.Signals(exc.signum).name
        err_console.print(f"error: terminated ({name}): partial outputs removed", markup=False)
        return 128 + exc.signum
    except Exception as exc:  # a bug, not bad input: one line by default, the traceback on request
        if os.environ.get("RNOPT_DEBUG"):
            raise
        err_console.print(f"error: internal error {type(exc).__name__}: {first_line(exc, 300)} (a bug in rnopt: "
                          f"please report it with the command line and the traceback RNOPT_DEBUG=1 prints)",
                          markup=False, soft_wrap=True)
        return 3
    finally:
        if not _interrupted(previous):  # once interrupted, the process is on its way out: a later signal must not
            _restore(previous)          # kill it half-way through its message, or raise past main()
        _drain_notices()  # after an error, the one-line message stands alone
    return 0


def _show_library_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                          file: object = None, line: str | None = None) -> None:
    """A library's Python warning (matplotlib, torch) on one line, its control characters shown, not obeyed (the
    message may quote an input file's name or contents)."""
    err_console.print(f"warning: {printable(str(message))}", markup=False, soft_wrap=True)


def _interrupted(handlers: dict[int, object]) -> bool:
    """Whether a signal arrived during the command (its handler then set every one of them to SIG_IGN)."""
    return bool(handlers) and signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def _drain_notices() -> list[str]:
    from rnopt.notices import drain

    return drain()


def _show_notices() -> None:
    _show_warnings(_drain_notices())


_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


# Set once main() has caught the interruption: a signal sent again for one whose exception Python dropped
# (_delivered_again) may still arrive after that, and must then neither raise nor kill the process on its way out.
_caught = threading.Event()


def _raise_interrupted(signum: int, _frame: object) -> None:
    # A second signal while the first one unwinds would interrupt the cleanup itself (a traceback, a temporary
    # file left): from the first one on, further ones are ignored until main() restores the handlers.
    for other in (*_TERMINATING, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    if _caught.is_set():
        return
    _stop_workers()  # first: a worker pool would otherwise wait for its children before unwinding
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def _handle_termination() -> dict[int, object]:
    """SIGTERM and SIGHUP unwind like Ctrl-C: temporary files and half-made run folders are removed on the way
    out; Ctrl-C too, and a repeated signal does not interrupt that. Only from the main thread (tests may call
    main() elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    global _hook_before
    _caught.clear()
    if sys.unraisablehook is not _delivered_again:  # a command interrupted before left it installed
        _hook_before, sys.unraisablehook = sys.unraisablehook, _delivered_again
    return {signum: signal.signal(signum, _raise_interrupted) for signum in (*_TERMINATING, signal.SIGINT)}


_hook_before = sys.unraisablehook  # the hook _delivered_again hands every other dropped exception to


def _delivered_again(unraisable: "sys.UnraisableHookArgs") -> None:
    """A signal's exception raised where Python cannot raise it (a weakref callback, a __del__: the import system's
    module locks, while a model is exported) is printed and dropped, and the command would run on with every
    signal ignored: the signal is sent again, a moment later, to be raised in ordinary code."""
    exc = unraisable.exc_value
    if not isinstance(exc, (Interrupted, KeyboardInterrupt)):
        _hook_before(unraisable)
        return
    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    signal.signal(signum, _raise_interrupted)
    again = threading.Timer(0.01, os.kill, (os.getpid(), signum))
    again.daemon = True  # never waited for at exit
    again.start()


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    if previous:
        sys.unraisablehook = _hook_before


def _stop_workers() -> None:
    if "rnopt.execute.process" in sys.modules:
        sys.modules["rnopt.execute.process"].kill_workers()
