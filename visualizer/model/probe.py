"""A probe as run: text -> token ids through the model's own tokenizer (or its chat format), cut to
the model's context.

What this module does not do: run the model (capture/) or name output folders (pipeline.py).
"""

from __future__ import annotations

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


def guarded_tokenizer_call(call, what: str):
    """Run a tokenizer call; a failure inside a native tokenizer (a Rust panic is a BaseException,
    not an Exception) becomes one VisualizerError instead of a traceback."""
    try:
        return call()
    except VisualizerError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise VisualizerError(f"the tokenizer failed on {what} ({type(e).__name__}: {first})") from None


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
