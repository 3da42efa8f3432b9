"""What the report shows that needs the model's weights, computed once at run time and stored as
`report_data.json`, so a report folder can be rendered again from its files alone.

Contents: next-token candidates at every position, the logit lens after every layer (and, as
`logit_lens_embed`, of the residual stream entering block 0), the
dot-product breakdown of the top candidates at the last position (by dimension and by component,
the final norm's scale frozen), nearest vocabulary neighbours of each probe token, the most active
MLP neurons, residual-stream norms, the head types (analysis/head_types.py: it captures a repeated
random-token sequence besides the probe), the neuron pages (analysis/neurons.py: the top neurons'
direct effect on the vocabulary), the per-position choices (analysis/choices.py: every position's
top candidates' breakdown and, within a budget, their input attribution). Every number comes from the adapter's view of the real weights
and the captured tensors.

What this module does not do: draw (plots.py) or lay out pages (render.py / site.py).
"""

from __future__ import annotations

import math

import torch

from visualizer.analysis.choices import choices
from visualizer.analysis.head_types import detect as head_types
from visualizer.analysis.neurons import neuron_pages
from visualizer.analysis.distributions import entropy_bits, kl_bits, log_probs, token_record, token_table, top_k
from visualizer.analysis.summary import top_neurons
from visualizer.capture import Cache
from visualizer.memory import row_chunks
from visualizer.model.base import LoadedModel

LENS_K = 5
DLA_CANDIDATES = 5
DLA_DIMENSIONS = 16
NEIGHBOURS = 10
NEURONS = 5


def lens(loaded: LoadedModel, residuals: list[torch.Tensor | None], final_logits: torch.Tensor, final_logp: torch.Tensor
         ) -> list[dict]:
    """Residual streams [T, d_model] (None: the final residual) each read through the final norm
    and unembedding: per stream its top tokens, entropy and KL(final || lens) at every position.
    final_logits [T, vocab] and
    final_logp (their log_probs) are the model's output: a stream that is the one entering the
    final norm (the adapter's `final_residual`) reads them instead of unembedding it again (they
    are what the final norm and unembedding made of it, checked against a plain forward).

    Streamed over row chunks (memory.row_chunks), every stream inside a chunk: the [rows, vocab]
    temporaries stay small and are reused, and the final distribution's probabilities are formed
    once per chunk. Each row's numbers are those of the whole-tensor computation."""
    T, vocab = final_logp.shape
    entries = [{"topk": [], "entropy_bits": [], "kl_to_final": []} for _ in residuals]
    for rows in row_chunks(T, vocab * 4):
        final_rows = final_logp[rows]  # [rows, vocab]
        final_p = final_rows.exp()
        for entry, residual in zip(entries, residuals):
            if residual is None:  # the final residual: the model's own logits
                logits, logp = final_logits[rows], final_rows
            else:
                logits = loaded.adapter.logits_from_residual(loaded, residual[rows])  # [rows, vocab]
                logp = log_probs(logits)
            entry["topk"] += token_table(logp, logits, loaded.tokenizer.token_str, LENS_K)
            entry["entropy_bits"] += entropy_bits(logp).tolist()
            entry["kl_to_final"] += kl_bits(final_rows, logp, final_p).tolist()
    return entries


def logit_lens(loaded: LoadedModel, tensors: dict[str, torch.Tensor], final_logp: torch.Tensor) -> tuple[list[dict], dict]:
    """The lens after every layer (blocks.{l}.hook_resid_post), and of the residual stream entering
    block 0 (the embedding step's output, the first row of TransformerLens's accumulated residual:
    what the embeddings alone predict); final_logp: log_probs of the logits [T, vocab]."""
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(loaded.dims.n_layer)] + ["blocks.0.hook_resid_pre"]
    final = loaded.adapter.final_residual(tensors, loaded.dims)
    streams = [None if tensors[hook] is final else tensors[hook] for hook in hooks]
    *layers, embed = lens(loaded, streams, tensors["logits"], final_logp)
    return ([{"layer": layer, "hook": hooks[layer], **entry} for layer, entry in enumerate(layers)],
            {"hook": hooks[-1], **embed})


