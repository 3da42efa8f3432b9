"""A nanoGPT checkpoint with a known circuit, trained here in seconds: 2 layers, 2 heads, 32 wide,
on sequences A A (A: 8 distinct letters of 'a'..'p'), so that from position 8 on the next token is
the one 7 positions back. The model learns it with a copying head: the query at the last
position attends to the position whose token comes next in A and moves that token to the output.

`make_copy_model(dir)` writes dir/ckpt.pt and dir/meta.pkl (nanoGPT's formats). `copy_probes()`
gives a clean probe (A A[:7], answer A[7]) and a corrupt one with A[7] changed in the first half
only (answer: the new letter); the two differ at position 7 alone.

What this module does not do: test anything (tests/test_patching.py does).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch.nn import functional as F

from visualizer.model.nanogpt.model import GPT, GPTConfig

VOCAB = [chr(ord("a") + i) for i in range(16)]
HALF = 8
STEPS = 250
SEQUENCE = "dkagpbmc"  # A for the probes
REPLACEMENT = "o"  # A[7] in the corrupt probe's first half


def copy_probes() -> tuple[str, str]:
    clean = SEQUENCE + SEQUENCE[:HALF - 1]
    corrupt = SEQUENCE[:HALF - 1] + REPLACEMENT + SEQUENCE[:HALF - 1]
    return clean, corrupt


def train(steps: int = STEPS, seed: int = 0) -> GPT:
    config = GPTConfig(block_size=2 * HALF, vocab_size=len(VOCAB), n_layer=2, n_head=2, n_embd=32, bias=True)
    model = GPT(config)
    model.init_weights(torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    data = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        first = torch.stack([torch.randperm(len(VOCAB), generator=data)[:HALF] for _ in range(32)])  # [32, 8]
        x = torch.cat([first, first], 1)  # [32, 16]
        logits, _ = model(x[:, :-1])
        # only the copied half can be predicted
        loss = F.cross_entropy(logits[:, HALF - 1:].reshape(-1, len(VOCAB)), x[:, HALF:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def make_copy_model(folder: Path) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = train()
    args = dict(n_layer=2, n_head=2, n_embd=32, block_size=2 * HALF, bias=True, vocab_size=len(VOCAB), dropout=0.0)
    torch.save({"model": model.state_dict(), "model_args": args, "iter_num": STEPS}, folder / "ckpt.pt")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(VOCAB), "itos": dict(enumerate(VOCAB)), "stoi": {c: i for i, c in enumerate(VOCAB)}}, f)
    return folder / "ckpt.pt", folder / "meta.pkl"
