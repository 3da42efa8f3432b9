"""Activation patching sweeps: each activation of the clean run written, one at a time, into the
corrupt run, and the normalised logit difference of every such run (TransformerLens's names and
cuts, `transformer_lens.patching.get_act_patch_*`):

- resid_pre, attn_out, mlp_out: per (layer, position), `blocks.{l}.hook_resid_pre|hook_attn_out|hook_mlp_out`;
- head_out: per (layer, head), `blocks.{l}.attn.hook_z` of that head at every position (z is
  patched where capture reads it: the input of the attention output projection);
- head_out_by_pos: per (layer, head, position), the same at one position (when the run count
  fits the budget);
- pattern: per (layer, head), the head's attention pattern. A pattern acts on the output only
  through z = pattern @ v, and v at the patched layer is the corrupt run's (nothing before it is
  patched), so the run writes z = clean pattern @ corrupt v (`verify.attention_output`, the
  identity capture checks) into that head's z.

Every sweep also runs two identities per layer, through the same hooks, batches and prefix
shortcut: writing the corrupt run's own values of the layer's activation (everything, every
position) gives the corrupt logits; writing the clean stream at that layer (resid_pre and the
adapter's `stream_inputs`) and the clean values of the activation gives the clean logits.

What this module does not do: run batches (engine.py), ablate (ablation.py) or write anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visualizer.analysis.interventions.engine import Engine, Run
from visualizer.analysis.interventions.hooks import Patch
from visualizer.analysis.interventions.metric import Metric
from visualizer.capture import Cache
from visualizer.capture.verify import attention_output, check
from visualizer.model.base import LoadedModel

Z = "blocks.{l}.attn.hook_z"


@dataclass(frozen=True)
class SweepKind:
    name: str  # TransformerLens's name of the sweep
    axes: tuple[str, ...]
    hook: str  # the capture name patched, '{l}' for the layer
    text: str  # what one cell patched, for the page


KINDS = {
    kind.name: kind
    for kind in (
        SweepKind("resid_pre", ("layer", "position"), "blocks.{l}.hook_resid_pre",
                  "the residual stream entering the block, at one position"),
        SweepKind("attn_out", ("layer", "position"), "blocks.{l}.hook_attn_out", "the attention layer's output, at one position"),
        SweepKind("mlp_out", ("layer", "position"), "blocks.{l}.hook_mlp_out", "the MLP's output, at one position"),
        SweepKind("head_out", ("layer", "head"), Z, "one head's output z, at every position"),
        SweepKind("head_out_by_pos", ("layer", "head", "position"), Z, "one head's output z, at one position"),
        SweepKind("pattern", ("layer", "head"), Z, "one head's attention pattern (every query), through z = pattern @ v"),
    )
}
SWEEPS = tuple(KINDS)
DEFAULT_BUDGET = 4096  # most patched runs head_out_by_pos may take


class Sources:
    """The clean and corrupt captures' activations, moved to the model's device once each."""

    def __init__(self, loaded: LoadedModel, clean: Cache, corrupt: Cache):
        self.loaded = loaded
        self.caches = {"clean": clean, "corrupt": corrupt}
        self.moved: dict[tuple[str, str], torch.Tensor] = {}
        self.kv_index = loaded.adapter.kv_head_index(loaded.dims).to(loaded.device)

    def get(self, run: str, name: str) -> torch.Tensor:
        key = (run, name)
        if key not in self.moved:
            self.moved[key] = self.caches[run][name].to(self.loaded.device)
        return self.moved[key]

    def z_of_pattern(self, layer: int, pattern_run: str, v_run: str) -> torch.Tensor:
        """[T, n_head, d_head]: z with `pattern_run`'s pattern and `v_run`'s values at `layer`."""
        b = f"blocks.{layer}.attn"
        return attention_output(self.get(pattern_run, f"{b}.hook_pattern"), self.get(v_run, f"{b}.hook_v"), self.kv_index)

    def source(self, kind: SweepKind, layer: int, run: str, v_run: str) -> torch.Tensor:
        """What a patch of `kind` at `layer` writes: `run`'s activation (a pattern sweep: z from
        `run`'s pattern and `v_run`'s values)."""
        if kind.name == "pattern":
            return self.z_of_pattern(layer, run, v_run)
        return self.get(run, kind.hook.format(l=layer))

    def stream(self, layer: int, run: str) -> list[Patch]:
        """Patches that make the forward from block `layer` on `run`'s: resid_pre and the stream inputs."""
        names = [f"blocks.{layer}.hook_resid_pre", *self.loaded.adapter.stream_inputs(self.loaded.dims, layer)]
        return [Patch(name, everywhere(self.loaded.device), self.get(run, name)) for name in names]


def everywhere(device) -> torch.Tensor:
    return torch.ones((), dtype=torch.bool, device=device)