@torch.no_grad()
def dot_product_breakdown(loaded: LoadedModel, tensors: dict[str, torch.Tensor], final_top: list[dict]) -> dict:
    """Each top candidate's logit at the last position as ln_final(x) . W_U[t], split two ways."""
    adapter, dims = loaded.adapter, loaded.dims
    resid = adapter.final_residual(tensors, dims)  # [T, d_model]
    position = resid.shape[0] - 1
    x = resid[position]  # [d_model]
    linear, constant = adapter.frozen_final_norm(loaded, x)
    normalized = linear(x) + constant  # [d_model] == ln_final(x)
    components = adapter.residual_components(loaded, tensors)  # name -> [T, d_model]
    names = list(components)
    pieces = torch.stack([linear(components[n][position]) for n in names])  # [n_components, d_model]
    w_u = adapter.unembed_weight(loaded)  # [vocab, d_model]
    cap = adapter.logit_cap(loaded)
    candidates = []
    for cand in final_top[:DLA_CANDIDATES]:
        row = w_u[cand["id"]].double()  # [d_model]
        products = normalized.double() * row  # [d_model]: ln_final(x)[i] * W_U[t, i]
        order = top_k(products.abs(), DLA_DIMENSIONS)[1]
        values = (pieces.double() @ row).tolist()  # [n_components]
        const = float(constant.double() @ row)
        raw = float(products.sum())
        total = sum(values) + const
        candidates.append(
            {
                "id": cand["id"],
                "token": cand["token"],
                "readable": cand["readable"],
                "prob": cand["prob"],
                "logit": cand["logit"],
                "raw_logit": raw,
                "cap": cap,
                "by_dimension": [{"dim": int(i), "product": float(products[i])} for i in order.tolist()],
                "dimension_sum": raw,
                "by_component": [{"name": n, "value": v} for n, v in zip(names, values)],
                "constant": const,
                "component_sum": total,
                "error": abs(total - raw),
            }
        )
    return {"position": position, "candidates": candidates}


@torch.no_grad()
def neighbours(loaded: LoadedModel, ids: list[int]) -> list[list[dict]]:
    """Nearest rows of the token embedding (cosine) to each probe token's row, itself excluded."""
    w_e = loaded.adapter.embedding_weight(loaded)  # [vocab, d_model]
    unit = w_e / w_e.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unique = sorted(set(ids))
    cosine = unit[unique] @ unit.T  # [n_unique, vocab], one matrix product for the whole probe
    cosine[torch.arange(len(unique)), torch.tensor(unique)] = -math.inf
    values, order = top_k(cosine, min(NEIGHBOURS, cosine.shape[-1] - 1))
    table = {
        token_id: [token_record(loaded.tokenizer.token_str, i, cosine=float(c)) for c, i in zip(vs, os)]
        for token_id, vs, os in zip(unique, values.tolist(), order.tolist())
    }
    return [table[token_id] for token_id in ids]


def neurons(loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> dict[str, list]:
    """layer -> per position the NEURONS largest MLP post-activations (summary.top_neurons)."""
    return {str(layer): top_neurons(tensors[f"blocks.{layer}.mlp.hook_post"], NEURONS) for layer in range(loaded.dims.n_layer)}


def residual_norms(loaded: LoadedModel, tensors: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    out = {}
    for layer in range(loaded.dims.n_layer):
        for hook in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post"):
            name = f"blocks.{layer}.{hook}"
            out[name] = torch.linalg.vector_norm(tensors[name].double(), dim=-1).tolist()
    return out


def build_report_data(loaded: LoadedModel, cache: Cache, ids: list[int], top_k: int = 10,
                      target: tuple[int, int, str] | None = None) -> dict:
    """report_data.json of one run; target: the run's --target (position, id, how it was chosen), which
    the page's per-position choices add as a candidate where it is not one (analysis/choices.py)."""
    tensors = cache.tensors
    logits = tensors["logits"]  # [T, vocab]
    logp = log_probs(logits)
    final_topk = token_table(logp, logits, loaded.tokenizer.token_str, top_k)
    layers, embed = logit_lens(loaded, tensors, logp)
    return {
        "positions": int(logits.shape[0]),
        "final": {"topk": final_topk, "entropy_bits": entropy_bits(logp).tolist()},
        "logit_lens": layers,
        "logit_lens_embed": embed,
        "dla": dot_product_breakdown(loaded, tensors, final_topk[-1]),
        "neighbours": neighbours(loaded, ids),
        "neurons": neurons(loaded, tensors),
        "resid_norms": residual_norms(loaded, tensors),
        "head_types": head_types(loaded, cache, ids),
        "neuron_pages": neuron_pages(loaded, tensors),
        "choices": choices(loaded, cache, ids, target, logp),
    }
