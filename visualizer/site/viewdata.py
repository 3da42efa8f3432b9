"""Compact data for the report's interactive views: what `assets/viz.js` decodes in the browser.

Attention patterns [head, query_pos, key_pos] (rows sum to 1) are stored one of two ways:
- `uint8`: every entry of the causal triangle (or of the full square when a row attends to a later
  position) rounded to 1/255 steps, base64; each entry is within 1/510 of the model's value.
- `topk`: for inputs longer than DENSE_MAX_T, only the TOPK_KEYS largest keys of each row
  (uint16 key positions, uint8 weights in 1/255 steps) plus the row's remaining mass (uint8).
Thumbnails are the pattern max-pooled to at most THUMB_SIZE x THUMB_SIZE cells (uint8).

Data files are classic scripts that add one entry to a global (`window.__vizLayers[l] = {...}`)
so that the page can load them from file:// by adding a <script> tag.

What this module does not do: read report folders (render.py), or write HTML (site.py, templates).
"""

from __future__ import annotations

import base64

import numpy as np

from visualizer.site.common import json_for_script

DENSE_MAX_T = 256  # longer inputs store top-k keys per attention row
TOPK_KEYS = 16
THUMB_SIZE = 40
PROB_DIGITS = 6  # probabilities in data files: 6 decimals (1e-6 absolute)
VALUE_DIGITS = 4  # logits, cosines, activations, norms shown in tooltips


def b64(array: np.ndarray) -> str:
    """Little-endian bytes of `array`, base64 (ASCII)."""
    a = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return base64.b64encode(a.tobytes()).decode("ascii")


