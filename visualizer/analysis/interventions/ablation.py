"""Ablation on one probe (the clean one): every head's output z and every MLP's output replaced by
zero or by its mean (over the probe's positions, or over every position of a dataset), and
knock-outs of single attention edges; each with its effect on the target logit (the answer token
at the last position) and on the loss (mean next-token cross-entropy over the probe).

A knock-out of edge (query q, key k) of head h at layer l removes that key from the query's
softmax: the pattern is derived again from the run's captured q and k with the adapter's mask
and that one entry masked out (`attention.derive`, the one derivation), and the head's z becomes
that pattern @ v (`verify.attention_output`). Nothing before layer l is patched, so q, k and v at
layer l are the probe's own.

What this module does not do: run batches (engine.py) or choose the probe (the pipeline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from visualizer.analysis.distributions import log_probs
from visualizer.analysis.interventions.engine import Engine, Run
from visualizer.analysis.interventions.hooks import Patch
from visualizer.analysis.interventions.sweeps import Z, everywhere, one_hot, worst
from visualizer.capture import Cache, attention
from visualizer.capture.verify import ABS_TOL, attention_output
from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel

MLP = "blocks.{l}.hook_mlp_out"
KNOCKOUT = re.compile(r"(\d+)\.(\d+):(-?\d+):(-?\d+)")


@dataclass(frozen=True)
class Knockout:
    layer: int
    head: int
    query: int
    key: int


def parse_knockout(text: str, loaded: LoadedModel, T: int) -> Knockout:
    """'L.H:Q:K' (positions may count from the end, -1 the last) -> a checked Knockout."""
    match = KNOCKOUT.fullmatch(text.strip())
    flag = f"--knockout {text}"
    if not match:
        raise VisualizerError(f"{flag}: expected LAYER.HEAD:QUERY:KEY, e.g. 1.0:7:3")
    layer, head, query, key = (int(g) for g in match.groups())
    dims = loaded.dims
    if not 0 <= layer < dims.n_layer or not 0 <= head < dims.n_head:
        raise VisualizerError(f"{flag}: the model has layers 0..{dims.n_layer - 1} and heads 0..{dims.n_head - 1}")
    for what, value in (("query", query), ("key", key)):
        if not -T <= value < T:
            raise VisualizerError(f"{flag}: {what} position {value} is outside the probe's {T} positions")
    query, key = query % T, key % T
    allowed = loaded.adapter.attention_mask(layer, T, torch.device("cpu"))[query]  # [T] keys the query sees
    if not allowed[key]:
        raise VisualizerError(f"{flag}: query {query} does not attend key {key} (the attention mask hides it)")
    if int(allowed.sum()) < 2:
        raise VisualizerError(f"{flag}: key {key} is the only key query {query} sees; knocking it out leaves nothing")
    return Knockout(layer, head, query, key)


def positional_means(cache: Cache, n_layer: int) -> tuple[dict[str, torch.Tensor], int]:
    """Sums over positions of every layer's z and mlp_out (float64), and the positions counted."""
    sums = {}
    for layer in range(n_layer):
        for hook in (Z, MLP):
            name = hook.format(l=layer)
            sums[name] = cache[name].double().sum(0)  # z: [nh, d_head]; mlp_out: [d_model]
    return sums, int(cache["logits"].shape[0])


def mean_activations(caches: list[Cache], n_layer: int) -> dict[str, torch.Tensor]:
    """name -> the activation's mean over every position of every cache (float32)."""
    total, count = {}, 0
    for cache in caches:
        sums, positions = positional_means(cache, n_layer)
        for name, value in sums.items():
            total[name] = total.get(name, 0) + value
        count += positions
    return {name: (value / count).float() for name, value in total.items()}


def knocked_out_z(loaded: LoadedModel, cache: Cache, knockout: Knockout) -> torch.Tensor:
    """[T, n_head, d_head]: every head's z at the layer with the edge masked out of the pattern."""
    dims, adapter, layer = loaded.dims, loaded.adapter, knockout.layer
    b = f"blocks.{layer}.attn"
    q, k, v = cache[f"{b}.hook_q"], cache[f"{b}.hook_k"], cache[f"{b}.hook_v"]  # [T, nh|nkv, d_head]
    kv_index = adapter.kv_head_index(dims)
    mask = adapter.attention_mask(layer, q.shape[0], torch.device("cpu")).clone()  # [T, T]
    mask[knockout.query, knockout.key] = False
    _, pattern = attention.derive(q, k[:, kv_index], adapter.attention_scale(dims, layer), mask)  # [nh, T, T]
    return attention_output(pattern, v, kv_index)


