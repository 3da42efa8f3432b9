"""Capture every named activation with hooks on the real modules, derive the attention pattern once,
and verify the identities that prove the capture is what the model computed.

`capture(loaded, ids)` returns a `Cache`: a flat, ordered name -> float32 CPU tensor dict (batch
dropped, TransformerLens names) plus the verification results. Hooks only read: they return None,
so the hooked forward is the model's own forward. They are registered in a context manager and
always removed. Activations that exist only inside a function call (q and k after rotary) are
recorded by the adapter's `capture_context`, entered around the same forward.

What this module does not do: decide what to show (analyze.py) or write files (trace.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from visualizer.model.base import HookSpec, LoadedModel

# a check passes when max|a - b| <= ABS_TOL * max(1, max|b|): float32 sums of a few hundred terms
ABS_TOL = 1e-4


@dataclass
class Cache:
    tensors: dict[str, torch.Tensor]  # name -> float32 CPU tensor, batch dropped
    verification: dict[str, dict] = field(default_factory=dict)  # name -> {max_abs_error, tolerance, passed}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    @property
    def passed(self) -> bool:
        return all(v["passed"] for v in self.verification.values())

    def failures(self) -> list[str]:
        return [name for name, v in self.verification.items() if not v["passed"]]


@contextlib.contextmanager
def hooked(model: torch.nn.Module, specs: list[HookSpec], store: dict[str, torch.Tensor]):
    """Register one read-only hook per spec; `store` fills during the forward. Always unhooks."""
    modules = dict(model.named_modules())
    handles = []

    def record(spec: HookSpec, tensor: torch.Tensor) -> None:
        t = tensor[0] if spec.batched else tensor
        for name, part in zip(spec.names, spec.split(t)):
            store[name] = part

    try:
        for spec in specs:
            if spec.module not in modules:
                raise KeyError(f"adapter names module '{spec.module}', which the model does not have")
            module = modules[spec.module]
            if spec.side == "input":
                handles.append(module.register_forward_pre_hook(lambda m, args, s=spec: record(s, args[s.arg])))
            elif spec.side == "output":
                handles.append(module.register_forward_hook(lambda m, args, out, s=spec: record(s, out)))
            else:
                raise ValueError(f"hook side must be 'input' or 'output', not {spec.side!r}")
        yield store
    finally:
        for handle in handles:
            handle.remove()


def derive_attention(loaded: LoadedModel, store: dict[str, torch.Tensor]) -> None:
    """hook_attn_scores and hook_pattern [head, query_pos, key_pos] from the captured q and k.

    Fused attention kernels never build the pattern; this is the one place it is computed:
    softmax(q k^T * scale) with the adapter's mask (causal, sliding window) set to -inf.
    """
    dims, adapter = loaded.dims, loaded.adapter
    kv_index = adapter.kv_head_index(dims).to(loaded.device)
    for layer in range(dims.n_layer):
        b = f"blocks.{layer}.attn"
        q = store[f"{b}.hook_q"]  # [T, n_head, d_head]
        k = store[f"{b}.hook_k"][:, kv_index]  # [T, n_head, d_head], kv heads repeated for GQA
        T = q.shape[0]
        # in place: the same operations in the same order (so the same bits) without two more
        # [nh, T, T] allocations, which cost ~0.3 s per capture at 12 layers x 1024 tokens
        scores = torch.einsum("qhd,khd->hqk", q, k).mul_(adapter.attention_scale(dims, layer))  # [nh, T, T]
        allowed = adapter.attention_mask(layer, T, q.device)  # [T, T]
        scores.masked_fill_(~allowed, float("-inf"))
        store[f"{b}.hook_attn_scores"] = scores
        store[f"{b}.hook_pattern"] = torch.softmax(scores, dim=-1)


def _check(actual: torch.Tensor, expected: torch.Tensor) -> dict:
    error = (actual - expected).abs().max().item() if actual.numel() else 0.0
    scale = max(1.0, expected.abs().max().item() if expected.numel() else 0.0)
    tolerance = ABS_TOL * scale
    return {"max_abs_error": float(error), "tolerance": float(tolerance), "passed": bool(error <= tolerance)}


def verify(loaded: LoadedModel, tensors: dict[str, torch.Tensor], plain_logits: torch.Tensor) -> dict[str, dict]:
    """The identities every run must satisfy, each with its max abs error. Worst layer per identity."""
    dims = loaded.dims
    kv_index = loaded.adapter.kv_head_index(dims)
    per_identity: dict[str, list[dict]] = {
        "pattern @ v == z": [],
        "resid_mid == resid_pre + attn_out": [],
        "resid_post == resid_mid + mlp_out": [],
    }
    for layer in range(dims.n_layer):
        b = f"blocks.{layer}"
        pattern, v = tensors[f"{b}.attn.hook_pattern"], tensors[f"{b}.attn.hook_v"][:, kv_index]
        z = torch.einsum("hqk,khd->qhd", pattern, v)  # [T, nh, d_head]
        per_identity["pattern @ v == z"].append(_check(z, tensors[f"{b}.attn.hook_z"]))
        per_identity["resid_mid == resid_pre + attn_out"].append(
            _check(tensors[f"{b}.hook_resid_pre"] + tensors[f"{b}.hook_attn_out"], tensors[f"{b}.hook_resid_mid"])
        )
        per_identity["resid_post == resid_mid + mlp_out"].append(
            _check(tensors[f"{b}.hook_resid_mid"] + tensors[f"{b}.hook_mlp_out"], tensors[f"{b}.hook_resid_post"])
        )
    results = {}
    single = {}
    for name, pairs in loaded.adapter.stream_identities(loaded, tensors).items():
        if isinstance(pairs, list):
            per_identity[name] = [_check(computed, captured) for computed, captured in pairs]
        else:
            single[name] = _check(*pairs)
    for name, checks in per_identity.items():
        if checks:
            worst = max(checks, key=lambda c: c["max_abs_error"] / c["tolerance"])
            results[name] = {**worst, "passed": all(c["passed"] for c in checks), "checked": len(checks)}
    results.update(single)
    results["hooked logits == plain forward logits"] = _check(tensors["logits"], plain_logits)
    return dict(sorted(results.items()))


@torch.inference_mode()
def capture(loaded: LoadedModel, ids: list[int]) -> Cache:
    """Run the probe through the hooked model, derive attention, verify, return float32 CPU tensors."""
    idx = torch.tensor(ids, dtype=torch.long, device=loaded.device)  # [T]
    store: dict[str, torch.Tensor] = {}
    with hooked(loaded.model, loaded.adapter.hook_specs(loaded.dims), store), loaded.adapter.capture_context(loaded, store):
        loaded.adapter.plain_forward(loaded, idx)
    derive_attention(loaded, store)
    plain_logits = loaded.adapter.plain_forward(loaded, idx)  # unhooked: proves the hooks changed nothing
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in store.items()}
    verification = verify(loaded, tensors, plain_logits.to("cpu", torch.float32))
    return Cache(tensors=tensors, verification=verification)
