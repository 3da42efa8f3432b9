"""Capture every named activation with hooks on the real modules, derive the attention pattern once,
and verify the identities that prove the capture is what the model computed.

`capture(loaded, ids)` returns a `Cache`: a flat, ordered name -> float32 CPU tensor dict (batch
dropped, TransformerLens names) plus the verification results. The hooks (hooks.py) only read, so
the hooked forward is the model's own forward. Activations that exist only inside a function call
(q and k after rotary) are recorded by the adapter's `capture_context`, entered around the same
forward. The pattern comes from attention.py, the checks from verify.py.

What this module does not do: decide what to show (analysis/) or write files (artefacts/trace.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from visualizer.capture import attention, verify
from visualizer.capture.hooks import hooked
from visualizer.model.base import LoadedModel

__all__ = ["Cache", "capture"]


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


@torch.inference_mode()
def capture(loaded: LoadedModel, ids: list[int]) -> Cache:
    """Run the probe through the hooked model, derive attention, verify, return float32 CPU tensors."""
    idx = torch.tensor(ids, dtype=torch.long, device=loaded.device)  # [T]
    store: dict[str, torch.Tensor] = {}
    with hooked(loaded.model, loaded.adapter.hook_specs(loaded.dims), store), loaded.adapter.capture_context(loaded, store):
        loaded.adapter.plain_forward(loaded, idx)
    attention.derive_attention(loaded, store)
    plain_logits = loaded.adapter.plain_forward(loaded, idx)  # unhooked: proves the hooks changed nothing
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in store.items()}
    verification = verify.verify(loaded, tensors, plain_logits.to("cpu", torch.float32))
    return Cache(tensors=tensors, verification=verification)
