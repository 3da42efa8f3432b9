"""One cached generation step of our nanochat tree, as nanochat's own KV-cache inference runs it.

nanochat (gpt.py + engine.py) decodes with a per-layer key/value cache, rotary tables read at the
absolute positions `T0 .. T0+T` where T0 is the cache length, sliding windows applied by the
attention kernel over the cached keys, and the previous token's normalised embedding kept in the
cache for smear (`prev_embedding`). This does the same through our module tree's own submodules
(wte, ln_embed, smear_gate, c_q/c_k/c_v, ve_gate, value_embeds, c_proj, mlp, ln_f, lm_head,
softcap) and the model's own lambdas, both architectures, grouped-query attention kept (n_kv_head
cached heads, query head h reading kv head h // group).

A multi-token step after a non-empty cache smears its first token with the cached embedding, as
the full forward over the whole sequence does (nanochat's own prefill path only ever starts empty).

What this module does not do: decide when to crop (generate.py), or record anything beyond
`StepOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

import visualizer.capture.attention as attention
from visualizer.model.base import KVCache, LoadedModel, StepOutput
from visualizer.model.nanochat.model import rms_norm, rotate


@dataclass
class NanochatKVCache(KVCache):
    """KVCache plus what smear reads: the last cached position's normalised embedding (pre-smear)."""

    previous_embedding: torch.Tensor | None = None  # [d_model], None while the cache is empty


def start_cache(base: KVCache) -> NanochatKVCache:
    return NanochatKVCache(keys=base.keys, values=base.values)


@torch.inference_mode()
def step(loaded: LoadedModel, cache: NanochatKVCache, new_ids: torch.Tensor) -> StepOutput:
    """nanochat's forward for `new_ids` [new] at positions cache.length.., reading and extending `cache`."""
    m, dims = loaded.model, loaded.dims
    cfg = m.config
    nh, nkv, D, C = dims.n_head, dims.n_kv_head, dims.d_head, dims.d_model
    start, new = cache.length, int(new_ids.shape[0])
    T = start + new
    assert T <= dims.n_ctx, f"cache of {start} + {new} positions passes sequence_len {dims.n_ctx}"
    ids = new_ids.to(loaded.device)[None]  # [1, new]
    cos, sin = m.cos[start:T], m.sin[start:T]  # [new, D/2]: rotary at the absolute positions
    x = m.ln_embed(m.transformer.wte(ids))  # [1, new, C] normalised embedding
    if cfg.current:  # smear: x[t] += lambda * gate(x[t]) * x[t-1]; nothing before position 0
        first = cache.previous_embedding
        first = x.new_zeros(1, 1, C) if first is None else first[None, None]
        previous = torch.cat([first, x[:, :-1]], dim=1)  # [1, new, C]
        cache.previous_embedding = x[0, -1]  # [C], pre-smear, for the next step
        x = x + m.smear_lambda * m.smear_gate(x) * previous
    x0 = x
    kv_index = torch.arange(nh, device=loaded.device) // (nh // nkv)  # [nh]
    patterns, zs, values, resids = [], [], [], []
    x_backout = None
    for layer, block in enumerate(m.transformer.h):
        if cfg.current:
            x = m.resid_lambdas[layer] * x + m.x0_lambdas[layer] * x0  # resid_pre
        attn, h = block.attn, block.ln_1(x)  # h [1, new, C]
        q = attn.c_q(h).view(1, new, nh, D)
        k = attn.c_k(h).view(1, new, nkv, D)
        v = attn.c_v(h).view(1, new, nkv, D)
        if attn.ve_gate is not None:  # value embedding of each new token, gated per kv head
            ve = m.value_embeds[str(layer)](ids).view(1, new, nkv, D)
            v = v + attn.ve_gate(h).unsqueeze(-1) * ve
        q, k = rms_norm(rotate(q, cos, sin)), rms_norm(rotate(k, cos, sin))  # rotary, then QK norm
        if attn.qk_scale != 1.0:
            q, k = q * attn.qk_scale, k * attn.qk_scale
        cache.keys[layer][:, start:T] = k[0].transpose(0, 1)
        cache.values[layer][:, start:T] = v[0].transpose(0, 1)
        keys = cache.keys[layer][:, :T]  # [nkv, T, D]
        vals = cache.values[layer][:, :T]  # [nkv, T, D]
        mask = loaded.adapter.attention_mask(layer, T, loaded.device)  # [T, T]: causal + window
        allowed = mask[start:T]  # [new, T]
        qh = q[0].transpose(0, 1)  # [nh, new, D]
        if start == 0:  # a prefill from 0 is the full forward's own attention call
            y = attn.attend(q, k, v)[0].transpose(0, 1)  # [nh, new, D]
        else:
            y = F.scaled_dot_product_attention(qh[None], keys[None], vals[None], attn_mask=allowed, enable_gqa=nh != nkv)[0]
        _, pattern = attention.derive(q[0], keys[kv_index].transpose(0, 1), loaded.adapter.attention_scale(dims, layer),
                                      mask, start)  # [nh, new, T]
        patterns.append(pattern)
        zs.append(y.transpose(0, 1))  # [new, nh, D]
        values.append(vals.transpose(0, 1))  # [T, nkv, D]
        x = x + attn.c_proj(y.transpose(0, 1).reshape(1, new, C))  # resid_mid
        x = x + block.mlp(block.ln_2(x))  # resid_post
        resids.append(x[0])
        if layer == cfg.backout_layer:
            x_backout = x
    if x_backout is not None:
        x = x - m.backout_lambda * x_backout  # the residual entering the final norm
    cache.length = T
    return StepOutput(
        logits=m.softcap(m.lm_head(m.ln_f(x)))[0],  # [new, vocab]: padding sliced off, capped
        pattern=torch.stack(patterns),  # [n_layer, nh, new, T]
        z=torch.stack(zs),  # [n_layer, new, nh, D]
        values=values,
        resid_post=torch.stack(resids),  # [n_layer, new, C]
        resid_final=x[0] if x_backout is not None else None,  # [new, C]
    )
