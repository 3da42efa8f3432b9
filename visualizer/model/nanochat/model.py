"""nanochat's module tree, rebuilt in torch with the same parameter names, for both architectures.

A state dict written by nanochat loads into `GPT` with `strict=True`:
- "original" (nanochat's first release, 3a5e0bc, and every commit up to 2c4473d): token embedding,
  RMS norm without weights (also right after the embedding), rotary positions (base 10000, tables
  rounded to bfloat16 as nanochat kept them), QK norm, grouped-query attention, ReLU^2 MLP, untied
  lm_head, logits capped at 15*tanh(x/15). From f1bf69d the vocabulary rows may be padded.
- "current" (a825e63 .. 92d63d4): the same plus value embeddings mixed into v through a per-head
  gate, smear (the previous token's normalised embedding mixed in), per-layer residual and x0
  lambdas, backout (a mid-layer residual subtracted before the final norm), q and k scaled by 1.2
  after QK norm, rotary base 100000, per-layer sliding windows, vocabulary padded to 64.

Everything runs in float32 (nanochat's CPU compute dtype). Modules without parameters are ours:
weightless norms and identity `HookPoint`s give capture a module to hook where nanochat computes
inside a function; `attend` is the attention call itself, so its arguments are exactly the q, k, v
that enter the kernel. None of them adds a key to the state dict.

What this module does not do: read files (nanochat.py), training, KV-cache inference, dropout.
The forward returns logits at every position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

ARCHITECTURES = ("original", "current")
SOFTCAP = 15.0  # nanochat: logits = 15 * tanh(raw / 15), hard-coded in its forward
VALUE_GATE_CHANNELS = 12  # the value-embedding gate reads the first 12 channels of the block input
SMEAR_GATE_CHANNELS = 24  # the smear gate reads the first 24 channels of the normalised embedding
PAD_VOCAB_TO = 64


@dataclass
class NanochatConfig:
    sequence_len: int  # context the model was trained on; sliding windows derive from it
    vocab_size: int  # tokens the tokenizer has; logits are sliced to this many
    n_layer: int  # transformer blocks
    n_head: int  # query heads; n_embd must divide by it, d_head = n_embd // n_head
    n_kv_head: int  # key/value heads (grouped-query attention); n_head must divide by it
    n_embd: int  # width of the residual stream
    architecture: str = "current"  # "original" or "current", see the module docstring
    window_pattern: str | None = None  # current only: "S"/"L" tiled over layers, last layer always L
    padded_vocab_size: int | None = None  # rows of wte and lm_head; None: vocab_size (current: padded to 64)

    def __post_init__(self):
        assert self.architecture in ARCHITECTURES, f"architecture must be one of {ARCHITECTURES}"
        assert self.n_embd % self.n_head == 0, f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}"
        assert self.n_head % self.n_kv_head == 0, f"n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}"
        assert self.head_dim % 2 == 0, f"head dimension {self.head_dim} must be even for rotary embeddings"
        if self.padded_vocab_size is None:
            self.padded_vocab_size = padded_vocab(self.vocab_size) if self.current else self.vocab_size
        assert self.padded_vocab_size >= self.vocab_size, "padded vocabulary is smaller than the vocabulary"
        if self.current and self.window_pattern is None:
            self.window_pattern = "L"  # what nanochat assumes for a config without one
        assert self.window_pattern is None or (
            self.window_pattern and all(c in "SL" for c in self.window_pattern.upper())
        ), f"window_pattern must be letters S and L, not {self.window_pattern!r}"

    @property
    def current(self) -> bool:
        return self.architecture == "current"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def rotary_base(self) -> float:
        return 100000.0 if self.current else 10000.0

    @property
    def qk_scale(self) -> float:
        return 1.2 if self.current else 1.0

    @property
    def backout_layer(self) -> int | None:
        """The block whose output backout subtracts (current only)."""
        return self.n_layer // 2 if self.current else None

    def value_embedding_layers(self) -> list[int]:
        """Layers with a value embedding (current): alternate layers, the last one always included."""
        if not self.current:
            return []
        return [i for i in range(self.n_layer) if i % 2 == (self.n_layer - 1) % 2]

    def windows(self) -> list[int]:
        """Left window per layer: a query at i sees keys j with 0 <= i - j <= window; -1: no limit."""
        if not self.current:
            return [-1] * self.n_layer
        long = self.sequence_len
        short = -(-long // 4 // 128) * 128  # a quarter of the context, rounded up to 128 (FA3 tiles)
        pattern = self.window_pattern.upper()
        sizes = [long if pattern[i % len(pattern)] == "L" else short for i in range(self.n_layer)]
        sizes[-1] = long
        return sizes


def padded_vocab(vocab_size: int) -> int:
    return -(-vocab_size // PAD_VOCAB_TO) * PAD_VOCAB_TO


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    """nanochat's norm: RMS over the last dimension, no weights, eps = float32's machine epsilon."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(length: int, head_dim: int, base: float, bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [length, head_dim // 2] as nanochat precomputes them (rounded through bf16 if it did)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # [D/2]
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)  # [T, D/2]
    cos, sin = angles.cos(), angles.sin()
    if bf16:
        cos, sin = cos.bfloat16().float(), sin.bfloat16().float()
    return cos, sin


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, T, H, D] rotated pairwise: (first half, second half) of each head by the position's angle."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]  # [1, T, 1, D/2]
    return torch.cat([x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos], dim=-1)


