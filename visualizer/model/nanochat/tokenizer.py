"""nanochat's tokenizer: `tokenizer/tokenizer.pkl` (a pickled tiktoken Encoding) read safely, and
probes encoded exactly as nanochat encodes them.

Reading: the pickle is unpickled with a stand-in for `tiktoken.core.Encoding` that only records the
state it was given; that state (name, pat_str, mergeable_ranks, special_tokens) is checked and a
fresh `tiktoken.Encoding` is built from it. Any other class in the file is refused before it is
imported; nothing in the file runs. An encoding pickled by reference to one of tiktoken's
registered names is accepted only for 'gpt2', from files already on this machine.

Encoding: `<|bos|>` first (`<|endoftext|>` for a GPT-2 encoding, as nanochat), then the text with
`encode_ordinary` (special-token text in a probe stays ordinary text). A chat probe is rendered as
nanochat renders a user turn awaiting the assistant's reply:
`<|bos|> <|user_start|> text <|user_end|> <|assistant_start|>`.

What this module does not do: train or save tokenizers, render multi-turn or tool conversations.
"""

from __future__ import annotations

import os
from pathlib import Path

from visualizer.errors import VisualizerError
from visualizer.model.probe import TRIAL_TEXT, guarded_tokenizer_call
from visualizer.model.safe_pickle import load_restricted
from visualizer.model.tokenizer import BpeTokenizer, Encoded, gpt2_bpe_offline

ENCODING_CLASS = ("tiktoken.core", "Encoding")
STATE_KEYS = ("mergeable_ranks", "name", "pat_str", "special_tokens")
CHAT_TOKENS = ("<|user_start|>", "<|user_end|>", "<|assistant_start|>")
BOS_TOKENS = ("<|bos|>", "<|endoftext|>")  # nanochat's own, then what it uses with GPT-2's encoding


class PickledEncodingState:
    """Stands in for tiktoken.core.Encoding while unpickling: keeps the state, runs nothing."""

    def __setstate__(self, state: object) -> None:
        self.state = state


def _check_state(path: Path, state: object) -> dict:
    if not isinstance(state, dict):
        raise VisualizerError(f"{path}: the pickled Encoding's state is a {type(state).__name__}, expected a dict")
    for key in state:
        if key not in STATE_KEYS:
            raise VisualizerError(f"{path}: unexpected key {key!r} in the pickled Encoding's state")
    for key in STATE_KEYS:
        if key not in state:
            raise VisualizerError(f"{path}: the pickled Encoding's state has no {key!r}")
    if not isinstance(state["name"], str) or not isinstance(state["pat_str"], str):
        raise VisualizerError(f"{path}: the pickled Encoding's 'name' and 'pat_str' must be strings")
    ranks, specials = state["mergeable_ranks"], state["special_tokens"]
    if not isinstance(ranks, dict) or not all(
        isinstance(k, bytes) and type(v) is int and v >= 0 for k, v in ranks.items()
    ):
        raise VisualizerError(f"{path}: the pickled Encoding's 'mergeable_ranks' must map bytes to ranks")
    if not isinstance(specials, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in specials.items()
    ):
        raise VisualizerError(f"{path}: the pickled Encoding's 'special_tokens' must map strings to ids")
    return state


def read_encoding(path: Path):
    """A tiktoken.Encoding rebuilt from the checked state in `path` (never by unpickling it)."""
    import tiktoken

    stand_in = load_restricted(path, substitutes={ENCODING_CLASS: PickledEncodingState})
    if not isinstance(stand_in, PickledEncodingState) or not hasattr(stand_in, "state"):
        raise VisualizerError(f"{path}: not a pickled tiktoken Encoding (found {type(stand_in).__name__})")
    state = stand_in.state
    if isinstance(state, str):  # tiktoken pickles its registered encodings by name
        if state == "gpt2":
            return gpt2_bpe_offline().encoding
        raise VisualizerError(
            f"{path}: refers to tiktoken's registered encoding {state!r} by name; visualizer does not "
            "download it (save the tokenizer with its ranks, as nanochat's own tokenizer is saved)"
        )
    state = _check_state(path, state)
    try:
        encoding = tiktoken.Encoding(
            name=state["name"],
            pat_str=state["pat_str"],
            mergeable_ranks=state["mergeable_ranks"],
            special_tokens=state["special_tokens"],
        )
    except Exception as e:  # tiktoken refuses inconsistent ranks or a bad pattern
        raise VisualizerError(f"{path}: tiktoken cannot build this Encoding ({type(e).__name__}: {e})") from None
    # a pattern tiktoken compiles may still panic when it splits text (one that matches the empty string)
    guarded_tokenizer_call(lambda: encoding.encode_ordinary(TRIAL_TEXT),
                           "a trial text at load, splitting it with its 'pat_str'", str(path))
    return encoding


