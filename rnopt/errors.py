"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class RnoptError(Exception):
    """A problem with the user's input or environment: the message says what is wrong and what to do."""
