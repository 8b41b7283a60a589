"""The `rnopt` command: one module per command (its options and what it runs), each calling the public API;
this module parses the command line and turns errors and signals into one line and an exit status."""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import NoReturn

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
from rnopt.exiting import exit_now
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
    except (Interrupted, KeyboardInterrupt) as exc:  # KeyboardInterrupt: Ctrl-C before the handler was set
        _caught.set()
        _stop_workers()
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        what = "interrupted" if signum == signal.SIGINT else "terminated"
        err_console.print(f"error: {what} ({signal.Signals(signum).name}): partial outputs removed", markup=False)
        return 128 + signum
    except Exception as exc:  # a bug, not bad input: one line by default, the traceback on request
        if os.environ.get("RNOPT_DEBUG"):
            raise
        err_console.print(f"error: internal error {type(exc).__name__}: {first_line(exc, 300)} (a bug in rnopt: "
                          f"please report it with the command line and the traceback RNOPT_DEBUG=1 prints)",
                          markup=False, soft_wrap=True)
        return 3
    finally:
        _caught.set()  # main() is done: a watch on a swallowed signal stops, a late signal does nothing
        if _interrupted(previous):  # on its way out: a later signal must not kill it half-way through its message,
            _ignore_signals()       # raise past main(), or kill it once Python resets its handlers at exit
        else:
            _restore(previous)
        _drain_notices()  # after an error, the one-line message stands alone
    return 0


def console_main() -> NoReturn:
    """The `rnopt` program: `main()` on the command line, then out without the interpreter's teardown (about 1 s
    with PyTorch loaded, rnopt.exiting)."""
    exit_now(main())


def _show_library_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                          file: object = None, line: str | None = None) -> None:
    """A library's Python warning (matplotlib, torch) on one line, its control characters shown, not obeyed (the
    message may quote an input file's name or contents)."""
    err_console.print(f"warning: {printable(str(message))}", markup=False, soft_wrap=True)


def _drain_notices() -> list[str]:
    from rnopt.notices import drain

    return drain()


def _show_notices() -> None:
    _show_warnings(_drain_notices())


_TERMINATING = (signal.SIGTERM, signal.SIGHUP)


# Set once main() has caught the interruption, or is done: a signal sent again for one that was swallowed may still
# arrive after that, and must then neither raise nor kill the process on its way out.
_caught = threading.Event()
_raised: BaseException | None = None  # the signal's exception on its way up; further signals wait for it
_signalled = False  # a signal arrived during the command


def _raise_interrupted(signum: int, _frame: object) -> None:
    # A second signal while the first one unwinds would interrupt the cleanup itself (a traceback, a temporary
    # file left): from the first one on, further ones do nothing, unless the first one's exception was swallowed.
    global _raised, _signalled
    _signalled = True
    if _caught.is_set() or _raised is not None:
        return
    _stop_workers()  # first: a worker pool would otherwise wait for its children before unwinding
    # Not KeyboardInterrupt, even for Ctrl-C: one that escapes code run by exec() of a string (sympy's mpmath
    # does that on import) marks the process, and Python then kills itself by SIGINT at exit (status -2, not 130)
    # however the command ended.
    _raised = Interrupted(signum)
    _watch(_raised, signum)
    raise _raised


def _handle_termination() -> dict[int, object]:
    """SIGTERM and SIGHUP unwind like Ctrl-C: temporary files and half-made run folders are removed on the way
    out; Ctrl-C too, and a repeated signal does not interrupt that. Only from the main thread (tests may call
    main() elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    global _hook_before, _raised, _signalled
    _caught.clear()
    _raised, _signalled = None, False
    if sys.unraisablehook is not _delivered_again:  # a command interrupted before left it installed
        _hook_before, sys.unraisablehook = sys.unraisablehook, _delivered_again
    return {signum: signal.signal(signum, _raise_interrupted) for signum in (*_TERMINATING, signal.SIGINT)}


def _interrupted(handlers: dict[int, object]) -> bool:
    """Whether a signal arrived during the command; from then on every later one is ignored."""
    return bool(handlers) and _signalled


# How long the main thread may go neither catching nor handling the signal's exception (in an except, a finally or
# an __exit__ on its way up) before it is taken for swallowed. A library's bare `except:`, or C code that clears
# every error around the Python code the handler ran in (PyObject_HasAttr does), drops it
# without a trace: the export then ran on to exit 0 (CI, stop 30).
SWALLOWED_AFTER_S = 1.0


def _watch(exc: BaseException, signum: int) -> None:
    """Send the signal again if `exc` is swallowed; the handler then raises a new one in ordinary code."""
    main_id = threading.main_thread().ident

    def watch() -> None:
        seen = time.monotonic()
        while not _caught.wait(0.05) and _raised is exc:
            if _handled(sys._current_exceptions().get(main_id), exc):
                seen = time.monotonic()
            elif time.monotonic() - seen > SWALLOWED_AFTER_S:
                _send_again(exc, signum)
                return

    threading.Thread(target=watch, name="rnopt-signal-watch", daemon=True).start()


def _handled(current: object, exc: BaseException) -> bool:
    """Whether the exception a thread is handling (an exc_info tuple before Python 3.12, the exception after) is
    `exc` or was raised or converted while handling it."""
    seen = current[1] if isinstance(current, tuple) else current
    for _ in range(100):  # a chain of __cause__ may loop
        if seen is None or seen is exc:
            return seen is exc
        seen = seen.__cause__ or seen.__context__
    return False


def _send_again(lost: BaseException, signum: int) -> None:
    global _raised
    if _raised is lost and not _caught.is_set():
        _raised = None
        os.kill(os.getpid(), signum)


_hook_before = sys.unraisablehook  # the hook _delivered_again hands every other dropped exception to


def _delivered_again(unraisable: "sys.UnraisableHookArgs") -> None:
    """A signal's exception raised where Python cannot raise it (a weakref callback, a __del__: the import system's
    module locks, while a model is exported) is printed and dropped: the signal is sent again, a moment later, to
    be raised in ordinary code (sooner than the watch on a swallowed one would)."""
    exc = unraisable.exc_value
    if not isinstance(exc, Interrupted):  # rnopt's handler raises only these, Ctrl-C included
        _hook_before(unraisable)
        return
    again = threading.Timer(0.01, _send_again, (exc, exc.signum))
    again.daemon = True  # never waited for at exit
    again.start()


def _ignore_signals() -> None:
    for signum in (*_TERMINATING, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    if previous:
        sys.unraisablehook = _hook_before


def _stop_workers() -> None:
    if "rnopt.execute.process" in sys.modules:
        sys.modules["rnopt.execute.process"].kill_workers()
