"""Tokenizers behind one small interface: nanoGPT's character level, word-level vocabularies, BPE.

Every tokenizer turns a probe into ids (or raises a VisualizerError naming the character or word
and its position) and gives back the string of each id. `readable` makes any token string safe to
look at: whitespace and control characters become visible symbols. HTML escaping is not done here;
the templates do it.

What this module does not do: train tokenizers, or download vocabulary files.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from visualizer.errors import VisualizerError

UNK_TOKENS = ("<unk>", "<UNK>", "[UNK]", "<|unk|>")

_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍", "\x0b": "␋", "\x0c": "␌", "\x7f": "␡"}


def readable(token: str) -> str:
    """The token with whitespace and control characters shown as symbols ('' shows as '∅')."""
    if token == "":
        return "∅"
    out = []
    for ch in token:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 0x20:
            out.append(chr(0x2400 + ord(ch)))  # Unicode control pictures
        elif ch in "\u2028\u2029\u0085\u00a0\u200b\ufeff":
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    return "".join(out)


def describe_char(ch: str) -> str:
    """A character named so that it can be read in a one-line error: repr plus code point."""
    return f"{ch!r} (U+{ord(ch):04X})"


@dataclass
class Encoded:
    ids: list[int]
    warnings: list[str] = field(default_factory=list)


class Tokenizer:
    """The interface: `kind`, `vocab_size`, `encode`, `token_str`, `decode`; `bos_id` and
    `special_ids` name the tokens a model treats as markers rather than text (none by default)."""

    kind = "abstract"
    vocab_size = 0
    bos_id: int | None = None
    special_ids: frozenset[int] = frozenset()

    def encode(self, text: str) -> Encoded:
        raise NotImplementedError

    def token_str(self, token_id: int) -> str:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        return "".join(self.token_str(i) for i in ids)

    def describe(self) -> str:
        return f"{self.kind} ({self.vocab_size} tokens)"


class CharTokenizer(Tokenizer):
    """nanoGPT's shakespeare_char scheme: one id per character, from meta.pkl's stoi/itos."""

    kind = "char"

    def __init__(self, stoi: dict[str, int], itos: dict[int, str]):
        self.stoi, self.itos = stoi, itos
        self.vocab_size = len(itos)

    def encode(self, text: str) -> Encoded:
        ids = []
        for pos, ch in enumerate(text):
            if ch not in self.stoi:
                hint = " (a literal backslash: pass a real newline with $'...' quoting or --probe-file)" if ch == "\\" else ""
                raise VisualizerError(
                    f"probe character {describe_char(ch)} at position {pos} is not in the vocabulary{hint}"
                )
            ids.append(self.stoi[ch])
        return Encoded(ids)

    def token_str(self, token_id: int) -> str:
        return self.itos.get(token_id, f"<id {token_id}>")


class WordTokenizer(Tokenizer):
    """A vocabulary whose keys are words and punctuation (some keys longer than one character).

    The probe is read left to right: at each point the longest vocabulary key that ends on a word
    or punctuation boundary is taken; whitespace the vocabulary lacks separates words; a word the
    vocabulary lacks becomes `<unk>` (with a warning) when the vocabulary has one, else an error.
    """

    kind = "word"
    _ATOMS = re.compile(r"\w+|\s|[^\w\s]")

    def __init__(self, stoi: dict[str, int], itos: dict[int, str]):
        self.stoi, self.itos = stoi, itos
        self.vocab_size = len(itos)
        self.max_key = max(len(k) for k in stoi)
        self.unk = next((u for u in UNK_TOKENS if u in stoi), None)
        self.lowercase_only = not any(k != k.lower() for k in stoi if k not in UNK_TOKENS)

    def encode(self, text: str) -> Encoded:
        warnings = []
        if self.lowercase_only and text != text.lower():
            warnings.append("the vocabulary is lower-case: the probe was lower-cased")
            text = text.lower()
        atoms = [(m.start(), m.end()) for m in self._ATOMS.finditer(text)]
        bounds = sorted({e for _, e in atoms})
        atom_end = {s: e for s, e in atoms}
        ids, unknown, i = [], [], 0
        while i < len(text):
            # ends of the candidates, longest first, limited to the longest key in the vocabulary
            ends = bounds[bisect.bisect_right(bounds, i) : bisect.bisect_right(bounds, i + self.max_key)]
            match = next((e for e in reversed(ends) if text[i:e] in self.stoi), None)
            if match is not None:
                ids.append(self.stoi[text[i:match]])
                i = match
                continue
            end = atom_end[i]
            piece = text[i:end]
            if not piece.isspace():
                if self.unk is None:
                    raise VisualizerError(
                        f"probe word {piece!r} at position {i} is not in the vocabulary (and it has no <unk>)"
                    )
                ids.append(self.stoi[self.unk])
                unknown.append(f"{piece!r}@{i}")
            i = end
        if unknown:
            warnings.append(f"not in the vocabulary, encoded as {self.unk}: " + ", ".join(unknown))
        if not ids:
            raise VisualizerError("the probe has no tokens (only whitespace the vocabulary lacks)")
        return Encoded(ids, warnings)

    def token_str(self, token_id: int) -> str:
        return self.itos.get(token_id, f"<id {token_id}>")

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.token_str(i) for i in ids)


class BpeTokenizer(Tokenizer):
    """Byte-level BPE through a tiktoken Encoding (GPT-2's, or one a family supplies)."""

    kind = "bpe"

    def __init__(self, encoding, allowed_special: frozenset[str] = frozenset()):
        self.encoding = encoding
        self.allowed_special = allowed_special
        self.vocab_size = encoding.n_vocab

    def encode(self, text: str) -> Encoded:
        return Encoded(self.encoding.encode(text, allowed_special=set(self.allowed_special), disallowed_special=()))

    def token_str(self, token_id: int) -> str:
        try:
            raw = self.encoding.decode_single_token_bytes(token_id)
        except KeyError:
            return f"<id {token_id}>"
        # a token may hold part of a multi-byte character: show its bytes rather than lose them
        return raw.decode("utf-8", errors="backslashreplace")

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(ids, errors="replace")

    def describe(self) -> str:
        return f"bpe {self.encoding.name} ({self.vocab_size} tokens)"


GPT2_FILES = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


def _tiktoken_cache_dir() -> str:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache"
    )


