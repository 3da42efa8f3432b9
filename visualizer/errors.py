"""The one exception type users see: a bad input, told in one line that names what and where;
and the one way any text reaches the terminal safely."""

import re


class VisualizerError(Exception):
    """A problem with the user's input (file, key, character, option); exit code 2, no traceback."""


def fail(message: str) -> "NoReturn":  # noqa: F821 (string annotation only)
    raise VisualizerError(message)


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def one_line(message) -> str:
    """A message as one printable line for the terminal: escape sequences dropped, other control
    characters (newlines, C1 controls) shown as their escapes, so nothing can rewrite the screen."""
    message = ANSI_ESCAPE.sub("", str(message))
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in message)
