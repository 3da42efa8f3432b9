"""THE attention-pattern derivation: scores = q k^T * scale, masked with the adapter's mask (causal,
sliding window) set to -inf, softmax over the keys. Fused attention kernels never build the
pattern; capture (every position) and every family's cached generation step (the new positions
only) derive it here, so a report and a generation show the same numbers for the same context.

What this module does not do: read q and k from the model (hooks.py, the adapters' capture
contexts, the step modules), or check the pattern against the kernel's output (verify.py).
"""

from __future__ import annotations

import torch

from visualizer.model.base import LoadedModel


def derive(q: torch.Tensor, k: torch.Tensor, scale: float, mask: torch.Tensor | None, start: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """q [new, nh, dh] for query positions start..start+new-1, k [T, nh, dh] (kv heads repeated for
    grouped-query attention), `mask` [T, T] bool (True where a query may attend a key; the
    adapter's `attention_mask`), or None when every query may attend every key (one new query at
    the end of a causal context) -> (scores, pattern), each [nh, new, T].

    In place on its own scores tensor: the same operations in the same order (so the same bits)
    without two more [nh, new, T] allocations (~0.3 s per capture at 12 layers x 1024 tokens)."""
    new = q.shape[0]
    scores = torch.einsum("qhd,khd->hqk", q, k).mul_(scale)  # [nh, new, T]
    if mask is not None:
        scores.masked_fill_(~mask[start : start + new], float("-inf"))
    return scores, torch.softmax(scores, dim=-1)


def derive_attention(loaded: LoadedModel, store: dict[str, torch.Tensor]) -> None:
    """Add hook_attn_scores and hook_pattern [head, query_pos, key_pos] of every layer to `store`,
    from its captured hook_q [T, nh, dh] and hook_k [T, n_kv_head, dh] (every position from 0)."""
    dims, adapter = loaded.dims, loaded.adapter
    kv_index = adapter.kv_head_index(dims).to(loaded.device)
    for layer in range(dims.n_layer):
        b = f"blocks.{layer}.attn"
        q = store[f"{b}.hook_q"]  # [T, n_head, d_head]
        k = store[f"{b}.hook_k"][:, kv_index]  # [T, n_head, d_head], kv heads repeated for GQA
        mask = adapter.attention_mask(layer, q.shape[0], q.device)  # [T, T]
        scores, pattern = derive(q, k, adapter.attention_scale(dims, layer), mask)
        store[f"{b}.hook_attn_scores"], store[f"{b}.hook_pattern"] = scores, pattern
