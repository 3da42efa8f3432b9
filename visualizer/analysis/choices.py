"""Choose in the page: what the page needs from the model to show, at any position it is asked,
the logit breakdown and the input attribution of that position's top candidates (or of a contrast
pair of them), precomputed here because they need the weights or a backward pass.

- Breakdown: at every position p, each of the CANDIDATES most likely next tokens' raw logit
  ln_final(x_p) . W_U[t] split exactly over the residual stream's components (the adapter's
  `residual_components`: embeddings, every head, attention biases, MLPs) plus the final norm's
  constant, its scale frozen at p (report_data.dot_product_breakdown's rule, at every position).
  The page gets a pair's A - B breakdown by subtraction: each part is linear in W_U[t].
- Input attribution: gradient x input at the adapter's embedding hook (attribution.py's
  definition) of each candidate's logit at p, over positions 0..p; the gradient is linear in the
  output, so A - B is the difference of two rows too. It needs a backward pass: positions are taken
  from the last one backwards while the estimated cost (6 x parameters x token rows, as
  attribution.estimated_flops counts) stays within FLOP_BUDGET; the others get none (the page says
  so and shows attention rollout there, which needs no target).
- The --target token, when it is not among its position's candidates, is added there as one more.
- Attention rollout (attribution.attention_rollout) of every position, stored like attention
  patterns (artefacts/attention_codec.py): 8-bit rows, or each row's ROLLOUT_KEYS largest keys and
  the rest's mass beyond ROLLOUT_DENSE_MAX_T positions.

Batched: the (position, candidate) rows of neighbouring positions run as one batch over the prefix
up to the last of those positions (exact: the model is causal and later positions are cut), at
most MAX_ROWS token rows per batch. Stored compactly (base64): the breakdown as float16 (three
significant digits; the sum check is made here in float64 first), the attribution as int8 codes
per row, scaled by the row's largest |value|.

What this module does not do: know a family (the adapter's components, norm and forward), compute
files.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import visualizer.artefacts.attention_codec as codec
from visualizer.analysis.attribution import attention_rollout
from visualizer.analysis.distributions import log_probs, token_record, top_k
from visualizer.capture import Cache
from visualizer.model.base import LoadedModel

FORMAT = 1
CANDIDATES = 5  # top next tokens per position with a breakdown and an attribution
FLOP_BUDGET = 5e11  # gradient x input at every position costs about 6 x params x (token rows); beyond it, fewer positions
MAX_ROWS = 4096  # token rows per batched forward (rows x prefix length)
ROLLOUT_DENSE_MAX_T = 256  # rollout rows stored whole (8-bit) up to this length, else their ROLLOUT_KEYS largest keys
ROLLOUT_KEYS = 32


def candidates(logits: torch.Tensor, target: tuple[int, int] | None, logp: torch.Tensor | None = None
               ) -> tuple[list[list[int]], bool]:
    """logits [T, vocab] (or their log_probs `logp`, when the caller has them) -> (per position the
    CANDIDATES most likely ids, in the next-token tables' order, and whether the target (position,
    id) was added at its position, not being among them)."""
    values, order = top_k(log_probs(logits) if logp is None else logp, CANDIDATES)  # [T, C]
    rows = [[i for i, v in zip(ids, vs) if v != -math.inf] for ids, vs in zip(order.tolist(), values.tolist())]
    if target is None or target[1] in rows[target[0]]:
        return rows, False
    rows[target[0]] = rows[target[0]] + [target[1]]
    return rows, True


@torch.no_grad()
def breakdown(loaded: LoadedModel, tensors: dict[str, torch.Tensor], rows: list[list[int]]) -> tuple[list[str], np.ndarray, list, float]:
    """(component names, parts [sum of row lengths, n_components + 1] float64 (the last column the
    norm's constant), raw logits per position per candidate, the largest |parts' sum - raw logit|)."""
    adapter = loaded.adapter
    final = adapter.final_residual(tensors, loaded.dims)  # [T, d_model]
    components = adapter.residual_components(loaded, tensors)  # name -> [T, d_model]
    names = list(components)
    w_u = adapter.unembed_weight(loaded)  # [vocab, d_model]
    out, raws, worst = [], [], 0.0
    for position, ids in enumerate(rows):
        if not ids:
            raws.append([])
            continue
        linear, constant = adapter.frozen_final_norm(loaded, final[position])
        pieces = linear(torch.stack([components[n][position] for n in names])).double()  # [n_components, d_model]
        normalized = (linear(final[position]) + constant).double()  # [d_model] == ln_final(x_p)
        rows_u = w_u[ids].double()  # [k, d_model]
        parts = torch.cat([pieces @ rows_u.T, (constant.double() @ rows_u.T)[None]]).T  # [k, n_components + 1]
        raw = rows_u @ normalized  # [k]
        error = (parts.sum(-1) - raw).abs().max().item()
        worst = error if math.isnan(error) else max(worst, error)
        out.append(parts.numpy())
        raws.append(raw.tolist())
    return names, np.concatenate(out) if out else np.zeros((0, len(names) + 1)), raws, worst


def batches(rows: list[list[int]], positions: list[int]) -> list[list[int]]:
    """Neighbouring positions grouped so that (their rows) x (the prefix up to the last) <= MAX_ROWS."""
    groups, current = [], []
    for position in sorted(positions, reverse=True):  # the longest prefix first
        length = (current[0] if current else position) + 1
        if current and (sum(len(rows[p]) for p in current) + len(rows[position])) * length > MAX_ROWS:
            groups.append(sorted(current))
            current = []
        current.append(position)
    if current:
        groups.append(sorted(current))
    return groups


def planned_positions(loaded: LoadedModel, rows: list[list[int]]) -> tuple[list[int], float]:
    """The positions whose attribution fits in FLOP_BUDGET, from the last backwards, and their cost."""
    params = float(loaded.card.get("n_params") or 0)
    chosen, cost = [], 0.0
    for position in range(len(rows) - 1, -1, -1):
        step = 6.0 * params * len(rows[position]) * (position + 1)
        if cost + step > FLOP_BUDGET:
            break
        chosen.append(position)
        cost += step
    return sorted(chosen), cost


def gradient_x_input(loaded: LoadedModel, tensors: dict[str, torch.Tensor], ids: list[int], rows: list[list[int]],
                     positions: list[int]) -> dict[int, torch.Tensor]:
    """position -> [len(rows[p]), p + 1] float64: gradient x input of each candidate's logit at p."""
    emb = tensors[loaded.adapter.embedding_hook]  # [T, d_model]
    token_ids = torch.tensor(ids, dtype=torch.long)
    out = {}
    for group in batches(rows, positions):
        length = group[-1] + 1
        which = [(i, p, t) for i, p in enumerate(group) for t in rows[p]]  # (index in group, position, token)
        x = emb[:length].to(loaded.device)[None].expand(len(which), -1, -1).clone().requires_grad_(True)  # [B, L, d]
        with torch.enable_grad():
            logits = loaded.adapter.forward_from_embeddings(loaded, token_ids[:length], x, group)  # [B, len(group), vocab]
            picked = logits[torch.arange(len(which)), [i for i, _, _ in which], [t for _, _, t in which]]  # [B]
            (grad,) = torch.autograd.grad(picked.sum(), x)
        values = (grad.double().cpu() * emb[:length].double()).sum(-1)  # [B, L]
        for b, (_, p, _) in enumerate(which):
            out.setdefault(p, []).append(values[b, : p + 1])
    return {p: torch.stack(v) for p, v in out.items()}


def int8_rows(rows: torch.Tensor) -> tuple[list[float], np.ndarray]:
    """[k, n] -> (per row its largest |value|, int8 codes: value ~ code * scale / 127)."""
    v = np.nan_to_num(rows.numpy(), nan=0.0, posinf=0.0, neginf=0.0)
    scales = np.abs(v).max(-1) if v.size else np.zeros(len(v))
    safe = np.where(scales > 0, scales, 1.0)
    return [float(s) for s in scales], np.clip(np.rint(v / safe[:, None] * 127), -127, 127).astype(np.int8)


def choices(loaded: LoadedModel, cache: Cache, ids: list[int], target: tuple[int, int, str] | None = None,
            logp: torch.Tensor | None = None) -> dict:
    """report_data.json's `choices` (see the module docstring). target: (position, id, how it was
    chosen) of the run's --target, or None; logp: log_probs of the logits [T, vocab] when the caller
    has them."""
    tensors = cache.tensors
    rows, added = candidates(tensors["logits"], target[:2] if target else None, logp)
    names, parts, raws, error = breakdown(loaded, tensors, rows)
    positions, cost = planned_positions(loaded, rows)
    attributed = gradient_x_input(loaded, tensors, ids, rows, positions) if positions else {}
    scales, codes = [], []
    for p in positions:
        s, c = int8_rows(attributed[p])
        scales.append(s)
        codes.append(c.ravel())
    patterns = [tensors[f"blocks.{layer}.attn.hook_pattern"] for layer in range(loaded.dims.n_layer)]
    rollout = attention_rollout(patterns).float().numpy()[None]  # [1, T, T]: rows sum to 1, causal
    T = rollout.shape[-1]
    return {
        "format": FORMAT,
        "candidates": CANDIDATES,
        "ids": rows,
        "components": names,
        "breakdown": {"dtype": "float16", "columns": len(names) + 1, "data": codec.b64(parts.astype(np.float16)),
                      "raw": [[float(v) for v in r] for r in raws], "max_error": error},
        "attribution": {"method": "gradient_x_input", "input": loaded.adapter.embedding_hook, "positions": positions,
                        "scales": scales, "codes": codec.b64(np.concatenate(codes)) if codes else "",
                        "flops": cost, "budget": FLOP_BUDGET, "max_rows": MAX_ROWS},
        "rollout": codec.encode_dense(rollout) if T <= ROLLOUT_DENSE_MAX_T else codec.encode_topk(rollout, ROLLOUT_KEYS),
        "target": {**token_record(loaded.tokenizer.token_str, target[1]), "position": target[0], "chosen": target[2],
                   "added": added} if target else None,
    }
