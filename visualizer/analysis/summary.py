"""Pure functions over a trace's tensors: what each attention head does, how the residual stream and
the MLPs behave, how sure the model is at each position and how early it knows. Written to
`analysis.json` at run time; a stored trace can be analysed again from its files alone.

Conventions (shown on the page too):
- Attention figures average over query positions 1..T-1; position 0 has a single key, so every
  figure there is trivially 1 or 0. Masked (future) keys carry exactly zero weight.
- A head is labelled previous-token, first-token or self when its mean attention mass on that key
  is at least LABEL_THRESHOLD and higher than its mass on the other two; the label carries the
  figure, the threshold and how often that key is the row's largest. Probes under 3 tokens get no
  labels (previous and first token are the same key).
- Kurtosis is Pearson's (a Gaussian has 3), over all positions and dimensions of one stream.
- An MLP neuron fires at a position when its post-activation (`mlp.hook_post`) is > 0. For GELU
  that is the same as a positive pre-activation (GELU's small negative lobe counts as not firing);
  for ReLU-like activations, post == 0 is not firing.

What this module does not do: load a model, run a forward pass, read or write files, or lay out
HTML (templates/analysis.html shows the result).
"""

from __future__ import annotations

from typing import Callable

import torch

from visualizer.analysis.distributions import entropy_bits, log_probs, token_table, top_k

FORMAT = 1
LABEL_THRESHOLD = 0.5  # mean attention mass on the labelled key (over query positions 1..T-1)
TOP_KEYS = 3  # sparsity: the mass in this many largest keys of a row
TOP_TOKENS = 5  # next-token candidates per position
TOP_NEURONS = 3  # largest MLP neurons per position
DEAD_IDS = 256  # at most this many never-firing neuron ids listed per layer (the count is exact)
LABELS = (("previous-token", "prev_mass"), ("first-token", "first_mass"), ("self", "self_mass"))


# ------------------------------------------------------------------------------------- attention


def head_stats(pattern: torch.Tensor) -> list[dict]:
    """pattern [head, query_pos, key_pos] (rows sum to 1, causal) -> per head: mean entropy (bits
    and as a fraction of the row's maximum), top-1 and top-3 mass, mass on the previous token, the
    first token and itself, mean distance (query - key) weighted by attention, and a label."""
    H, T, _ = pattern.shape
    if T < 2:
        return [{"head": h, "label": None} for h in range(H)]
    Q = pattern[:, 1:, :].float()  # [H, T-1, T]: queries 1..T-1 (float32: per-row sums of <= T terms)
    q = torch.arange(1, T)  # [T-1] query positions
    rows = torch.arange(T - 1)
    entropy = entropy_bits(Q.log(), Q)  # [H, T-1] bits
    max_entropy = torch.log2((q + 1).double())  # [T-1]: uniform over the q+1 visible keys
    mean_key = (Q @ torch.arange(T, dtype=torch.float32)).double()  # [H, T-1]: attention-weighted key position
    figures = {
        "entropy_bits": entropy,
        "entropy_fraction": entropy / max_entropy,
        "top1_mass": Q.max(-1).values,
        "top3_mass": Q.topk(min(TOP_KEYS, T), dim=-1).values.sum(-1),
        "prev_mass": Q[:, rows, q - 1],
        "first_mass": Q[:, :, 0],
        "self_mass": Q[:, rows, q],
        "mean_distance": q.double() - mean_key,  # sum_k P[q, k] (q - k); future keys carry no weight
    }
    argmax = Q.argmax(-1)  # [H, T-1]
    argmax_is = {"prev_mass": argmax == (q - 1), "first_mass": argmax == 0, "self_mass": argmax == q}
    heads = []
    for h in range(H):
        stats = {"head": h, **{name: float(v[h].double().mean()) for name, v in figures.items()}}
        stats["label"] = label_head(stats, T, {k: float(v[h].double().mean()) for k, v in argmax_is.items()})
        heads.append(stats)
    return heads


