"""Patched runs of one probe, many at a time: each run is a row of a batched forward through the
adapter's `forward_from_embeddings` (the family's own forward after the embedding), with that
row's patches applied by replacing hooks (hooks.py).

A run whose patches all sit at layer `start` or later starts there: the blocks before it return
the reference run's block outputs (its captured `hook_resid_post`, the cached prefix) instead of
computing them, which is exact because nothing before block `start` is patched. Runs are grouped
by `start` and cut into batches of at most `batch_rows`. Only the last position's logits are
computed unless every position's are asked for (the loss needs them).

What this module does not do: decide what to patch (sweeps.py, ablation.py), or compare with
anything (the callers' identities do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from visualizer.analysis.interventions.hooks import Patch, replacing, skipping, spec_of
from visualizer.capture import Cache
from visualizer.model.base import LoadedModel

TOKENS_PER_BATCH = 4096  # rows x positions in one forward
MAX_ROWS = 256
LOGIT_FLOATS_PER_BATCH = 2**25  # rows x positions x vocab when every position's logits are kept (128 MiB)


@dataclass
class Run:
    """One patched forward: its patches, and the first block it computes (all patches at or after it)."""

    start: int
    patches: list[Patch] = field(default_factory=list)


def default_batch_rows(positions: int) -> int:
    return max(1, min(MAX_ROWS, TOKENS_PER_BATCH // positions))


class Engine:
    """Patched runs of the reference probe `ids`, whose verified capture is `cache`."""

    def __init__(self, loaded: LoadedModel, ids: list[int], cache: Cache, batch_rows: int | None = None,
                 on_rows: Callable[[int], None] | None = None):
        self.loaded = loaded
        self.T = len(ids)
        self.batch_rows = batch_rows or default_batch_rows(self.T)
        self.on_rows = on_rows
        device = loaded.device
        self.ids = torch.tensor(ids, dtype=torch.long, device=device)  # [T]
        self.emb = cache[loaded.adapter.embedding_hook].to(device)  # [T, d_model]: where the forward starts
        self.specs = loaded.adapter.hook_specs(loaded.dims)
        where = spec_of(self.specs)
        modules = dict(loaded.model.named_modules())
        self.blocks, self.outputs = [], []
        for layer in range(loaded.dims.n_layer):
            block = where[f"blocks.{layer}.hook_resid_pre"][0]
            after = where[f"blocks.{layer}.hook_resid_post"][0]
            assert block.module == after.module and block.side == "input" and after.side == "output", \
                f"layer {layer}: resid_pre and resid_post are not one block's input and output"
            self.blocks.append(modules[block.module])
            self.outputs.append(cache[f"blocks.{layer}.hook_resid_post"].to(device)[None])  # [1, T, d_model]
        self.forwards = 0  # batched forward calls made
        self.runs = 0  # patched runs (rows) made

    def rows_per_batch(self, every_position: bool) -> int:
        if not every_position:
            return self.batch_rows
        return max(1, min(self.batch_rows, LOGIT_FLOATS_PER_BATCH // (self.T * self.loaded.dims.vocab_size)))

    @torch.inference_mode()
    def run(self, runs: list[Run], reduce: Callable[[torch.Tensor], torch.Tensor],
            every_position: bool = False) -> torch.Tensor:
        """reduce(logits) of every run, in order: logits [rows, 1, vocab] at the last position (or
        [rows, T, vocab] with every_position) -> [rows, ...]; returns [len(runs), ...] on the CPU."""
        size = self.rows_per_batch(every_position)
        order = sorted(range(len(runs)), key=lambda i: runs[i].start)
        results: list[torch.Tensor | None] = [None] * len(runs)
        positions = None if every_position else [self.T - 1]
        i = 0
        while i < len(order):
            start = runs[order[i]].start
            batch = [order[i]]
            while len(batch) < size and i + len(batch) < len(order) and runs[order[i + len(batch)]].start == start:
                batch.append(order[i + len(batch)])
            i += len(batch)
            rows = len(batch)
            emb = self.emb.expand(rows, -1, -1).contiguous()  # [rows, T, d_model]
            with replacing(self.loaded.model, self.specs, [runs[j].patches for j in batch]), \
                    skipping(self.blocks[:start], self.outputs[:start], rows):
                logits = self.loaded.adapter.forward_from_embeddings(self.loaded, self.ids, emb, positions)
            values = reduce(logits).to("cpu")  # [rows, ...]
            for row, j in enumerate(batch):
                results[j] = values[row]
            self.forwards += 1
            self.runs += rows
            if self.on_rows is not None:
                self.on_rows(rows)
        return torch.stack(results) if results else torch.empty(0)