def quantize(p: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 in 1/255 steps (nearest)."""
    return np.clip(np.rint(np.asarray(p, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def rounded(values, digits: int) -> list[float]:
    """Plain floats rounded for a data file (-0.0 written as 0.0, so bytes do not depend on sign of zero)."""
    return [round(float(v), digits) + 0.0 for v in np.asarray(values, dtype=np.float64).ravel()]


def is_causal(pattern: np.ndarray) -> bool:
    """True when no query attends a later key (the upper triangle is exactly zero)."""
    return not np.any(np.triu(pattern, 1))


def encode_dense(pattern: np.ndarray) -> dict:
    """[head, T, T] -> {'encoding': 'uint8', 'triangle', 'heads': [base64 x head]}.

    With `triangle` true row i holds keys 0..i (the causal triangle, T(T+1)/2 bytes per head);
    otherwise T*T bytes per head, row-major."""
    n_head, T, _ = pattern.shape
    triangle = is_causal(pattern)
    if triangle:
        rows, cols = np.tril_indices(T)
        heads = [b64(quantize(pattern[h][rows, cols])) for h in range(n_head)]
    else:
        heads = [b64(quantize(pattern[h])) for h in range(n_head)]
    return {"encoding": "uint8", "triangle": triangle, "heads": heads}


def topk_rows(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, T] -> (keys [T, k], values [T, k]): each row's k largest entries, ties going to the
    earlier key, listed by key position. Keys a causal row cannot see (weight 0, later) are never
    chosen before the ones it can. Linear time per row (a partition, not a sort)."""
    T = p.shape[-1]
    kth = -np.partition(-p, k - 1, axis=-1)[:, k - 1 : k]  # [T, 1]: the k-th largest value of each row
    above = p > kth  # [T, T]: surely kept
    ties = p == kth
    room = k - above.sum(-1, keepdims=True)  # how many of the ties each row still takes
    chosen = above | (ties & (np.cumsum(ties, axis=-1) <= room))  # exactly k per row, earliest ties
    keys = np.nonzero(chosen)[1].reshape(T, k)  # row-major: sorted by key within each row
    return keys, np.take_along_axis(p, keys, axis=-1)


def encode_topk(pattern: np.ndarray, k: int = TOPK_KEYS) -> dict:
    """[head, T, T] -> {'encoding': 'topk', 'k', 'heads': [{'keys', 'weights', 'rest'}]}.

    Row i stores n_i = min(k, i + 1) entries when the pattern is causal (else k): key positions
    as uint16, weights as uint8 (1/255 steps), and `rest` = the mass of the keys not stored."""
    n_head, T, _ = pattern.shape
    if T > 65535:
        raise ValueError(f"top-k attention encoding stores key positions as uint16; {T} positions is too many")
    k = min(k, T)
    causal = is_causal(pattern)
    counts = np.minimum(np.arange(T) + 1, k) if causal else np.full(T, k)
    keep = np.arange(k)[None, :] < counts[:, None]  # [T, k]
    heads = []
    for h in range(n_head):
        keys, values = topk_rows(pattern[h].astype(np.float64), k)
        rest = np.clip(1.0 - values.sum(-1), 0.0, 1.0)  # [T]
        heads.append(
            {
                "keys": b64(keys[keep].astype("<u2")),
                "weights": b64(quantize(values[keep])),
                "rest": b64(quantize(rest)),
            }
        )
    return {"encoding": "topk", "k": int(k), "causal": causal, "heads": heads}


def encode_pattern(pattern: np.ndarray) -> dict:
    """The encoding the page uses for this input length (see the module docstring)."""
    T = pattern.shape[-1]
    return encode_dense(pattern) if T <= DENSE_MAX_T else encode_topk(pattern)


def thumbnail(pattern: np.ndarray, size: int = THUMB_SIZE) -> tuple[int, str]:
    """[T, T] -> (S, base64 uint8 [S, S]) with S = min(T, size): the max over each block of cells."""
    T = pattern.shape[-1]
    S = min(T, size)
    edges = (np.arange(S + 1) * T) // S  # block b covers positions edges[b] .. edges[b+1]-1
    rows = np.maximum.reduceat(pattern, edges[:-1], axis=0)  # [S, T]
    cells = np.maximum.reduceat(rows, edges[:-1], axis=1)  # [S, S]
    return S, b64(quantize(cells))


def data_script(global_name: str, key, obj) -> str:
    """A classic script adding `obj` under `key` to `window[global_name]` (JSON, '<' escaped)."""
    target = f"window.{global_name}"
    return (
        f"{target} = {target} || {{}};\n"
        f"{target}[{json_for_script(key)}] = {json_for_script(obj)};\n"
    )


# --- decoding, for tests and for anyone reading a data file in Python -------------------------


def decode_pattern(enc: dict, T: int) -> np.ndarray:
    """Inverse of encode_pattern: [head, T, T] float64. For 'topk', unstored keys are 0 (their
    total is in `rest`); see decode_rest."""
    out = []
    for head in enc["heads"]:
        p = np.zeros((T, T))
        if enc["encoding"] == "uint8":
            values = np.frombuffer(base64.b64decode(head), dtype=np.uint8) / 255.0
            if enc["triangle"]:
                rows, cols = np.tril_indices(T)
                p[rows, cols] = values
            else:
                p[:] = values.reshape(T, T)
        else:
            k = enc["k"]
            counts = np.minimum(np.arange(T) + 1, k) if enc["causal"] else np.full(T, k)
            keys = np.frombuffer(base64.b64decode(head["keys"]), dtype="<u2").astype(np.int64)
            weights = np.frombuffer(base64.b64decode(head["weights"]), dtype=np.uint8) / 255.0
            rows = np.repeat(np.arange(T), counts)
            p[rows, keys] = weights
        out.append(p)
    return np.stack(out)


def decode_rest(enc: dict) -> np.ndarray:
    """[head, T]: the attention mass of the keys a 'topk' encoding did not store."""
    return np.stack([np.frombuffer(base64.b64decode(h["rest"]), dtype=np.uint8) / 255.0 for h in enc["heads"]])