def attention_allowed(T: int, window: int, device=None) -> torch.Tensor:
    """[query, key] bool: causal, and within `window` keys back when window >= 0."""
    i = torch.arange(T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    allowed = j <= i
    if window >= 0:
        allowed = allowed & (i - j <= window)
    return allowed


class HookPoint(nn.Identity):
    """Passes its input through unchanged; exists so capture can hook a tensor by module path."""


class RMSNorm(nn.Module):
    """nanochat's weightless RMS norm as a module (no parameters, nothing in the state dict)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x)


class Attend(nn.Module):
    """The attention call: softmax(q k^T / sqrt(d_head)) v, causal, within the layer's window.

    q [B, T, n_head, D], k and v [B, T, n_kv_head, D] (query head h reads kv head h // group) ->
    [B, T, n_head, D]. Called with positional arguments only, so a pre-hook sees all three.
    """

    def __init__(self, window: int):
        super().__init__()
        self.window = window  # -1: no limit

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        T = q.shape[1]
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, D]
        gqa = q.shape[1] != k.shape[1]
        if self.window < 0 or self.window >= T - 1:  # the window reaches the first token: plain causal
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            mask = attention_allowed(T, self.window, q.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return y.transpose(1, 2)  # [B, T, H, D]


class ValueGate(nn.Linear):
    """nanochat's `ve_gate`: 3 * sigmoid(W x[..., :12]), one gate per kv head, in (0, 3)."""

    def __init__(self, n_kv_head: int):
        super().__init__(VALUE_GATE_CHANNELS, n_kv_head, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, T, n_kv_head]
        return 3 * torch.sigmoid(F.linear(x[..., : self.in_features], self.weight))


class SmearGate(nn.Linear):
    """nanochat's `smear_gate` before its lambda: sigmoid(W x[..., :24]), one number per position."""

    def __init__(self):
        super().__init__(SMEAR_GATE_CHANNELS, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C] -> [B, T, 1]
        return torch.sigmoid(F.linear(x[..., : self.in_features], self.weight))


class CausalSelfAttention(nn.Module):
    def __init__(self, config: NanochatConfig, layer: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qk_scale = config.qk_scale
        C, D = config.n_embd, config.head_dim
        self.c_q = nn.Linear(C, config.n_head * D, bias=False)
        self.c_k = nn.Linear(C, config.n_kv_head * D, bias=False)
        self.c_v = nn.Linear(C, config.n_kv_head * D, bias=False)
        self.c_proj = nn.Linear(C, C, bias=False)
        self.ve_gate = ValueGate(config.n_kv_head) if layer in config.value_embedding_layers() else None
        self.attend = Attend(config.windows()[layer])

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # x: the block's normalised input
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:  # value embedding of each token, mixed in per kv head
            gate = self.ve_gate(x)  # [B, T, n_kv_head]
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k = rms_norm(rotate(q, cos, sin)), rms_norm(rotate(k, cos, sin))  # rotary, then QK norm
        if self.qk_scale != 1.0:
            q, k = q * self.qk_scale, k * self.qk_scale
        y = self.attend(q, k, v)  # [B, T, n_head, D]
        return self.c_proj(y.contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: NanochatConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, config: NanochatConfig, layer: int):
        super().__init__()
        self.ln_1 = RMSNorm()
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = RMSNorm()
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), ve, cos, sin)  # x here is resid_mid
        return x + self.mlp(self.ln_2(x))  # resid_post


class LogitSoftcap(nn.Module):
    """Padded lm_head output [B, T, padded_vocab] -> logits [B, T, vocab]: slice, then cap * tanh(x / cap)."""

    def __init__(self, vocab_size: int, cap: float = SOFTCAP):
        super().__init__()
        self.vocab_size, self.cap = vocab_size, cap

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.cap * torch.tanh(raw[..., : self.vocab_size] / self.cap)


class GPT(nn.Module):
    def __init__(self, config: NanochatConfig):
        super().__init__()
        self.config = config
        V, C = config.padded_vocab_size, config.n_embd
        self.transformer = nn.ModuleDict(
            dict(wte=nn.Embedding(V, C), h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]))
        )
        self.lm_head = nn.Linear(C, V, bias=False)
        self.ln_embed = RMSNorm()
        if config.current:
            self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
            self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
            self.smear_gate = SmearGate()
            self.smear_lambda = nn.Parameter(torch.zeros(1))
            self.backout_lambda = nn.Parameter(torch.zeros(1))
            kv_dim = config.n_kv_head * config.head_dim
            self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(V, kv_dim) for i in config.value_embedding_layers()})
            self.hook_smear_gate = HookPoint()  # [B, T] gate incl. smear_lambda; 0 at position 0
            self.hook_smear = HookPoint()  # [B, T, C] what smear adds; 0 at position 0
            self.hook_resid_final = HookPoint()  # [B, T, C] residual after backout, into the final norm
        self.hook_x0 = HookPoint()  # [B, T, C] the stream entering block 0 before any lambda
        self.ln_f = RMSNorm()
        self.softcap = LogitSoftcap(config.vocab_size)
        cos, sin = rotary_tables(config.sequence_len, config.head_dim, config.rotary_base, bf16=not config.current)
        self.register_buffer("cos", cos, persistent=False)  # [sequence_len, D/2]
        self.register_buffer("sin", sin, persistent=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def init_random(self, generator: torch.Generator) -> None:
        """Random weights in which every parameter matters (for tests): no zeros, lambdas off 1/0."""
        for name, p in self.named_parameters():
            if name.endswith("lambdas") or name.endswith("lambda"):
                continue
            std = 1.0 if name == "transformer.wte.weight" else 0.5 / math.sqrt(p.shape[-1])
            p.copy_(torch.randn(p.shape, generator=generator) * std)
        if self.config.current:
            L = self.config.n_layer
            self.resid_lambdas.copy_(1.0 + 0.2 * torch.randn(L, generator=generator))
            self.x0_lambdas.copy_(0.2 * torch.randn(L, generator=generator))
            self.smear_lambda.fill_(0.7)
            self.backout_lambda.fill_(0.3)
            self.smear_gate.weight.mul_(8.0)  # gates that vary across positions

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.forward_from_embeddings(idx, self.ln_embed(self.transformer.wte(idx)))

    def forward_from_embeddings(self, idx: torch.Tensor, emb: torch.Tensor, positions: list[int] | None = None) -> torch.Tensor:
        """The forward after the normalised token embedding: emb [B, T, C] (ln_embed's output; the
        norm is scale-invariant, so attribution starts after it) -> logits [B, T, vocab], or
        [B, len(positions), vocab]. idx [B, T] token ids still feed the value embeddings, which
        stay those of the tokens. `forward` is this with emb = ln_embed(wte(idx))."""
        B, T = idx.shape  # token ids
        assert T <= self.cos.shape[0], f"sequence of {T} tokens is longer than the context {self.cos.shape[0]}"
        cfg = self.config
        cos, sin = self.cos[:T], self.sin[:T]
        x = emb  # [B, T, C]
        if cfg.current:  # smear: add gate * previous position's normalised embedding
            gate = self.smear_lambda * self.smear_gate(x[:, 1:])  # [B, T-1, 1]
            self.hook_smear_gate(F.pad(gate[..., 0], (1, 0)))
            x = x + self.hook_smear(F.pad(gate * x[:, :-1], (0, 0, 1, 0)))
        x0 = x = self.hook_x0(x)
        x_backout = None
        for i, block in enumerate(self.transformer.h):
            if cfg.current:
                x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0  # x here is resid_pre
            ve = self.value_embeds[str(i)](idx) if cfg.current and str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin)
            if i == cfg.backout_layer:
                x_backout = x
        if x_backout is not None:
            x = self.hook_resid_final(x - self.backout_lambda * x_backout)
        if positions is not None:
            x = x[:, positions]  # [B, P, C]: skip the unembedding elsewhere
        return self.softcap(self.lm_head(self.ln_f(x)))  # [B, T or P, vocab]
