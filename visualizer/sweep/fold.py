"""Running means and variances (Welford), folded one probe at a time on the driver.

A `Running` holds, for a nested list of numbers of a fixed shape (per layer, or per layer x head),
the count, mean and sum of squared deviations of every element; None values (a figure a probe does
not have, e.g. an induction score without a repeated token) are skipped element by element.

What this module does not do: keep any probe's values (only the running sums), or compute figures.
"""

from __future__ import annotations

import math


class Running:
    def __init__(self):
        self.count = self.mean = self.m2 = None  # nested lists shaped like the values

    def add(self, values) -> None:
        if values is None:
            return
        if self.count is None:
            self.count, self.mean, self.m2 = _fill(values, 0), _fill(values, 0.0), _fill(values, 0.0)
        self.count, self.mean, self.m2 = _update(self.count, self.mean, self.m2, values)

    def result(self) -> dict | None:
        """{'n', 'mean', 'std'} (population std) with the values' shape; None when nothing was added."""
        if self.count is None:
            return None
        return {"n": self.count, "mean": _finish(self.count, self.mean, lambda n, m: m if n else None),
                "std": _finish(self.count, self.m2, lambda n, s: math.sqrt(s / n) if n else None)}


def _fill(values, fill):
    return [_fill(v, fill) for v in values] if isinstance(values, list) else fill


def _update(count, mean, m2, value):
    if isinstance(value, list):
        triples = [_update(c, m, s, v) for c, m, s, v in zip(count, mean, m2, value, strict=True)]
        return [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return count, mean, m2
    count += 1
    delta = value - mean
    mean += delta / count
    return count, mean, m2 + delta * (value - mean)


def _finish(count, values, fn):
    if isinstance(values, list):
        return [_finish(c, v, fn) for c, v in zip(count, values)]
    return fn(count, values)
