"""Restricted unpickling: `meta.pkl` and tokenizer files come from strangers, so never plain pickle.

Only plain containers, strings, bytes and numbers are admitted by default: the pickle opcodes for
those need no global lookup at all, so `find_class` refuses every class except the short list a
caller passes. Nothing refused is ever imported or called. A caller may also name `substitutes`:
classes unpickled as a stand-in of the caller's (which only records the pickled state), so that
an object such as a tiktoken Encoding is rebuilt from checked data, never by its own constructor.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from visualizer.errors import VisualizerError

# Globals that plain containers need under some pickle protocols: set/frozenset/OrderedDict, and
# _codecs.encode, which protocols 0-2 use to rebuild bytes. Called with plain data, they run no
# user code.
PLAIN_GLOBALS = frozenset(
    {("builtins", "set"), ("builtins", "frozenset"), ("collections", "OrderedDict"), ("_codecs", "encode")}
)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str, allowed: frozenset, substitutes: dict):
        super().__init__(file)
        self._source = source
        self._allowed = allowed
        self._substitutes = substitutes

    def find_class(self, module: str, name: str):
        module = {"__builtin__": "builtins"}.get(module, module)  # Python 2 names in protocols 0-2
        if (module, name) in self._substitutes:
            return self._substitutes[(module, name)]
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        also = "".join(f", {m}.{n}" for m, n in sorted(self._substitutes))
        raise VisualizerError(
            f"{self._source}: refused to unpickle '{module}.{name}': only plain dicts, lists, "
            f"strings and numbers{also} are allowed (nothing in the file was executed)"
        )

    def persistent_load(self, pid):
        raise VisualizerError(f"{self._source}: refused a persistent reference in the pickle")


def load_restricted(path: Path, allowed: frozenset = PLAIN_GLOBALS, substitutes: dict | None = None) -> object:
    """Unpickle `path` admitting only plain data plus the (module, name) pairs in `allowed`, and
    the pairs in `substitutes` ((module, name) -> stand-in class) unpickled as their stand-in."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise VisualizerError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(data), str(path), allowed, dict(substitutes or {})).load()
    except VisualizerError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise VisualizerError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
