"""A Hugging Face tokenizer behind the project's `Tokenizer` interface, with readable token text.

Ids are exactly what the model's own tokenizer gives for a probe (`tokenizer(text)["input_ids"]`,
special tokens added as it adds them: Llama's tokenizers prepend BOS, GPT-2's add nothing).

`token_str(id)` is the text one token stands for, decoded on its own as the tokenizer's decoder
would decode it, minus the steps that only make sense for a whole sequence (Llama's "strip the
first space"): byte-level markers become bytes (`Ġ` -> " ", `Ċ` -> "\\n"), the metaspace `▁`
becomes " ", byte-fallback tokens `<0x0A>` become their byte. Bytes that are only part of a UTF-8
character are kept as `\\xNN` rather than lost. Special tokens show their role: `[BOS]`, `[EOS]`,
`[PAD]`, `[UNK]` (when one token plays several roles, the first of that list); other special
tokens show their own text (`<|im_start|>`).

What this module does not do: download tokenizer files (the caller passes a local folder), or make
token text safe for HTML (the templates escape; `tokenizer.readable` shows whitespace).
"""

from __future__ import annotations

import json
import re

from visualizer.errors import VisualizerError
from visualizer.model.tokenizer import Encoded, Tokenizer

BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
ROLES = (("bos_token_id", "[BOS]"), ("eos_token_id", "[EOS]"), ("pad_token_id", "[PAD]"), ("unk_token_id", "[UNK]"))


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte (the ByteLevel pre-tokenizer's map), inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


BYTE_LEVEL = byte_level_alphabet()


def decoder_steps(hf_tokenizer) -> list[dict]:
    """The backend decoder as a flat list of steps ({'type': ...}), [] when there is no backend."""
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None) if backend is not None else None
    if decoder is None:
        return []
    state = json.loads(decoder.__getstate__())
    steps, todo = [], [state]
    while todo:
        step = todo.pop(0)
        if step.get("type") == "Sequence":
            todo = list(step.get("decoders", [])) + todo
        else:
            steps.append(step)
    return steps


def token_bytes(token: str, steps: list[dict]) -> bytes | None:
    """The bytes one token stands for under these decoder steps; None when a step is unknown."""
    types = [s.get("type") for s in steps]
    if "ByteLevel" in types:
        if all(ch in BYTE_LEVEL for ch in token):
            return bytes(BYTE_LEVEL[ch] for ch in token)
        return token.encode("utf-8")  # an added token written in plain text
    if "ByteFallback" in types:
        match = BYTE_TOKEN.fullmatch(token)
        if match:
            return bytes([int(match.group(1), 16)])
    text = token
    for step in steps:
        kind = step.get("type")
        if kind == "Replace":
            pattern = step.get("pattern", {})
            if "String" not in pattern:
                return None  # a regex replacement: let the tokenizer decode
            text = text.replace(pattern["String"], step.get("content", ""))
        elif kind == "Metaspace":
            text = text.replace(step.get("replacement", "▁"), " ")
        elif kind in ("ByteFallback", "Fuse", "Strip"):
            continue  # ByteFallback handled above; Fuse and Strip act on whole sequences
        else:
            return None
    return text.encode("utf-8")


class HFTokenizer(Tokenizer):
    """`transformers.AutoTokenizer` (loaded by the caller) seen through the project's interface."""

    kind = "hf"

    def __init__(self, hf_tokenizer, model_vocab: int):
        self.hf = hf_tokenizer
        self.model_vocab = model_vocab  # rows of the model's embedding: ids must stay below it
        self.vocab_size = len(hf_tokenizer)
        self.steps = decoder_steps(hf_tokenizer)
        self.roles: dict[int, str] = {}
        for attribute, label in reversed(ROLES):  # the first role in ROLES wins
            token_id = getattr(hf_tokenizer, attribute, None)
            if isinstance(token_id, int):
                self.roles[token_id] = label
        self.bos_id = hf_tokenizer.bos_token_id if isinstance(hf_tokenizer.bos_token_id, int) else None
        self.special_ids = frozenset(int(i) for i in hf_tokenizer.all_special_ids)
        self._text: dict[int, str] = {}

    def encode(self, text: str) -> Encoded:
        ids = list(self.hf(text, verbose=False)["input_ids"])  # too long a probe: prepare_probe says so
        too_big = [i for i in ids if not 0 <= i < self.model_vocab]
        if too_big:
            raise VisualizerError(
                f"the tokenizer gave id {too_big[0]} for the probe, outside the model's vocabulary of {self.model_vocab}"
            )
        warnings = []
        unk = getattr(self.hf, "unk_token_id", None)
        if isinstance(unk, int) and unk in ids and unk != self.bos_id:
            warnings.append(f"{ids.count(unk)} probe piece(s) are not in the vocabulary and were encoded as {self.hf.unk_token}")
        return Encoded(ids, warnings)

    def token_str(self, token_id: int) -> str:
        if token_id not in self._text:
            self._text[token_id] = self._token_text(int(token_id))
        return self._text[token_id]

    def _token_text(self, token_id: int) -> str:
        if token_id in self.roles:
            return self.roles[token_id]
        token = self.hf.convert_ids_to_tokens(token_id)
        if token is None:
            return f"<id {token_id}>"
        if token_id in self.special_ids:
            return token
        raw = token_bytes(token, self.steps)
        if raw is None:
            return self.hf.convert_tokens_to_string([token])
        # a token may hold part of a multi-byte character: show its bytes rather than lose them
        return raw.decode("utf-8", errors="backslashreplace")

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def describe(self) -> str:
        return f"hf {type(self.hf).__name__} ({self.vocab_size} tokens)"
