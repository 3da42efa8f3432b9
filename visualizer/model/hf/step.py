"""One cached generation step of a Hugging Face model, with transformers' own forward and cache.

The step is `model(input_ids=new, cache=DynamicCache, use_cache=True)`, which places the new tokens
at positions cache.length.. (learned positions or rotary), appends their keys and values to the
cache and attends over them with the model's own mask (causal, and sliding where the config says).
The cache is a `DynamicCache()` without the config: every layer keeps every key, so each attention
call reads all T keys and the sliding mask hides those out of the window. (Given the config,
transformers keeps only the last window - 1 keys of a sliding layer, and the step could not report
a pattern over the whole context.) What StepOutput needs is read, never recomputed by us, except
the attention pattern:
- q and the cached k, v: the arguments of each layer's attention call, recorded as capture records
  them (`recording.recording`; k and v after the cache update, n_kv_head heads, k after rotary);
  the pattern is derived from q and k as `capture.derive_attention` derives it (softmax(q k^T *
  scaling) with the adapter's mask), for the new query rows only;
- z (the input of the output projection) and every block's output: the adapter's own hook specs,
  through `capture.hooked`. `output_hidden_states` is not used: its last entry is after the final
  norm, not the last block's output.

What this module does not do: crop (generation/decode.py), or know where modules sit (the adapter
passes its hook specs and attention modules).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import visualizer.capture.attention as attention
from visualizer.capture.hooks import hooked
from visualizer.model.base import KVCache, LoadedModel, StepOutput
from visualizer.model.hf.recording import recording

STEP_HOOKS = (".attn.hook_z", ".hook_resid_post")  # the hook names a step reads besides the attention call


@dataclass
class HFKVCache(KVCache):
    """The model's own transformers cache; `keys`/`values` mirror its layers after each step
    (per layer [n_kv_head, length, d_head], the tensors the attention call read)."""

    past: object = None  # transformers.DynamicCache


def start_cache(loaded: LoadedModel) -> HFKVCache:
    from transformers import DynamicCache

    return HFKVCache(keys=[], values=[], past=DynamicCache())


@torch.inference_mode()
def step(loaded: LoadedModel, attention_modules: list[torch.nn.Module], cache: HFKVCache, new_ids: torch.Tensor) -> StepOutput:
    adapter, dims, model = loaded.adapter, loaded.dims, loaded.model
    start, new = cache.length, int(new_ids.shape[0])
    T = start + new
    assert T <= dims.n_ctx, f"cache of {start} + {new} positions passes the context of {dims.n_ctx}"
    specs = [s for s in adapter.hook_specs(dims) if any(n.endswith(STEP_HOOKS) for n in s.names)]
    store: dict[str, torch.Tensor] = {}
    with hooked(model, specs, store), recording(model, attention_modules, store):
        out = model(input_ids=new_ids.to(loaded.device)[None], cache=cache.past, use_cache=True)
    assert out.cache.get_seq_length() == T, "transformers' cache did not grow by the new tokens"
    cache.past, cache.length = out.cache, T
    kv_index = adapter.kv_head_index(dims).to(loaded.device)
    patterns, keys, values = [], [], []
    for layer in range(dims.n_layer):
        b = f"blocks.{layer}.attn"
        q, k, v = store[f"{b}.hook_q"], store[f"{b}.hook_k"], store[f"{b}.hook_v"]  # [new, nh, d], [T, nkv, d] x2
        assert k.shape[0] == T, f"layer {layer}: the attention call read {k.shape[0]} keys, expected {T}"
        mask = adapter.attention_mask(layer, T, q.device)  # [T, T]
        patterns.append(attention.derive(q, k[:, kv_index], adapter.attention_scale(dims, layer), mask, start)[1])  # [nh, new, T]
        keys.append(k.transpose(0, 1))  # [nkv, T, d]
        values.append(v)  # [T, nkv, d]
    cache.keys, cache.values = keys, [v.transpose(0, 1) for v in values]
    return StepOutput(
        logits=out.logits[0],  # [new, vocab]
        pattern=torch.stack(patterns),  # [n_layer, nh, new, T]
        z=torch.stack([store[f"blocks.{l}.attn.hook_z"] for l in range(dims.n_layer)]),  # [n_layer, new, nh, d]
        values=values,
        resid_post=torch.stack([store[f"blocks.{l}.hook_resid_post"] for l in range(dims.n_layer)]),  # [n_layer, new, C]
    )
