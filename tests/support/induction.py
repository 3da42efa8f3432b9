"""A 2-layer nanoGPT-format checkpoint whose second layer has learned induction heads, for the
head-type tests: seeded, trained on the CPU in a few seconds.

Layer 0's first head is set by hand and frozen: positions are sinusoids in dimensions of their own
(the token embedding lives in others), its keys are the positions rotated one step back, so it
reads the previous position, and it copies that token into a third set of dimensions. Its second
head is zero. Everything else (token embedding, norms, layer 1) is trained with AdamW on random
token runs repeated once at a random place in noise, the loss on the second copy only: the way to
predict there is to attend from a token to the token after its earlier occurrence (query: this
token; key: the previous token layer 0 wrote; value: the token), an induction head. The MLPs are
zero (an attention-only model in nanoGPT's format).

End-to-end training of both layers from nanoGPT's initialisation sat on the known plateau before
induction heads form for thousands of steps (minutes on this machine), or found positional
shortcuts; the hand-set first piece leaves the second, the induction head, to training.

What this module does not do: test anything (tests/test_head_types.py does).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
from torch.nn import functional as F

from visualizer.model.nanogpt.model import GPT, GPTConfig

VOCAB = [chr(ord("a") + i) for i in range(24)]
CONTEXT, D_MODEL, HEADS = 32, 96, 2
TOKEN, POSITION, PREVIOUS = slice(0, 32), slice(32, 64), slice(64, 96)  # the residual stream's three parts
STEPS, LR, BATCH = 120, 2e-2, 32


def previous_token_layer(model: GPT, generator: torch.Generator) -> None:
    """Token embedding in TOKEN, sinusoidal positions in POSITION, layer 0 head 0 a previous-token head
    copying the token into PREVIOUS, head 1 zero; the position table and layer 0's attention frozen."""
    V, T = len(VOCAB), CONTEXT
    with torch.no_grad():
        wte = model.transformer.wte.weight  # [V, D]
        wte.zero_()
        wte[:, TOKEN] = torch.randn(V, 32, generator=generator) / math.sqrt(32)
        omega = math.pi * torch.arange(1, 17, dtype=torch.float32) / 16  # [16] frequencies
        angle = torch.arange(T, dtype=torch.float32)[:, None] * omega[None]  # [T, 16]
        wpe = torch.zeros(T, D_MODEL)
        wpe[:, 32:64:2], wpe[:, 33:64:2] = torch.cos(angle) / 4, torch.sin(angle) / 4
        model.transformer.wpe.weight.copy_(wpe)
        rotate = torch.zeros(32, 32)  # pos[j] -> pos[j + 1], pair by pair
        for i, w in enumerate(omega.tolist()):
            rotate[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]])
        attn = model.transformer.h[0].attn
        w_q, w_k, w_v = attn.c_attn.weight.split(D_MODEL)  # each [D, D]: rows are head 0's 48 dims, then head 1's
        for w in (w_q, w_k, w_v):
            w.zero_()
        w_q[:32, POSITION] = 1.2 * torch.eye(32)
        w_k[:32, POSITION] = 1.2 * rotate
        w_v[:32, TOKEN] = torch.eye(32)
        attn.c_proj.weight.zero_()
        attn.c_proj.weight[PREVIOUS, :32] = torch.eye(32)
    model.transformer.wpe.weight.requires_grad_(False)
    for p in attn.parameters():
        p.requires_grad_(False)


def repeated_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x [B, T]: noise with a random run of 3..T/2 tokens repeated right after itself at a random
    place; mask [B, T-1]: the positions whose next token is in the second copy."""
    B, T, V = BATCH, CONTEXT, len(VOCAB)
    t = torch.arange(T)
    length = torch.randint(3, T // 2 + 1, (B, 1), generator=generator)
    start = (torch.rand(B, 1, generator=generator) * (T - 2 * length + 1)).long()
    noise, run = torch.randint(0, V, (B, T), generator=generator), torch.randint(0, V, (B, T), generator=generator)
    offset = t[None] - start
    first, second = (offset >= 0) & (offset < length), (offset >= length) & (offset < 2 * length)
    x = torch.where(first | second, run.gather(1, torch.where(second, offset - length, offset).clamp(0, T - 1)), noise)
    return x, second[:, 1:]


def train_induction_model(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """folder/ckpt.pt and folder/meta.pkl of the trained model (see the module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny operations: threads only contend (5x slower on a busy machine)
    try:
        return _train(Path(folder), seed)
    finally:
        torch.set_num_threads(threads)


def _train(folder: Path, seed: int) -> tuple[Path, Path]:
    args = dict(n_layer=2, n_head=HEADS, n_embd=D_MODEL, block_size=CONTEXT, bias=False, vocab_size=len(VOCAB), dropout=0.0)
    model = GPT(GPTConfig(**args))
    generator = torch.Generator().manual_seed(seed)
    model.init_weights(generator)
    for block in model.transformer.h:
        torch.nn.init.zeros_(block.mlp.c_proj.weight)
    previous_token_layer(model, generator)
    params = [p for name, p in model.named_parameters() if p.requires_grad and ".mlp." not in name]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    for _ in range(STEPS):
        x, mask = repeated_batch(generator)
        logits, _ = model(x[:, :-1])  # [B, T-1, V]
        loss = F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="none")
        loss = (loss * mask.flatten()).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "model_args": args, "iter_num": STEPS}, folder / "ckpt.pt")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(VOCAB), "itos": dict(enumerate(VOCAB)), "stoi": {c: i for i, c in enumerate(VOCAB)}}, f)
    return folder / "ckpt.pt", folder / "meta.pkl"
