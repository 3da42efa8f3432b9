"""Summary statistics of captured tensors (shape, mean, std, min, max, rms), for trace.json.

What this module does not do: anything that needs the model (report_data.py), analysis of what
the tensors mean (analysis.py), plotting (plots.py) or layout (site.py).
"""

from __future__ import annotations

import math

import torch


def tensor_stats(t: torch.Tensor) -> dict:
    """Shape and summary statistics over the finite entries (masked scores are -inf).

    Sums accumulate in float64 without copying the tensor to float64 (attention scores of a long
    probe are hundreds of MB)."""
    t = t.float()
    low, high = torch.aminmax(t) if t.numel() else (torch.zeros(()), torch.zeros(()))  # NaN if any is NaN
    every = math.isfinite(low.item()) and math.isfinite(high.item())  # one pass, no bool tensor
    finite = t if every else t[torch.isfinite(t)]
    n = finite.numel()
    stats = {"shape": list(t.shape), "numel": t.numel(), "finite": n}
    if n:
        mean = finite.sum(dtype=torch.float64).item() / n
        mean_square = finite.square().sum(dtype=torch.float64).item() / n
        stats.update(
            mean=mean,
            std=math.sqrt(max(mean_square - mean * mean, 0.0)),
            min=low.item() if every else finite.min().item(),
            max=high.item() if every else finite.max().item(),
            rms=math.sqrt(mean_square),
        )
    return stats


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {name: tensor_stats(t) for name, t in tensors.items()}
