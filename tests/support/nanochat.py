"""Build random-weight checkpoints in nanochat's on-disk layout, for the test-suite.

`make_nanochat(base, ...)` writes what nanochat writes under its base folder:
  base/base_checkpoints/<tag>/model_NNNNNN.pt   the state dict (original: embedding in bfloat16)
  base/base_checkpoints/<tag>/meta_NNNNNN.json  {"step", "val_bpb", "model_config": {...}}
  base/tokenizer/tokenizer.pkl                  a pickled tiktoken Encoding with nanochat's specials
and returns the tag folder. The weights come from `GPT.init_random`: nothing is zero, lambdas are
off their neutral values, so a loader that dropped or misplaced any of them would show.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import tiktoken
import torch

from visualizer.model.nanochat.model import GPT, NanochatConfig

SPECIALS = (
    "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
    "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>",
)
MERGES = (b"th", b"he", b"the", b" t", b" the", b"in", b"er", b"an", b" a", b"ou", b"on", b"re")
SPLIT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""


def make_encoding() -> tiktoken.Encoding:
    """A byte-level BPE as nanochat builds one: 256 bytes, a few merges, then the 9 specials."""
    ranks = {bytes([b]): b for b in range(256)}
    for token in MERGES:
        ranks[token] = len(ranks)
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIALS)}
    return tiktoken.Encoding(name="rustbpe", pat_str=SPLIT, mergeable_ranks=ranks, special_tokens=specials)


VOCAB_SIZE = 256 + len(MERGES) + len(SPECIALS)  # 277: not a multiple of 64, so padding shows


def make_nanochat(
    base: Path,
    architecture: str = "current",
    n_layer: int = 3,
    n_head: int = 4,
    n_kv_head: int = 2,
    n_embd: int = 32,
    sequence_len: int = 256,
    window_pattern: str | None = "SL",
    steps: tuple[int, ...] = (20,),
    tag: str = "d3",
    kind: str = "base",
    compiled: bool = False,
    padded: bool | None = None,
    seed: int = 0,
    tokenizer: bool = True,
) -> Path:
    config = dict(sequence_len=sequence_len, vocab_size=VOCAB_SIZE, n_layer=n_layer, n_head=n_head,
                  n_kv_head=n_kv_head, n_embd=n_embd)
    if architecture == "current" and window_pattern is not None:
        config["window_pattern"] = window_pattern
    folder = Path(base) / f"{kind}_checkpoints" / tag
    folder.mkdir(parents=True, exist_ok=True)
    for offset, step in enumerate(steps):
        rows = None if padded is None else (-(-VOCAB_SIZE // 64) * 64 if padded else VOCAB_SIZE)
        model = GPT(NanochatConfig(**config, architecture=architecture, padded_vocab_size=rows))
        model.init_random(torch.Generator().manual_seed(seed + offset))
        state = model.state_dict()
        if architecture == "original":  # nanochat's first release kept the embedding in bfloat16
            state["transformer.wte.weight"] = state["transformer.wte.weight"].bfloat16()
        if compiled:
            state = {f"_orig_mod.{k}": v for k, v in state.items()}
        torch.save(state, folder / f"model_{step:06d}.pt")
        meta = {"step": step, "val_bpb": 3.5, "model_config": config}
        (folder / f"meta_{step:06d}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    if tokenizer:
        (Path(base) / "tokenizer").mkdir(exist_ok=True)
        with open(Path(base) / "tokenizer" / "tokenizer.pkl", "wb") as f:
            pickle.dump(make_encoding(), f)
    return folder


def rewrite_state(model_file: Path, change) -> None:
    """Load a written state dict, let `change(state)` edit it in place, save it back."""
    state = torch.load(model_file, weights_only=True)
    change(state)
    torch.save(state, model_file)


def rewrite_meta(meta_file: Path, change) -> None:
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    change(meta)
    meta_file.write_text(json.dumps(meta), encoding="utf-8")
