"""Tiny random nanoGPT checkpoints for the store, analysis, attribution and compare tests.

Uses the suite's `tests/factories.make_checkpoint` when it is there; otherwise builds the same
kind of checkpoint (nanoGPT's on-disk format, seeded weights) with the signature subset we use.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

try:
    from tests.factories import make_checkpoint
except ImportError:  # the shared factory lands from another branch
    from visualizer.model.nanogpt.model import GPT, GPTConfig

    def make_checkpoint(dir, *, n_layer=2, n_head=2, n_embd=32, block_size=16, bias=False, vocab=None,
                        seed=0, **_ignored):
        vocab = list(vocab or sorted(set("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCD")))
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, bias=bias,
                    vocab_size=len(vocab), dropout=0.0)
        model = GPT(GPTConfig(**args))
        model.init_weights(torch.Generator().manual_seed(seed))
        torch.save({"model": model.state_dict(), "model_args": args, "iter_num": 100, "best_val_loss": 3.25,
                    "config": {"dataset": "testset"}}, dir / "ckpt.pt")
        with open(dir / "meta.pkl", "wb") as f:
            pickle.dump({"vocab_size": len(vocab), "itos": dict(enumerate(vocab)),
                         "stoi": {t: i for i, t in enumerate(vocab)}}, f)
        return dir / "ckpt.pt", dir / "meta.pkl"

__all__ = ["make_checkpoint"]
