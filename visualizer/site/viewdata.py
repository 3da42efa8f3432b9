"""Compact data for the report's interactive views: what `assets/viz.js` decodes in the browser.

Attention patterns [head, query_pos, key_pos] (rows sum to 1) are stored one of two ways, both
encoded by artefacts/attention_codec.py (which also decodes them):
- `uint8`: every entry of the causal triangle (or of the full square when a row attends to a later
  position) rounded to 1/255 steps, base64; each entry is within 1/510 of the model's value.
- `topk`: for inputs longer than DENSE_MAX_T, only the TOPK_KEYS largest keys of each row
  (uint16 key positions, uint8 weights in 1/255 steps) plus the row's remaining mass (uint8).
A neuron's activation along the probe is int8 codes scaled by its largest |value| (signed_codes).
Thumbnails (the model view's tiles) are the pattern max-pooled to at most THUMB_SIZE x THUMB_SIZE
cells (uint8): each cell the largest weight it covers, so a single strong link stays visible.

Data files are classic scripts that add one entry to a global (`window.__vizLayers[l] = {...}`)
so that the page can load them from file:// by adding a <script> tag. A number the model did not
compute as a finite value (a model with NaN weights) is written as JavaScript's own `NaN`,
`Infinity` or `-Infinity` (scripts, not JSON files); the views draw it grey and write it as such.

What this module does not do: read report folders (render.py), or write HTML (site.py, templates).
"""

from __future__ import annotations

import numpy as np

import visualizer.artefacts.attention_codec as codec
from visualizer.site.common import json_for_script

DENSE_MAX_T = 256  # longer inputs store top-k keys per attention row
TOPK_KEYS = 16
THUMB_SIZE = 64  # the model view's tiles: at most 64 x 64 max-pooled cells (16 x 16 positions each at 1,024 tokens)
PROB_DIGITS = 6  # probabilities in data files: 6 decimals (1e-6 absolute)
VALUE_DIGITS = 4  # logits, cosines, activations, norms shown in tooltips


def rounded(values, digits: int) -> list[float]:
    """Plain floats rounded for a data file (-0.0 written as 0.0, so bytes do not depend on sign of zero)."""
    return [round(float(v), digits) + 0.0 for v in np.asarray(values, dtype=np.float64).ravel()]


def encode_pattern(pattern: np.ndarray) -> dict:
    """The encoding the page uses for this input length (see the module docstring)."""
    T = pattern.shape[-1]
    return codec.encode_dense(pattern) if T <= DENSE_MAX_T else codec.encode_topk(pattern, TOPK_KEYS)


def thumbnail(pattern: np.ndarray, size: int = THUMB_SIZE) -> tuple[int, str]:
    """[T, T] -> (S, base64 uint8 [S, S]) with S = min(T, size): the max over each block of cells."""
    T = pattern.shape[-1]
    S = min(T, size)
    edges = (np.arange(S + 1) * T) // S  # block b covers positions edges[b] .. edges[b+1]-1
    rows = np.maximum.reduceat(pattern, edges[:-1], axis=0)  # [S, T]
    cells = np.maximum.reduceat(rows, edges[:-1], axis=1)  # [S, S]
    return S, codec.b64(codec.quantize(cells))


def signed_codes(values: np.ndarray) -> tuple[float, str]:
    """[n] values -> (scale, base64 int8 codes): value ~ code * scale / 127, scale = max |value| (0
    when every value is 0 or not finite; those come back as 0). Each value within scale / 254."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(v).max()) if v.size else 0.0
    codes = np.rint(v / scale * 127.0) if scale > 0 else np.zeros_like(v)
    return round(scale, VALUE_DIGITS + 2) + 0.0, codec.b64(np.clip(codes, -127, 127).astype(np.int8))


def data_script(global_name: str, key, obj) -> str:
    """A classic script adding `obj` under `key` to `window[global_name]` (JSON, '<' escaped)."""
    target = f"window.{global_name}"
    return (
        f"{target} = {target} || {{}};\n"
        f"{target}[{json_for_script(key)}] = {json_for_script(obj)};\n"
    )
