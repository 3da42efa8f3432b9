"""Pure tensor functions over a capture: summaries and next-token tables. No I/O, no HTML.

What this module does not do: plotting (plots.py), deciding layout (site.py).
"""

from __future__ import annotations

import math

import torch

from .tokenizer import Tokenizer, readable


def tensor_stats(t: torch.Tensor) -> dict:
    """Shape and summary statistics over the finite entries (masked scores are -inf)."""
    finite = t[torch.isfinite(t)].double()
    stats = {"shape": list(t.shape), "numel": t.numel(), "finite": finite.numel()}
    if finite.numel():
        stats.update(
            mean=finite.mean().item(),
            std=finite.std(unbiased=False).item(),
            min=finite.min().item(),
            max=finite.max().item(),
            rms=finite.square().mean().sqrt().item(),
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


# where each capture name sits inside a block, in the order the block computes it
BLOCK_ORDER = (
    "hook_resid_pre", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
    "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
)
TOP_ORDER = ("hook_embed", "hook_pos_embed")
FINAL_ORDER = ("hook_resid_final", "ln_final.hook_normalized", "logits")


def capture_order(names: list[str]) -> list[str]:
    """A canonical model order for capture names when the run's own order is not known (traces
    written before trace.json kept `tensor_order`): names outside the blocks and not known to come
    after them first (embeddings first), then each block as it computes, then the final names.
    Names not known here go last within their part, alphabetically."""

    def key(name: str):
        parts = name.split(".", 2)
        if parts[0] == "blocks" and len(parts) == 3 and parts[1].isdigit():
            rest = parts[2]
            return (1, int(parts[1]), BLOCK_ORDER.index(rest) if rest in BLOCK_ORDER else len(BLOCK_ORDER), rest)
        if name in FINAL_ORDER:
            return (2, 0, FINAL_ORDER.index(name), name)
        return (0, 0, TOP_ORDER.index(name) if name in TOP_ORDER else len(TOP_ORDER), name)

    return sorted(names, key=key)


def layer_names(names: list[str], layer: int) -> list[str]:
    prefix = f"blocks.{layer}."
    return [n for n in names if n.startswith(prefix)]


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {name: tensor_stats(t) for name, t in tensors.items()}
