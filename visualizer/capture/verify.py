"""The identities that prove a capture (or a generation step) is what the model computed, each with
its max abs error against a tolerance.

What this module does not do: capture or derive anything (hooks.py, attention.py), or decide what
a failure means for the run (the CLI and the pages report it).
"""

from __future__ import annotations

import math

import torch

from visualizer.model.base import LoadedModel, describe_non_finite

# a check passes when max|a - b| <= ABS_TOL * max(1, max|b|): float32 sums of a few hundred terms
ABS_TOL = 1e-4
PATTERN_V_Z = "pattern @ v == z"
WEIGHTS_FINITE = "every weight is finite"


def check(actual: torch.Tensor, expected: torch.Tensor) -> dict:
    """{max_abs_error, tolerance, passed} of `actual` against `expected` (same shape). A NaN or
    infinite error fails (NaN compares false with everything, so it is tested for by name), and
    the tolerance's scale comes from the finite values of `expected` alone."""
    error = torch.sub(actual, expected).abs_().max().item() if actual.numel() else 0.0  # max propagates NaN
    scale = max(1.0, finite_abs_max(expected))
    tolerance = ABS_TOL * scale
    return {"max_abs_error": float(error), "tolerance": float(tolerance),
            "passed": bool(math.isfinite(error) and error <= tolerance)}


def finite_abs_max(t: torch.Tensor) -> float:
    """max |t| over the finite entries (0 without any). One min/max pass when every entry is finite
    (the usual case: no copy of a [T, vocab] tensor); masked or broken tensors take the exact long way."""
    if not t.numel():
        return 0.0
    low, high = (v.item() for v in torch.aminmax(t))  # NaN when any entry is NaN
    if math.isfinite(low) and math.isfinite(high):
        return max(-low, high)
    finite = t[torch.isfinite(t)]
    return finite.abs().max().item() if finite.numel() else 0.0


def badness(result: dict) -> float:
    """How far a check is from passing, for choosing the worst layer: a non-finite error is the worst."""
    error = result["max_abs_error"]
    return error / result["tolerance"] if math.isfinite(error) else math.inf


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
            worst = max(checks, key=badness)
            results[name] = {**worst, "passed": all(c["passed"] for c in checks), "checked": len(checks)}
    results.update(single)
    results["hooked logits == plain forward logits"] = check(tensors["logits"], plain_logits)
    broken = loaded.card.get("non_finite_weights")
    if broken:  # only then: a healthy model's verification keeps its usual identities
        results[WEIGHTS_FINITE] = weights_check(broken, len(loaded.model.state_dict()))
    return dict(sorted(results.items()))


def weights_check(broken: dict[str, dict[str, int]], tensors: int) -> dict:
    """The failed check of a model whose weights hold NaN or infinite values: its 'error' is the
    largest |weight| (NaN when any is NaN), its `detail` names where they are."""
    nan = any(counts["nan"] for counts in broken.values())
    return {"max_abs_error": math.nan if nan else math.inf, "tolerance": 0.0, "passed": False, "checked": tensors,
            "detail": describe_non_finite(broken)}
