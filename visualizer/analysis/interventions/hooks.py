"""Hooks that REPLACE activations, on the modules capture reads, and the prefix shortcut.

A `Patch` names a capture name (TransformerLens's, from the adapter's `hook_specs`), which of its
entries to replace (`where`) and with what (`source`), both in the captured shape [pos, ...]
(batch dropped). `replacing(model, specs, rows)` registers, for every spec a patch names, one
hook on that spec's module and side: a forward hook that returns the new output, or a
forward pre-hook that returns new arguments. The hook clones the batched tensor, cuts each row
with the spec's own `split` (views, so writing into a part writes into the row) and writes the
patched entries of that row. Row b of the forward gets the patches of `rows[b]`.

`skipping(blocks, outputs, batch)` makes the first blocks of a forward return what they returned
in a reference run (one row, expanded to the batch) without computing: a patch at layer l cannot
change anything before block l, so the blocks before it give the reference run's values exactly.
It sets each block's `forward` on the instance for the duration and always restores it; hooks on
those blocks still run (a patch of a skipped block's output still applies).

What this module does not do: decide what to patch (sweeps.py, ablation.py) or run the model
(engine.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from visualizer.model.base import HookSpec


@dataclass(frozen=True)
class Patch:
    """Replace, in the activation `name` [pos, ...] of one run, the entries where `where` is True
    by `source`'s. Both broadcast to the captured shape; both on the model's device."""

    name: str
    where: torch.Tensor  # bool, broadcastable to [pos, ...]
    source: torch.Tensor  # float, broadcastable to [pos, ...]


def spec_of(specs: list[HookSpec]) -> dict[str, tuple[HookSpec, int]]:
    """capture name -> (its spec, its index among the spec's names)."""
    found = {}
    for spec in specs:
        for i, name in enumerate(spec.names):
            found[name] = (spec, i)
    return found


def patch_rows(spec: HookSpec, tensor: torch.Tensor, per_row: dict[int, list[tuple[int, Patch]]]) -> torch.Tensor:
    """The spec's batched tensor [batch, ...] with each row's patches written into a copy."""
    out = tensor.clone(memory_format=torch.contiguous_format)  # split may view it
    for row, items in per_row.items():
        parts = spec.split(out[row])
        for index, patch in items:
            part = parts[index]
            if part.untyped_storage().data_ptr() != out.untyped_storage().data_ptr():
                raise ValueError(f"the adapter's split of '{patch.name}' is not a view of '{spec.module}': cannot patch it")
            part.copy_(torch.where(patch.where, patch.source, part))
    return out


@contextlib.contextmanager
def replacing(model: torch.nn.Module, specs: list[HookSpec], rows: list[list[Patch]]):
    """While open, a forward of len(rows) rows runs with row b's patches applied. Always unhooks."""
    where = spec_of(specs)
    modules = dict(model.named_modules())
    grouped: dict[HookSpec, dict[int, list[tuple[int, Patch]]]] = {}
    for row, patches in enumerate(rows):
        for patch in patches:
            if patch.name not in where:
                raise KeyError(f"no hook is declared for '{patch.name}'")
            spec, index = where[patch.name]
            if not spec.batched:
                raise ValueError(f"'{patch.name}' has no batch dimension: it cannot be patched per run")
            grouped.setdefault(spec, {}).setdefault(row, []).append((index, patch))
    batch = len(rows)

    def checked(spec: HookSpec, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.shape[0] != batch:
            raise ValueError(f"'{spec.module}' ran with a batch of {tensor.shape[0]}, the patches are for {batch} rows")
        return patch_rows(spec, tensor, grouped[spec])

    def pre_hook(module, args, spec):
        return (*args[: spec.arg], checked(spec, args[spec.arg]), *args[spec.arg + 1:])

    def post_hook(module, args, output, spec):
        return checked(spec, output)

    handles = []
    try:
        for spec in grouped:
            module = modules[spec.module]
            if spec.side == "input":
                handles.append(module.register_forward_pre_hook(lambda m, a, s=spec: pre_hook(m, a, s)))
            else:
                handles.append(module.register_forward_hook(lambda m, a, o, s=spec: post_hook(m, a, o, s)))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def recording_outputs(blocks: list[torch.nn.Module], outputs: list):
    """While open, each block's output of a forward is appended to `outputs` (detached), in order."""
    handles = [block.register_forward_hook(lambda m, a, o: outputs.append(o.detach())) for block in blocks]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def skipping(blocks: list[torch.nn.Module], outputs: list[torch.Tensor], batch: int):
    """While open, blocks[i] returns outputs[i] [1, ...] expanded to `batch` rows without computing."""
    saved = []
    try:
        for block, output in zip(blocks, outputs):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"{type(block).__name__} returns a {type(output).__name__}, not a tensor: cannot skip it")
            saved.append((block, vars(block).get("forward")))
            block.forward = lambda *args, _out=output.expand(batch, *output.shape[1:]), **kwargs: _out
        yield
    finally:
        for block, previous in saved:
            if previous is None:
                del block.forward
            else:
                block.forward = previous