def target_and_loss(ids: torch.Tensor, answer: int):
    """reduce for Engine.run over every position: logits [rows, T, vocab] -> [rows, 2] (the answer's
    logit at the last position, the mean next-token cross-entropy; NaN for a one-token probe)."""
    def reduce(logits: torch.Tensor) -> torch.Tensor:
        target = logits[:, -1, answer].double()
        if logits.shape[1] < 2:
            return torch.stack([target, torch.full_like(target, float("nan"))], 1)
        lp = log_probs(logits[:, :-1])  # [rows, T-1, vocab]
        nll = -lp.gather(-1, ids[1:].expand(logits.shape[0], -1)[..., None])[..., 0]  # [rows, T-1]
        return torch.stack([target, nll.double().mean(1)], 1)
    return reduce


def ablation_runs(loaded: LoadedModel, means: dict[str, torch.Tensor]) -> tuple[list[dict], list[Run]]:
    dims, device = loaded.dims, loaded.device
    zero = torch.zeros((), device=device)
    rows, runs = [], []
    for layer in range(dims.n_layer):
        z, mlp = Z.format(l=layer), MLP.format(l=layer)
        for head in range(dims.n_head):
            where = one_hot((1, dims.n_head, 1), (0, head, 0), device)  # [1, nh, 1] against z [T, nh, d_head]
            for kind, source in (("zero", zero), ("mean", means[z].to(device)[None])):
                rows.append({"component": f"L{layer}.H{head}", "layer": layer, "head": head, "kind": kind})
                runs.append(Run(layer, [Patch(z, where, source)]))
        for kind, source in (("zero", zero), ("mean", means[mlp].to(device)[None])):
            rows.append({"component": f"L{layer}.mlp", "layer": layer, "head": None, "kind": kind})
            runs.append(Run(layer, [Patch(mlp, everywhere(device), source)]))
    return rows, runs


def effects(rows: list[dict], values: torch.Tensor, baseline: dict) -> list[dict]:
    out = []
    for row, (target, loss) in zip(rows, values.tolist()):
        loss = None if loss != loss else loss  # NaN: no next token to score
        out.append({**row, "target_logit": target, "delta_target_logit": target - baseline["target_logit"],
                    "loss": loss, "delta_loss": None if loss is None else loss - baseline["loss"]})
    return out


def run_ablation(engine: Engine, loaded: LoadedModel, cache: Cache, ids: list[int], answer: int,
                 data: list[Cache] | None = None, knockouts: list[Knockout] = ()) -> dict:
    """The ablation table and the knock-outs on the probe whose capture is `cache` (engine's probe)."""
    idx = torch.tensor(ids, dtype=torch.long, device=loaded.device)
    reduce = target_and_loss(idx, answer)
    logits = cache["logits"]  # [T, vocab]
    base = reduce(logits[None].to(loaded.device))[0].tolist()
    baseline = {"target_logit": base[0], "loss": None if base[1] != base[1] else base[1]}
    means = mean_activations(data if data else [cache], loaded.dims.n_layer)
    forwards, runs_before = engine.forwards, engine.runs
    rows, runs = ablation_runs(loaded, means)
    ko_rows = []
    for ko in knockouts:
        where = one_hot((1, loaded.dims.n_head, 1), (0, ko.head, 0), loaded.device)
        runs.append(Run(ko.layer, [Patch(Z.format(l=ko.layer), where, knocked_out_z(loaded, cache, ko).to(loaded.device))]))
        weight = float(cache[f"blocks.{ko.layer}.attn.hook_pattern"][ko.head, ko.query, ko.key])
        ko_rows.append({"component": f"L{ko.layer}.H{ko.head}", "layer": ko.layer, "head": ko.head, "query": ko.query,
                        "key": ko.key, "kind": "knockout", "weight": weight})
    # the identity: nothing patched, from every layer's cached prefix, gives the probe's own logits
    plain = [Run(layer) for layer in range(loaded.dims.n_layer)]
    values = engine.run(runs, reduce, every_position=True)
    expected = logits.to(loaded.device)
    errors = engine.run(plain, lambda out: (out - expected).abs().amax(dim=(1, 2)), every_position=True)
    tolerance = ABS_TOL * max(1.0, float(logits.abs().max()))  # as verify.check
    identity = worst([{"max_abs_error": e, "tolerance": tolerance, "passed": e <= tolerance} for e in errors.tolist()])
    return {
        "probe": "clean",
        "means_over": "every position of the ablation data" if data else "every position of the clean probe",
        "data_probes": len(data) if data else 0,
        "baseline": baseline,
        "rows": effects(rows, values[: len(rows)], baseline),
        "knockouts": effects(ko_rows, values[len(rows):], baseline),
        "runs": engine.runs - runs_before,
        "forwards": engine.forwards - forwards,
        "verification": {"nothing patched == clean logits (every position)": identity},
    }
