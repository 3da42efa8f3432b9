"""nanoGPT's module tree, rebuilt in torch with the same parameter names.

A state dict written by nanoGPT's `train.py` loads into `GPT` with `strict=True`. The operations
are nanoGPT's own (LayerNorm with optional bias, fused c_attn, causal scaled-dot-product attention,
tanh-free GELU, tied lm_head), so activations captured here equal what nanoGPT computes.

What this module does not do: training, dropout at inference, `from_pretrained`, optimizer setup.
The forward returns logits at every position (nanoGPT only computes the last one at inference),
because the report shows every position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest context the position table covers
    vocab_size: int = 50304  # rows of the token embedding (and of lm_head, tied)
    n_layer: int = 12  # transformer blocks
    n_head: int = 12  # attention heads per block; n_embd must divide by it
    n_embd: int = 768  # width of the residual stream (d_model)
    dropout: float = 0.0  # kept for checkpoint compatibility; inference never drops
    bias: bool = True  # bias in Linear and LayerNorm layers, as GPT-2


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT's, eps 1e-5)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, (
            f"n_embd={config.n_embd} is not a multiple of n_head={config.n_head}"
        )
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # batch, sequence length, n_embd
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # x here is resid_mid
        x = x + self.mlp(self.ln_2(x))  # x here is resid_post
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied, as nanoGPT

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """nanoGPT's initialisation (normal 0.02, scaled c_proj); used by training and tests."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            else:
                std = 0.02 / math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj.weight") else 0.02
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=generator) * std)

    def num_params(self) -> int:
        """Parameter count as nanoGPT reports it: tied weights once, position table excluded."""
        return sum(p.numel() for p in self.parameters()) - self.transformer.wpe.weight.numel()

    def forward_from_embeddings(self, tok_emb: torch.Tensor, positions: list[int] | None = None) -> torch.Tensor:
        """The rest of the forward after the token embedding: (B, T, C) wte output -> logits
        (B, T, vocab), or (B, len(positions), vocab) for the chosen positions only. Attribution
        differentiates through it; `forward` uses it, so both are one computation."""
        t = tok_emb.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=tok_emb.device)  # (T,)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        if positions is not None:
            x = x[:, positions, :]  # (B, P, C): skip the unembedding elsewhere
        x = self.transformer.ln_f(x)
        return self.lm_head(x)  # (B, T or P, vocab)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        b, t = idx.size()  # (B, T) token ids
        assert t <= self.config.block_size, (
            f"sequence of length {t} is longer than block_size {self.config.block_size}"
        )
        logits = self.forward_from_embeddings(self.transformer.wte(idx))  # (B, T, vocab): every position
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss
