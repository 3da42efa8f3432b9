"""The hook layout of a block shaped as nanoGPT's (`transformer.h.{l}` with ln_1, attn, attn.c_proj,
ln_2, mlp.c_fc, mlp.c_proj), which our nanoGPT and nanochat module trees both have.

What this module does not do: name q, k and v (each family's own specs: a fused c_attn, or c_q/c_k/c_v
after rotary) or the stream's ends (embeddings, final norm, head).
"""

from __future__ import annotations

from visualizer.model.base import HookSpec


def block_specs(layer: int, qkv: list[HookSpec], heads) -> list[HookSpec]:
    """The hooks of a block laid out as nanoGPT's (`transformer.h.{l}` with ln_1, attn.c_proj, ln_2,
    mlp.c_fc, mlp.c_proj), given the family's own specs for q, k and v; `heads` splits z."""
    m, b = f"transformer.h.{layer}", f"blocks.{layer}"
    return [
        HookSpec(m, "input", (f"{b}.hook_resid_pre",)),
        HookSpec(f"{m}.ln_1", "output", (f"{b}.ln1.hook_normalized",)),
        *qkv,
        HookSpec(f"{m}.attn.c_proj", "input", (f"{b}.attn.hook_z",), heads),
        HookSpec(f"{m}.attn", "output", (f"{b}.hook_attn_out",)),
        HookSpec(f"{m}.ln_2", "input", (f"{b}.hook_resid_mid",)),
        HookSpec(f"{m}.ln_2", "output", (f"{b}.ln2.hook_normalized",)),
        HookSpec(f"{m}.mlp.c_fc", "output", (f"{b}.mlp.hook_pre",)),
        HookSpec(f"{m}.mlp.c_proj", "input", (f"{b}.mlp.hook_post",)),
        HookSpec(f"{m}.mlp", "output", (f"{b}.hook_mlp_out",)),
        HookSpec(m, "output", (f"{b}.hook_resid_post",)),
    ]
