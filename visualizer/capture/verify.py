"""The identities that prove a capture (or a generation step) is what the model computed, each with
its max abs error against a tolerance.

What this module does not do: capture or derive anything (hooks.py, attention.py), or decide what
a failure means for the run (the CLI and the pages report it).
"""

from __future__ import annotations

import torch

from visualizer.model.base import LoadedModel

# a check passes when max|a - b| <= ABS_TOL * max(1, max|b|): float32 sums of a few hundred terms
ABS_TOL = 1e-4
PATTERN_V_Z = "pattern @ v == z"


def check(actual: torch.Tensor, expected: torch.Tensor) -> dict:
    """{max_abs_error, tolerance, passed} of `actual` against `expected` (same shape)."""
    error = (actual - expected).abs().max().item() if actual.numel() else 0.0
    scale = max(1.0, expected.abs().max().item() if expected.numel() else 0.0)
    tolerance = ABS_TOL * scale
    return {"max_abs_error": float(error), "tolerance": float(tolerance), "passed": bool(error <= tolerance)}


def attention_output(pattern: torch.Tensor, v: torch.Tensor, kv_index: torch.Tensor) -> torch.Tensor:
    """pattern [nh, q, T] @ v [T, n_kv_head, dh] (kv head kv_index[h] for query head h) -> z [q, nh, dh]:
    what the attention kernel returned if the pattern is the one it used."""
    return torch.einsum("hqk,khd->qhd", pattern, v[:, kv_index])


def verify(loaded: LoadedModel, tensors: dict[str, torch.Tensor], plain_logits: torch.Tensor) -> dict[str, dict]:
    """The identities every run must satisfy, each with its max abs error. Worst layer per identity."""
    dims = loaded.dims
    kv_index = loaded.adapter.kv_head_index(dims)
    per_identity: dict[str, list[dict]] = {
        PATTERN_V_Z: [],
        "resid_mid == resid_pre + attn_out": [],
        "resid_post == resid_mid + mlp_out": [],
    }
    for layer in range(dims.n_layer):
        b = f"blocks.{layer}"
        z = attention_output(tensors[f"{b}.attn.hook_pattern"], tensors[f"{b}.attn.hook_v"], kv_index)  # [T, nh, d_head]
        per_identity[PATTERN_V_Z].append(check(z, tensors[f"{b}.attn.hook_z"]))
        per_identity["resid_mid == resid_pre + attn_out"].append(
            check(tensors[f"{b}.hook_resid_pre"] + tensors[f"{b}.hook_attn_out"], tensors[f"{b}.hook_resid_mid"])
        )
        per_identity["resid_post == resid_mid + mlp_out"].append(
            check(tensors[f"{b}.hook_resid_mid"] + tensors[f"{b}.hook_mlp_out"], tensors[f"{b}.hook_resid_post"])
        )
    results = {}
    single = {}
    for name, pairs in loaded.adapter.stream_identities(loaded, tensors).items():
        if isinstance(pairs, list):
            per_identity[name] = [check(computed, captured) for computed, captured in pairs]
        else:
            single[name] = check(*pairs)
    for name, checks in per_identity.items():
        if checks:
            worst = max(checks, key=lambda c: c["max_abs_error"] / c["tolerance"])
            results[name] = {**worst, "passed": all(c["passed"] for c in checks), "checked": len(checks)}
    results.update(single)
    results["hooked logits == plain forward logits"] = check(tensors["logits"], plain_logits)
    return dict(sorted(results.items()))
