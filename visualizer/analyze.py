"""Pure tensor functions over a capture: summaries and next-token tables. No I/O, no HTML.

What this module does not do: plotting (plots.py), deciding layout (site.py).
"""

from __future__ import annotations

import math

import torch

from .tokenizer import Tokenizer, readable


def tensor_stats(t: torch.Tensor) -> dict:
    """Shape and summary statistics over the finite entries (masked scores are -inf).

    Sums accumulate in float64 without copying the tensor to float64 (attention scores of a long
    probe are hundreds of MB)."""
    t = t.float()
    finite = t if bool(torch.isfinite(t).all()) else t[torch.isfinite(t)]
    n = finite.numel()
    stats = {"shape": list(t.shape), "numel": t.numel(), "finite": n}
    if n:
        mean = finite.sum(dtype=torch.float64).item() / n
        mean_square = finite.square().sum(dtype=torch.float64).item() / n
        stats.update(
            mean=mean,
            std=math.sqrt(max(mean_square - mean * mean, 0.0)),
            min=finite.min().item(),
            max=finite.max().item(),
            rms=math.sqrt(mean_square),
        )
    return stats


def top_tokens(logits: torch.Tensor, tokenizer: Tokenizer, k: int) -> list[dict]:
    """The k most likely next tokens for one position's logits [vocab]."""
    logits = logits.double()
    probs = torch.softmax(logits, dim=-1)
    values, ids = probs.topk(min(k, probs.numel()))
    return [
        {
            "id": int(i),
            "token": tokenizer.token_str(int(i)),
            "readable": readable(tokenizer.token_str(int(i))),
            "prob": float(p),
            "logit": float(logits[i]),
        }
        for p, i in zip(values.tolist(), ids.tolist())
    ]


def entropy_bits(logits: torch.Tensor) -> float:
    logp = torch.log_softmax(logits.double(), dim=-1)
    return float(-(logp.exp() * logp).sum() / math.log(2))


def layer_names(names: list[str], layer: int) -> list[str]:
    prefix = f"blocks.{layer}."
    return [n for n in names if n.startswith(prefix)]


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {name: tensor_stats(t) for name, t in tensors.items()}