def one_hot(shape: tuple[int, ...], index: tuple[int, ...], device) -> torch.Tensor:
    where = torch.zeros(shape, dtype=torch.bool, device=device)
    where[index] = True
    return where


def cells(kind: SweepKind, n_layer: int, n_head: int, T: int) -> list[tuple[int, ...]]:
    sizes = {"layer": n_layer, "position": T, "head": n_head}
    grid = [()]
    for axis in kind.axes:
        grid = [(*cell, i) for cell in grid for i in range(sizes[axis])]
    return grid


def location(kind: SweepKind, cell: tuple[int, ...], n_head: int, T: int, device) -> torch.Tensor:
    """Which entries of the activation [T, ...] one cell replaces (bool, broadcastable)."""
    if kind.axes == ("layer", "position"):
        return one_hot((T, 1), (cell[1], 0), device)  # [T, 1] against [T, d_model]
    if kind.axes == ("layer", "head"):
        return one_hot((1, n_head, 1), (0, cell[1], 0), device)  # [1, nh, 1] against z [T, nh, d_head]
    return one_hot((T, n_head, 1), (cell[2], cell[1], 0), device)  # (layer, head, position)


def sweep_runs(kind: SweepKind, sources: Sources, n_head: int, T: int) -> tuple[list[tuple[int, ...]], list[Run]]:
    dims, device = sources.loaded.dims, sources.loaded.device
    grid = cells(kind, dims.n_layer, n_head, T)
    written = {layer: sources.source(kind, layer, "clean", "corrupt") for layer in range(dims.n_layer)}
    runs = [Run(cell[0], [Patch(kind.hook.format(l=cell[0]), location(kind, cell, n_head, T, device), written[cell[0]])])
            for cell in grid]
    return grid, runs


def identity_runs(kind: SweepKind, sources: Sources) -> tuple[list[Run], list[Run]]:
    """Per layer: (the corrupt run's own values written back, the clean stream and clean values)."""
    device, n_layer = sources.loaded.device, sources.loaded.dims.n_layer
    own, clean = [], []
    for layer in range(n_layer):
        name = kind.hook.format(l=layer)
        own.append(Run(layer, [Patch(name, everywhere(device), sources.source(kind, layer, "corrupt", "corrupt"))]))
        clean.append(Run(layer, [*sources.stream(layer, "clean"),
                                 Patch(name, everywhere(device), sources.source(kind, layer, "clean", "clean"))]))
    return own, clean


def worst(checks: list[dict]) -> dict:
    """The worst of per-layer checks, with the count checked (as capture's verification)."""
    top = max(checks, key=lambda c: c["max_abs_error"] / c["tolerance"])
    return {**top, "passed": all(c["passed"] for c in checks), "checked": len(checks)}


def identities(engine: Engine, kind: SweepKind, sources: Sources) -> dict[str, dict]:
    own, clean = identity_runs(kind, sources)
    last = engine.run(own + clean, lambda logits: logits[:, -1].float())  # [2 * n_layer, vocab]
    n = len(own)
    corrupt_last = sources.caches["corrupt"]["logits"][-1]
    clean_last = sources.caches["clean"]["logits"][-1]
    return {
        "nothing patched == corrupt logits": worst([check(last[i], corrupt_last) for i in range(n)]),
        "every activation of a layer patched == clean logits": worst([check(last[n + i], clean_last) for i in range(n)]),
    }


def run_sweep(engine: Engine, sources: Sources, metric: Metric, name: str, budget: int = DEFAULT_BUDGET) -> dict:
    """One sweep: {axes, hook, values (normalised metric, nested by axes), runs, forwards, verification},
    or {axes, hook, skipped} when head_out_by_pos would pass the budget."""
    kind = KINDS[name]
    dims = sources.loaded.dims
    T = engine.T
    record = {"axes": list(kind.axes), "hook": kind.hook, "text": kind.text}
    count = len(cells(kind, dims.n_layer, dims.n_head, T))
    if name == "head_out_by_pos" and count > budget:
        record["skipped"] = (f"{dims.n_layer} layers x {dims.n_head} heads x {T} positions = {count:,} patched runs, "
                             f"more than the budget of {budget:,} (--budget)")
        return record
    forwards, runs_before = engine.forwards, engine.runs
    grid, runs = sweep_runs(kind, sources, dims.n_head, T)
    logit_diffs = engine.run(runs, lambda logits: metric.logit_diff(logits[:, -1]))  # [cells]
    shape = tuple(dims.n_layer if a == "layer" else dims.n_head if a == "head" else T for a in kind.axes)
    values = metric.normalise(logit_diffs).reshape(shape) + 0.0  # + 0.0: no -0.0 in the file
    record["values"] = values.tolist()
    record["verification"] = identities(engine, kind, sources)
    record["runs"] = engine.runs - runs_before
    record["forwards"] = engine.forwards - forwards
    return record
