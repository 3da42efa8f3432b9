"""Linear pieces the adapters hand to the dot-product breakdown, shared by every family:
one attention layer's output split per head (z_h @ W_O[h], the bias its own piece), and the final
norm linearised at one residual vector with its scale frozen (LayerNorm, RMSNorm).

What this module does not do: know where a family keeps these weights (the adapters pass them).
"""

from __future__ import annotations

import torch


def add_attention_pieces(parts: dict[str, torch.Tensor], layer: int, z: torch.Tensor, w_o: torch.Tensor,
                         bias: torch.Tensor | None) -> None:
    """parts['L{layer}.H{h}'] = z[:, h] @ w_o[h] ([T, d_model]) for every head, plus 'L{layer}.attn_bias'.

    z [T, n_head, d_head] (hook_z); w_o [n_head, d_head, d_model]; bias [d_model] or None."""
    per_head = torch.einsum("thd,hdm->htm", z, w_o)  # [n_head, T, d_model]
    for head in range(per_head.shape[0]):
        parts[f"L{layer}.H{head}"] = per_head[head]
    if bias is not None:
        parts[f"L{layer}.attn_bias"] = bias.expand(z.shape[0], -1)


def frozen_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float):
    """LayerNorm at x [d_model] as (linear, constant): centring is linear, 1/sigma(x) is frozen."""
    x = x.to("cpu", torch.float32)
    sigma = torch.sqrt(x.var(dim=-1, unbiased=False) + eps)

    def linear(piece: torch.Tensor) -> torch.Tensor:
        return (piece - piece.mean(dim=-1, keepdim=True)) / sigma * weight

    return linear, bias if bias is not None else torch.zeros_like(weight)


def frozen_rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float):
    """RMSNorm at x [d_model] as (linear, zero constant): 1/rms(x) frozen; weight None means none."""
    x = x.to("cpu", torch.float32)
    rms = torch.sqrt(x.pow(2).mean(dim=-1) + eps)
    scale = weight if weight is not None else torch.ones(x.shape[-1])

    def linear(piece: torch.Tensor) -> torch.Tensor:
        return piece / rms * scale

    return linear, torch.zeros_like(scale)