def label_head(stats: dict, positions: int, argmax_fraction: dict[str, float]) -> dict | None:
    """previous-token / first-token / self when that mass is >= LABEL_THRESHOLD and the largest."""
    if positions < 3:
        return None
    label, figure = max(LABELS, key=lambda lf: stats[lf[1]])
    if stats[figure] < LABEL_THRESHOLD:
        return None
    return {
        "label": label,
        "figure": figure,
        "value": stats[figure],
        "threshold": LABEL_THRESHOLD,
        "argmax_fraction": argmax_fraction[figure],  # share of query rows whose largest key is this one
    }


def attention_section(tensors: dict[str, torch.Tensor], n_layer: int) -> dict | None:
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layer)]
    if not all(n in tensors for n in names):
        return None
    heads = []
    for layer, name in enumerate(names):
        for stats in head_stats(tensors[name]):
            heads.append({"layer": layer, **stats})
    counts: dict[str, int] = {}
    for h in heads:
        if h["label"]:
            counts[h["label"]["label"]] = counts.get(h["label"]["label"], 0) + 1
    return {"heads": heads, "label_counts": dict(sorted(counts.items())), "label_threshold": LABEL_THRESHOLD,
            "top_keys": TOP_KEYS}


# ----------------------------------------------------------------------------------- activations


def stream_stats(x: torch.Tensor) -> dict:
    """x [pos, d_model] -> mean, std, max, max |x|, Pearson kurtosis, and the dimension with the
    largest mean |x| over positions (outlier dimensions show up here)."""
    x = x.double()
    centred = x - x.mean()
    m2 = centred.square().mean()
    per_dim = x.abs().mean(0)  # [d_model]
    return {
        "mean": float(x.mean()),
        "std": float(m2.sqrt()),
        "max": float(x.max()),
        "max_abs": float(x.abs().max()),
        "kurtosis": float(centred.pow(4).mean() / m2.square()) if m2 > 0 else None,
        "top_dim": int(per_dim.argmax()),
        "top_dim_mean_abs": float(per_dim.max()),
    }


def residual_section(tensors: dict[str, torch.Tensor], n_layer: int) -> list[dict] | None:
    """The stream entering layer 0 (embeddings) and after every layer."""
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layer)]
    if not all(n in tensors for n in names):
        return None
    return [{"hook": n, "after_layer": i - 1 if i else None, **stream_stats(tensors[n])} for i, n in enumerate(names)]


def mlp_layer(post: torch.Tensor) -> dict:
    """post [pos, d_mlp] -> never-firing neurons (post <= 0 at every position) and the largest
    neurons at each position."""
    never = (post <= 0).all(0)  # [d_mlp]
    ids = never.nonzero().flatten().tolist()
    return {
        "d_mlp": int(post.shape[-1]),
        "never_fire": len(ids),
        "never_fire_fraction": len(ids) / post.shape[-1],
        "never_fire_ids": ids[:DEAD_IDS],
        "firing_fraction": float((post > 0).double().mean()),
        "largest": top_neurons(post, TOP_NEURONS),
    }


def top_neurons(post: torch.Tensor, k: int) -> list[list[dict]]:
    """post [pos, d_mlp] -> per position the k largest post-activations, [{neuron, value}], in the
    tie rule of distributions.top_k (value descending, then neuron id ascending)."""
    values, order = top_k(post, k)  # [pos, k]
    return [[{"neuron": int(n), "value": float(v)} for v, n in zip(vs, ns)] for vs, ns in zip(values.tolist(), order.tolist())]


def mlp_section(tensors: dict[str, torch.Tensor], n_layer: int) -> list[dict] | None:
    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(n_layer)]
    if not all(n in tensors for n in names):
        return None
    return [{"layer": layer, "hook": n, **mlp_layer(tensors[n])} for layer, n in enumerate(names)]


# ---------------------------------------------------------------------------------------- logits


