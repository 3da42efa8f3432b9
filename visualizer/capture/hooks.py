"""Read-only forward hooks on the real modules: each `HookSpec` names a module, a side (input or
output) and the activation names its tensor is split into.

Hooks only read: they return None, so the hooked forward is the model's own forward. They are
registered in a context manager and always removed.

What this module does not do: run a forward (the caller does, inside `hooked`), derive the
attention pattern (attention.py) or check anything (verify.py).
"""

from __future__ import annotations

import contextlib

import torch

from visualizer.model.base import HookSpec


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
