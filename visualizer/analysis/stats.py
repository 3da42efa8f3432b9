"""Summary statistics of captured tensors (shape, mean, std, min, max, rms), for trace.json.

One pass per tensor over chunks of CHUNK entries: min and max, then the sums of the entries and of
their squares (squares formed in float32, as the model's numbers are, both sums accumulated in
float64 by numpy's pairwise reduction: the same bits whatever the thread count). A chunk holding a
non-finite entry (masked scores are -inf) is reduced over its finite entries alone. No temporary is
larger than one chunk, so the statistics of a 2 GB cache allocate a few MB, not another 2 GB.

What this module does not do: anything that needs the model (report_data.py), analysis of what
the tensors mean (summary.py), plotting (figures/) or layout (site/).
"""

from __future__ import annotations

import math

import numpy as np
import torch

CHUNK = 1 << 22  # entries per pass (16 MB of float32)


def tensor_stats(t: torch.Tensor) -> dict:
    """Shape and summary statistics over the finite entries (masked scores are -inf); with no
    finite entry, shape and counts only."""
    flat = t.detach().to("cpu", torch.float32).reshape(-1).numpy()  # a view when t is float32 and contiguous
    n, total, squares, low, high = 0, 0.0, 0.0, math.inf, -math.inf
    square = np.empty(min(CHUNK, flat.size), dtype=np.float32)
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        part_low, part_high = part.min(), part.max()  # NaN when any entry is NaN
        if not (math.isfinite(part_low) and math.isfinite(part_high)):
            part = part[np.isfinite(part)]
            if not part.size:
                continue
            part_low, part_high = part.min(), part.max()
        out = square[: part.size]
        np.multiply(part, part, out=out)
        n += part.size
        total += float(np.add.reduce(part, dtype=np.float64))
        squares += float(np.add.reduce(out, dtype=np.float64))
        low, high = min(low, float(part_low)), max(high, float(part_high))
    stats = {"shape": list(t.shape), "numel": t.numel(), "finite": n}
    if n:
        mean, mean_square = total / n, squares / n
        stats.update(mean=mean, std=math.sqrt(max(mean_square - mean * mean, 0.0)), min=low, max=high,
                     rms=math.sqrt(mean_square))
    return stats


def summarize(tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {name: tensor_stats(t) for name, t in tensors.items()}