def logits_section(logits: torch.Tensor, token_ids: list[int], token_str: Callable[[int], str] | None,
                   final: dict | None = None) -> dict:
    """logits [pos, vocab] -> entropy (bits) and top tokens per position, and the loss (nats) of
    the probe's own next token at positions 0..T-2 (how well the model predicts the probe).

    final: report_data.json's `final` (the same logits' entropy and token table, top_k deep) when
    there is one: its entropies and the first TOP_TOKENS candidates of each row are these numbers
    (the tie rule of distributions.top_k makes a deeper table's head the shallower table), so they
    are read, not computed again; a table shallower than TOP_TOKENS is not used."""
    logp = log_probs(logits)  # [T, V]
    T = logits.shape[0]
    nxt = torch.tensor(token_ids[1:T], dtype=torch.long)
    losses = (-logp[torch.arange(T - 1), nxt].double()).tolist() if T > 1 else []
    depth = min(TOP_TOKENS, logits.shape[-1])
    if final and len(final.get("topk", [])) == T and max(map(len, final["topk"]), default=0) >= depth:
        entropy, top = final["entropy_bits"], [row[:depth] for row in final["topk"]]
    else:
        entropy, top = entropy_bits(logp).tolist(), token_table(logp, logits, token_str, TOP_TOKENS)
    return {
        "entropy_bits": entropy,
        "top": top,
        "loss_nats": losses,  # position t: -log p(probe token t+1)
        "mean_loss_nats": sum(losses) / len(losses) if losses else None,
    }


def top_id(row: list[dict]) -> int | None:
    """The top candidate's id of a token-table row; None for a row without candidates (its
    logits were not finite)."""
    return row[0]["id"] if row else None


def lens_section(report_data: dict | None) -> list[dict] | None:
    """Logit-lens convergence from report_data.json's lens: per layer the mean KL to the final
    distribution (bits) and the share of positions whose top-1 already matches the final top-1;
    per position, the first layer from which the top-1 matches at every later layer."""
    if not report_data or not report_data.get("logit_lens"):
        return None
    final_top = [top_id(row) for row in report_data["final"]["topk"]]
    lens = report_data["logit_lens"]
    # a row without candidates (non-finite logits) agrees with nothing
    agree = [[f is not None and top_id(row) == f for row, f in zip(entry["topk"], final_top)]
             for entry in lens]  # [L][T]
    layers = []
    for entry, hits in zip(lens, agree):
        kl = entry["kl_to_final"]
        layers.append({
            "layer": entry["layer"],
            "hook": entry["hook"],
            "mean_kl_bits": sum(kl) / len(kl),
            "last_kl_bits": kl[-1],
            "top1_agreement": sum(hits) / len(hits),
            "last_top1": entry["topk"][-1][0]["readable"] if entry["topk"][-1] else None,
        })
    converged = []
    for pos in range(len(final_top)):
        at = None
        for layer in range(len(lens) - 1, -1, -1):
            if not agree[layer][pos]:
                break
            at = lens[layer]["layer"]
        converged.append(at)
    return {"layers": layers, "converged_at": converged}


# ------------------------------------------------------------------------------------------ all


def analyze(tensors: dict[str, torch.Tensor], trace: dict, report_data: dict | None = None,
            token_str: Callable[[int], str] | None = None) -> dict:
    """Everything above for one trace. Sections whose tensors were not kept are None, with a note."""
    n_layer = trace["dims"]["n_layer"]
    notes = []
    result = {
        "format": FORMAT,
        "attention": attention_section(tensors, n_layer),
        "residual": residual_section(tensors, n_layer),
        "mlp": mlp_section(tensors, n_layer),
        "logits": logits_section(tensors["logits"], trace["token_ids"], token_str, (report_data or {}).get("final"))
        if "logits" in tensors else None,
        "logit_lens": lens_section(report_data),
    }
    for key, needs in (("attention", "attn"), ("residual", "resid"), ("mlp", "mlp"), ("logits", "logits")):
        if result[key] is None:
            notes.append(f"{key}: not available (the trace does not hold the '{needs}' tensors)")
    if result["logit_lens"] is None:
        notes.append("logit_lens: not available (needs report_data.json with a logit lens)")
    result["notes"] = notes
    return result
