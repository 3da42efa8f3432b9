"""Non-finite numbers in the run's JSON files: JSON has no NaN or infinity, so a broken model's
NaN, inf and -inf are written as the strings "nan", "inf" and "-inf" (`finite_json`), and every
reader that computes or formats with a stored number takes it through `number`, which reads those
strings back as floats. A report rendered from its files and one rendered in the run see the same
values.

Torch-free on purpose: the page renderer (site/) and the figures use it.
What this module does not do: write files (artefacts/trace.py's `dumps` does).
"""

from __future__ import annotations

import math

NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}  # str(float) of each -> the float


def finite_json(obj):
    """`obj` with every non-finite float replaced by its string ("nan", "inf", "-inf")."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def number(value) -> float:
    """A stored number as a float: ints and floats as they are, "nan"/"inf"/"-inf" as those floats;
    None (no value) is NaN. Anything else is a ValueError (a field that should hold a number)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return math.nan
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    raise ValueError(f"expected a number, found {value!r}")


def stored(value):
    """`value` with the strings "nan", "inf", "-inf" read back as floats; anything else unchanged
    (for code that meets numbers and other values alike, such as a template's filters)."""
    return NON_FINITE[value] if isinstance(value, str) and value in NON_FINITE else value


def is_finite(value) -> bool:
    """True for a stored number that is finite (False for "nan", "inf", None)."""
    try:
        return math.isfinite(number(value))
    except ValueError:
        return False