class NanochatTokenizer(BpeTokenizer):
    """nanochat's RustBPETokenizer at inference: a tiktoken Encoding plus its BOS convention."""

    def __init__(self, encoding, source: str):
        super().__init__(encoding)
        self.source = source
        self.specials = dict(sorted(encoding._special_tokens.items(), key=lambda kv: kv[1]))  # text -> id
        bos = next((t for t in BOS_TOKENS if t in self.specials), None)
        if bos is None:
            raise VisualizerError(f"{source}: the tokenizer has no {BOS_TOKENS[0]} (nor {BOS_TOKENS[1]}) special token")
        self.bos_token, self.bos_id = bos, self.specials[bos]

    def encode(self, text: str) -> Encoded:
        return Encoded([self.bos_id] + self.encoding.encode_ordinary(text))

    def encode_chat(self, user_text: str) -> Encoded:
        missing = [t for t in CHAT_TOKENS if t not in self.specials]
        if missing:
            raise VisualizerError(f"--chat: the tokenizer in {self.source} has no {missing[0]} special token")
        start, end, reply = (self.specials[t] for t in CHAT_TOKENS)
        return Encoded([self.bos_id, start] + self.encoding.encode_ordinary(user_text) + [end, reply])

    def describe(self) -> str:
        return f"nanochat bpe '{self.encoding.name}' ({self.vocab_size} tokens, {len(self.specials)} special)"


def tokenizer_candidates(checkpoint_dir: Path) -> list[Path]:
    """Where nanochat keeps its tokenizer for a checkpoint in <base>/<kind>_checkpoints/<tag>/:
    beside the checkpoint, then up to <base>/tokenizer, then $NANOCHAT_BASE_DIR and ~/.cache/nanochat."""
    here = checkpoint_dir.resolve()
    places = [here / "tokenizer", here.parent / "tokenizer", here.parent.parent / "tokenizer"]
    base = os.environ.get("NANOCHAT_BASE_DIR")
    if base:
        places.append(Path(base) / "tokenizer")
    places.append(Path.home() / ".cache" / "nanochat" / "tokenizer")
    return places


def find_tokenizer(checkpoint_dir: Path, explicit: Path | None) -> Path:
    """The tokenizer.pkl to read: from --tokenizer (a folder or the file), else the first candidate."""
    if explicit is not None:
        explicit = Path(explicit)
        path = explicit / "tokenizer.pkl" if explicit.is_dir() else explicit
        if not path.is_file():
            raise VisualizerError(f"--tokenizer {explicit}: no tokenizer.pkl there")
        return path
    places = tokenizer_candidates(checkpoint_dir)
    for place in places:
        if (place / "tokenizer.pkl").is_file():
            return place / "tokenizer.pkl"
    raise VisualizerError(
        "no nanochat tokenizer.pkl found (looked in " + ", ".join(str(p) for p in places) + "): pass --tokenizer DIR"
    )


def load_tokenizer(checkpoint_dir: Path, explicit: Path | None, vocab_size: int) -> NanochatTokenizer:
    path = find_tokenizer(checkpoint_dir, explicit)
    tokenizer = NanochatTokenizer(read_encoding(path), str(path))
    if tokenizer.vocab_size != vocab_size:
        raise VisualizerError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {vocab_size}"
        )
    return tokenizer
