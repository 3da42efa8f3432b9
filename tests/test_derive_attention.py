"""derive_attention computes softmax(q k^T * scale) with the mask, bit for bit as the textbook
formula does, and leaves the captured q and k as they were (its in-place steps act on its own
scores tensor only)."""

from __future__ import annotations

import torch

from tests.support.nanogpt import make_checkpoint
import visualizer.capture.attention as attention_module
from visualizer.capture.hooks import hooked
from visualizer.model.registry import load_model


def test_pattern_is_the_textbook_formula_bit_for_bit_and_q_k_untouched(tmp_path):
    ckpt, meta = make_checkpoint(tmp_path, n_layer=2, n_head=4, n_embd=32, block_size=32, bias=True)
    loaded = load_model(ckpt, meta)
    ids = torch.tensor([(7 * i) % loaded.dims.vocab_size for i in range(20)])  # [T]
    store: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        with hooked(loaded.model, loaded.adapter.hook_specs(loaded.dims), store):
            loaded.adapter.plain_forward(loaded, ids)
        captured = {name: t.clone() for name, t in store.items()}
        attention_module.derive_attention(loaded, store)
    T, scale = len(ids), loaded.dims.d_head**-0.5
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in range(loaded.dims.n_layer):
        b = f"blocks.{layer}.attn"
        q, k = captured[f"{b}.hook_q"], captured[f"{b}.hook_k"]  # [T, nh, hs]
        assert torch.equal(store[f"{b}.hook_q"], q) and torch.equal(store[f"{b}.hook_k"], k)
        scores = (torch.einsum("qhd,khd->hqk", q, k) * scale).masked_fill(~causal, float("-inf"))  # [nh, T, T]
        assert torch.equal(store[f"{b}.hook_attn_scores"], scores)
        assert torch.equal(store[f"{b}.hook_pattern"], torch.softmax(scores, dim=-1))