def gpt2_bpe_offline() -> BpeTokenizer:
    """GPT-2's BPE from files already on this machine; never downloads.

    Looked for: `GPT2_BPE_DIR` (a folder holding vocab.bpe and encoder.json), then tiktoken's cache.
    """
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    local = os.environ.get("GPT2_BPE_DIR")
    if local:
        paths = {name: Path(local) / name for name in GPT2_FILES}
    else:
        cache = _tiktoken_cache_dir()
        paths = {name: Path(cache) / hashlib.sha1(url.encode()).hexdigest() for name, url in GPT2_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        raise VisualizerError(
            "no meta.pkl found and GPT-2 BPE files are not available offline: pass --meta PATH "
            "(or NANOGPT_META_PATH in .env), or set GPT2_BPE_DIR to a folder holding GPT-2's "
            "vocab.bpe and encoder.json"
        )
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(paths["vocab.bpe"]), str(paths["encoder.json"]))
    except Exception as e:
        raise VisualizerError(f"GPT-2 BPE files in {paths['vocab.bpe'].parent} are unreadable: {e}") from None
    encoding = tiktoken.Encoding(
        name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )
    return BpeTokenizer(encoding, allowed_special=frozenset({"<|endoftext|>"}))


def from_meta(meta: object, source: str) -> Tokenizer:
    """A tokenizer from nanoGPT's meta.pkl contents: {'vocab_size', 'stoi', 'itos'}."""
    if not isinstance(meta, dict):
        raise VisualizerError(f"{source}: expected a dict with 'stoi' and 'itos', found {type(meta).__name__}")
    stoi, itos = meta.get("stoi"), meta.get("itos")
    if stoi is None and itos is None:
        raise VisualizerError(f"{source}: missing key 'stoi' (and 'itos')")
    if stoi is None:
        stoi = {s: i for i, s in dict(itos).items()} if isinstance(itos, dict) else {s: i for i, s in enumerate(itos)}
    if itos is None:
        itos = {i: s for s, i in stoi.items()}
    if isinstance(itos, (list, tuple)):
        itos = dict(enumerate(itos))
    if not isinstance(stoi, dict) or not isinstance(itos, dict):
        raise VisualizerError(f"{source}: 'stoi' and 'itos' must be dicts")
    for key, value in stoi.items():
        if not isinstance(key, str) or not isinstance(value, int) or isinstance(value, bool):
            raise VisualizerError(f"{source}: key 'stoi' has a non str->int entry {key!r}: {value!r}")
        if key == "":
            raise VisualizerError(f"{source}: key 'stoi' has an empty-string token")
    for key, value in itos.items():
        if not isinstance(key, int) or isinstance(key, bool) or not isinstance(value, str):
            raise VisualizerError(f"{source}: key 'itos' has a non int->str entry {key!r}: {value!r}")
        if key < 0:
            raise VisualizerError(f"{source}: key 'itos' has a negative token id {key}")
    # the page shows itos, the model reads stoi: they must describe one vocabulary
    for token, token_id in sorted(stoi.items(), key=lambda kv: kv[1]):
        if itos.get(token_id) != token:
            found = f"itos[{token_id}] is {itos[token_id]!r}" if token_id in itos else f"itos has no id {token_id}"
            raise VisualizerError(f"{source}: 'stoi' and 'itos' disagree: stoi[{token!r}] is {token_id} but {found}")
    if len(stoi) != len(itos):
        missing = sorted(set(itos) - set(stoi.values()))[0]
        raise VisualizerError(f"{source}: 'stoi' and 'itos' disagree: itos[{missing}] = {itos[missing]!r} is not in stoi")
    if all(len(k) == 1 for k in stoi):
        return CharTokenizer(stoi, itos)
    return WordTokenizer(stoi, itos)
