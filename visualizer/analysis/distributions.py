"""Probability distributions over the last axis: THE entropy, KL and Jensen-Shannon divergence (all in
bits), and THE top-k table with its one tie-break rule. Every report, trace, analysis, comparison and
generation figure of these quantities comes from here.

Conventions:
- Distributions are given as log-probabilities `logp` [..., n] (a log-softmax of logits: exact where a
  probability would underflow), or as probabilities where those are the primary numbers (attention
  rows, for JS). A probability of exactly 0 contributes 0 to every sum (0 log 0 = 0).
- Sums over the last axis accumulate in float64; the terms are formed in the input's precision (the
  precision the model computed its logits in). Results are float64 tensors.
- Top-k order: largest first; equal values (compared as the float the table is computed from) are
  ordered by index ascending. The same k entries are chosen whatever the ties: a tie at the k-th
  place keeps the lowest indices. Token tables list only tokens whose probability is not 0 (a
  banned or filtered token is not a candidate).

What this module does not do: compute logits (the adapters), sample (generation/sampling.py), or
round numbers for display (site/).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from visualizer.model.tokenizer import readable

LN2 = math.log(2)
TokenStr = Callable[[int], str]


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """[..., n] logits -> log-softmax over the last axis, in float32 (float64 logits stay float64)."""
    return torch.log_softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def sum_rows_f64(x: torch.Tensor) -> torch.Tensor:
    """[rows, n] float32 (or float64) on the CPU -> [rows] float64 sums over the last axis.

    numpy's reduction casts in small buffers and sums pairwise in one thread: the same bits on every
    machine whatever the thread count, and ~4x faster than torch's row-batched float64 reduction of a
    float32 tensor (a scalar path) on [T, vocab] rows."""
    x = x.detach().cpu().contiguous()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return torch.from_numpy(np.add.reduce(x.numpy(), axis=-1, dtype=np.float64))


def _plogq_sum(p: torch.Tensor, log_ratio: torch.Tensor) -> torch.Tensor:
    """sum over the last axis of p * log_ratio (same shapes), terms with p == 0 counted as 0,
    accumulated in float64. Rows without such a term (0 * -inf = nan) take one plain pass. A NaN
    probability (a model that computed NaN logits) keeps its row's sum NaN: never 0 bits."""
    n = p.shape[-1]
    p2, r2 = p.reshape(-1, n), log_ratio.reshape(-1, n)  # [rows, n]
    total = sum_rows_f64(p2 * r2)  # [rows]
    bad = total.isnan()
    if bad.any():
        pb = p2[bad]
        zero = torch.zeros((), dtype=pb.dtype, device=pb.device)
        total[bad] = torch.where(pb == 0, zero, pb * r2[bad]).sum(-1, dtype=torch.float64)
    return total.reshape(p.shape[:-1])


def entropy_bits(logp: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
    """[..., n] -> [...] float64: H = -sum p log2 p.

    `p` defaults to exp(logp); pass it (with logp = p.log()) when the probabilities themselves are
    the given numbers (an attention row), so the terms are p log p of exactly those."""
    p = logp.exp() if p is None else p
    return -_plogq_sum(p, logp) / LN2


def kl_bits(logp: torch.Tensor, logq: torch.Tensor, p: torch.Tensor | None = None) -> torch.Tensor:
    """[..., n] log-probabilities of p and q -> [...] float64: KL(p || q) = sum p log2(p / q), >= 0.

    `p` defaults to exp(logp); a caller comparing one p with many q passes it once."""
    p = logp.exp() if p is None else p
    return (_plogq_sum(p, logp - logq) / LN2).clamp_min(0)


def js_bits(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """[..., n] probabilities -> [...] float64 Jensen-Shannon divergence (KL of each to their mean,
    averaged), in float64 throughout; in [0, 1], exactly 0 when p == q."""
    p, q = p.double(), q.double()
    m = (p + q) / 2
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
    return ((kl_pm + kl_qm) / 2 / LN2).clamp_min(0)


def top_k(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., n] -> (largest [..., k'], indices [..., k']), k' = min(k, n): by value descending, then
    index ascending (the module's tie rule), the same k' entries whatever the ties.

    torch.topk finds the set in one pass but may split a tie at the k-th value arbitrarily and
    orders equal values arbitrarily; rows where the (k+1)-th value equals the k-th (a tie across
    the cut, rare: exact float ties) are redone with a stable sort, and every row's k' entries are
    put in the rule's order."""
    n = values.shape[-1]
    k = min(k, n)
    flat = values.reshape(-1, n)  # [rows, n]
    top, ids = flat.topk(min(k + 1, n), dim=-1)  # [rows, k (+1)]: one more, to see a tie at the cut
    if k < n:
        crossing = top[:, k] == top[:, k - 1] if k else torch.zeros(len(top), dtype=torch.bool)  # [rows]
        top, ids = top[:, :k], ids[:, :k]
        for row in crossing.nonzero().flatten().tolist():  # the k-th value also lies outside the set
            ids[row] = torch.argsort(flat[row], descending=True, stable=True)[:k]
            top[row] = flat[row, ids[row]]
    if k:
        by_index = ids.argsort(dim=-1)
        ids, top = ids.gather(-1, by_index), top.gather(-1, by_index)
        by_value = top.argsort(dim=-1, descending=True, stable=True)  # stable: equal values keep index order
        ids, top = ids.gather(-1, by_value), top.gather(-1, by_value)
    shape = (*values.shape[:-1], k)
    return top.reshape(shape), ids.reshape(shape)


def token_record(token_str: TokenStr | None, token_id: int, **numbers: float) -> dict:
    """One token as a table row: id, its text ('#id' without a tokenizer), its readable form, numbers."""
    text = token_str(token_id) if token_str else f"#{token_id}"
    return {"id": int(token_id), "token": text, "readable": readable(text), **numbers}


def token_table(logp: torch.Tensor, logits: torch.Tensor, token_str: TokenStr | None, k: int) -> list[list[dict]]:
    """[rows, vocab] log-probabilities (and the logits they are shown with) -> per row the k most
    likely tokens, {id, token, readable, prob, logit}, in the tie rule's order; prob = exp(logp) in
    float64. Tokens of probability 0 are left out, so a row may hold fewer than k."""
    values, ids = top_k(logp, k)  # [rows, k]
    probs = values.double().exp().tolist()
    return [
        [token_record(token_str, i, prob=p, logit=float(logits[r, i])) for p, i in zip(ps, row) if p > 0.0]
        for r, (ps, row) in enumerate(zip(probs, ids.tolist()))
    ]
