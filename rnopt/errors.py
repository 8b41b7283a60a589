"""The one exception type the CLI turns into a one-line message and a non-zero exit, and the helper that
turns a library's exception into the one line a user reads."""


class RnoptError(Exception):
    """A problem with the user's input or environment: the message says what is wrong and what to do."""


class BatchTooLarge(RnoptError):
    """A batch whose inputs and activations cannot fit in memory (an offline batch sweep stops there)."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message, cut to `limit` characters (its type name if it is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class Interrupted(BaseException):
    """SIGTERM, SIGHUP or Ctrl-C (SIGINT) during a command, raised like KeyboardInterrupt so that every cleanup on
    the way out runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
