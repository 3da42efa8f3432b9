"""Neuron pages: for the most active MLP neurons of each layer, their output weights' direct effect
on the vocabulary and where in the probe they fire.

- Which neurons: per layer the TOP_NEURONS whose largest post-activation (`mlp.hook_post`) over the
  probe is largest (the tie rule of distributions.top_k: value, then id).
- Output weights: the neuron's row of the MLP's output projection, read by running that module (the
  one the adapter hooks `mlp.hook_post` on, as input) on the neuron's one-hot vector minus its output
  at zero: W_out[n], [d_model], in the model's own arithmetic, whatever the family stores it as.
  Checked on the run: the module applied to the captured hook_post gives the captured hook_mlp_out.
- Direct effect on the vocabulary: logit change per unit of the neuron's activation through the final
  norm (its scale frozen at the position where the neuron fires most, as the dot-product breakdown
  freezes it; adapter.frozen_final_norm) and the unembedding (adapter.unembed_weight): the
  TOP_TOKENS most promoted and most suppressed tokens. Paths through later layers are not included,
  nor a logit cap (nanochat's softcap bends large logits; the effect is on the raw logit).

Where a neuron fires along the probe is its hook_post column, read by the page from
activations.safetensors (site/report.py), not stored twice.

What this module does not do: know a family (the adapter's hook table and weights), draw or write files.
"""

from __future__ import annotations

import torch

from visualizer.analysis.distributions import token_record, top_k
from visualizer.capture.verify import badness, check
from visualizer.model.base import LoadedModel

FORMAT = 1
TOP_NEURONS = 8  # neurons per layer
TOP_TOKENS = 10  # promoted and suppressed tokens per neuron


def down_projection(loaded: LoadedModel, layer: int) -> torch.nn.Module:
    """The module whose input the adapter captures as blocks.{layer}.mlp.hook_post."""
    name = f"blocks.{layer}.mlp.hook_post"
    for spec in loaded.adapter.hook_specs(loaded.dims):
        if spec.side == "input" and spec.names == (name,):
            return loaded.model.get_submodule(spec.module)
    raise KeyError(f"the adapter captures no module input as {name}")


@torch.no_grad()
def output_rows(module: torch.nn.Module, neurons: list[int], d_mlp: int, device: torch.device) -> torch.Tensor:
    """W_out rows [len(neurons), d_model] of an affine module: module(one-hot) - module(0), float32 CPU."""
    basis = torch.zeros(len(neurons) + 1, d_mlp, device=device)  # the last row stays zero
    basis[torch.arange(len(neurons)), torch.tensor(neurons, dtype=torch.long)] = 1.0
    out = module(basis[None])[0].float()  # [k + 1, d_model]
    return (out[:-1] - out[-1:]).cpu()


@torch.no_grad()
def module_check(loaded: LoadedModel, module: torch.nn.Module, post: torch.Tensor, mlp_out: torch.Tensor) -> dict:
    """The module applied to the captured hook_post [T, d_mlp] against the captured hook_mlp_out."""
    computed = module(post.to(loaded.device)[None])[0].to("cpu", torch.float32)
    return check(computed, mlp_out)


@torch.no_grad()
def neuron_pages(loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> dict:
    """report_data.json's `neuron_pages` (see the module docstring)."""
    adapter, token_str = loaded.adapter, loaded.tokenizer.token_str
    w_u = adapter.unembed_weight(loaded)  # [vocab, d_model]
    final = adapter.final_residual(tensors, loaded.dims)  # [T, d_model]: the stream the final norm reads
    layers, checks = [], []
    for layer in range(loaded.dims.n_layer):
        post = tensors[f"blocks.{layer}.mlp.hook_post"]  # [T, d_mlp]
        module = down_projection(loaded, layer)
        checks.append(module_check(loaded, module, post, tensors[f"blocks.{layer}.hook_mlp_out"]))
        peak, where = post.max(0)  # [d_mlp] each: the largest activation and its position
        values, order = top_k(peak[None], min(TOP_NEURONS, post.shape[-1]))
        ids = order[0].tolist()
        rows = output_rows(module, ids, post.shape[-1], loaded.device)  # [k, d_model]
        positions = [int(where[n]) for n in ids]
        directions = torch.stack([adapter.frozen_final_norm(loaded, final[position])[0](row)
                                  for position, row in zip(positions, rows)])  # [k, d_model]
        effects = directions @ w_u.T  # [k, vocab]: logit change per unit activation (one pass over W_U)
        up_values, up_ids = (t.tolist() for t in top_k(effects, TOP_TOKENS))  # [k][TOP_TOKENS] each
        down_values, down_ids = (t.tolist() for t in top_k(-effects, TOP_TOKENS))
        neurons = []
        for j, (n, value, row, position) in enumerate(zip(ids, values[0].tolist(), rows, positions)):
            neurons.append({
                "neuron": int(n), "max": float(value), "position": position,
                "firing_fraction": float((post[:, n] > 0).double().mean()),
                "output_norm": float(row.double().norm()),
                "promoted": [token_record(token_str, i, effect=v) for v, i in zip(up_values[j], up_ids[j])],
                "suppressed": [token_record(token_str, i, effect=-v) for v, i in zip(down_values[j], down_ids[j])],
            })
        layers.append({"layer": layer, "hook": f"blocks.{layer}.mlp.hook_post", "neurons": neurons})
    worst = max(checks, key=badness) if checks else None
    return {
        "format": FORMAT, "per_layer": TOP_NEURONS, "top_tokens": TOP_TOKENS, "layers": layers,
        "check": {"name": "output projection(hook_post) == hook_mlp_out", **worst,
                  "passed": all(c["passed"] for c in checks), "checked": len(checks)} if worst else None,
    }
