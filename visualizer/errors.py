"""The one exception type users see: a bad input, told in one line that names what and where."""


class VisualizerError(Exception):
    """A problem with the user's input (file, key, character, option); exit code 2, no traceback."""


def fail(message: str) -> "NoReturn":  # noqa: F821 (string annotation only)
    raise VisualizerError(message)
