"""A probe as run: text -> token ids through the model's own tokenizer (or its chat format), cut to
the model's context.

What this module does not do: run the model (capture/) or name output folders (pipeline.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass, field

from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel


@dataclass
class Probe:
    """A probe as run: the text, its ids after truncation to the context, and what was dropped."""

    text: str
    ids: list[int]
    dropped_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chat: bool = False  # text is a user message, rendered as the family's chat turn


# Encoded once when a tokenizer is loaded, so that a hostile split pattern (one that panics, or
# backtracks past the regex engine's limit) fails at load, naming its file: words, digits, accents,
# CJK, an emoji, whitespace runs and a long run of one letter before a non-letter.
TRIAL_TEXT = "Hello, world! 0123 ünïcödé 中文 😀\n\t  " + "a" * 64 + "!" + " " * 64 + "x\r\n"


@contextlib.contextmanager
def held_stderr():
    """While native code runs, what it writes straight to file descriptor 2 (a Rust panic's
    message and backtrace) goes to a temporary file; `held.drop()` discards it (the failure is
    told as one line instead), otherwise it is written back to fd 2 afterwards, nothing lost."""
    held = _Held()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to hold
        yield held
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            if not held.dropped:
                sink.seek(0)
                written = sink.read()
                if written:
                    os.write(2, written)


class _Held:
    dropped = False

    def drop(self) -> None:
        self.dropped = True


def guarded_tokenizer_call(call, what: str, source: str | None = None):
    """Run a tokenizer call; a failure inside a native tokenizer (a Rust panic is a BaseException,
    not an Exception) becomes one VisualizerError ('<source>: the tokenizer failed on <what> (...)')
    instead of a traceback, and what the panic printed to the terminal is held back."""
    with held_stderr() as held:
        try:
            return call()
        except VisualizerError:
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as e:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
            held.drop()
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            where = f"{source}: " if source else ""
            raise VisualizerError(f"{where}the tokenizer failed on {what} ({type(e).__name__}: {first})") from None


def prepare_probe(loaded: LoadedModel, text: str, chat: bool = False) -> Probe:
    """Encode a probe (or a chat message); keep its last n_ctx tokens (with a warning) when longer."""
    encoded = guarded_tokenizer_call(
        lambda: loaded.adapter.encode_chat(loaded, text) if chat else loaded.adapter.encode_probe(loaded, text),
        "the chat message" if chat else "the probe")
    ids, warnings = list(encoded.ids), list(encoded.warnings)
    if not ids:
        raise VisualizerError("the probe encodes to no tokens")
    n_ctx = loaded.dims.n_ctx
    dropped = ids[:-n_ctx] if len(ids) > n_ctx else []
    if dropped:
        warnings.append(
            f"the probe has {len(ids)} tokens, more than the model's context of {n_ctx}: "
            f"kept the last {n_ctx}, dropped the first {len(dropped)}"
        )
    return Probe(text=text, ids=ids[-n_ctx:], dropped_ids=dropped, warnings=warnings, chat=chat)
