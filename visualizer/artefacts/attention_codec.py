"""Attention as text: every encoding of attention probabilities written into a JSON or script file,
and its decoder. All are base64 of little-endian bytes.

- float32 (exact): `encode_float32` / `decode_float32`, {"shape", "data"} (generation.json's rows).
- uint8 (8-bit, 1/255 steps, nearest; each value within 1/510 of the model's):
  - `encode_dense`: [head, T, T] patterns, the causal triangle only when the pattern is causal;
  - `encode_topk`: each row's k largest keys (uint16 positions, uint8 weights) plus the row's
    remaining mass (`rest`), for long inputs;
  - `encode_square`: the first m x m of each head, row-major (the comparison page);
  - `encode_row_scaled`: rows scaled to their own maximum (value = byte / 255 * row max), with the
    maxima as plain numbers (the generation page's rows, where a row's mass is spread thin).
`decode_pattern` / `decode_rest` invert the pattern encodings (the browser's viz.js does the same).

What this module does not do: choose which encoding a page uses (site/viewdata.py and the page
writers), write files, or import torch (pages render without it; CPU tensors are read as arrays).
"""

from __future__ import annotations

import base64

import numpy as np

FLOAT32_ENCODING = "base64 of float32 little-endian, C order, shape [n_layer, n_head, T]"


def b64(array: np.ndarray) -> str:
    """Little-endian bytes of `array`, base64 (ASCII)."""
    a = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return base64.b64encode(a.tobytes()).decode("ascii")


def unb64(text: str, dtype: str) -> np.ndarray:
    """Inverse of `b64`: a flat read-only array of `dtype` ('<f4', '<u2', 'u1')."""
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def quantize(p) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 in 1/255 steps (nearest); NaN (a broken model's) -> 0."""
    return np.clip(np.rint(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=0.0) * 255.0), 0, 255).astype(np.uint8)


def dequantize(text: str) -> np.ndarray:
    """base64 of uint8 codes -> float64 probabilities (code / 255)."""
    return unb64(text, "u1") / 255.0


# --- exact -------------------------------------------------------------------------------------


def encode_float32(t) -> dict:
    """A float32 array or CPU tensor -> {"shape", "data"}: its values exactly (FLOAT32_ENCODING)."""
    return {"shape": list(t.shape), "data": b64(np.asarray(t, dtype="<f4"))}


def decode_float32(entry: dict) -> np.ndarray:
    """Inverse of `encode_float32`: float32 of the entry's shape."""
    return unb64(entry["data"], "<f4").reshape(entry["shape"])


# --- 8-bit -------------------------------------------------------------------------------------


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
    chosen = above | ties
    crowded = np.nonzero(ties.sum(-1) > room[:, 0])[0]  # rows with more ties than room (early causal rows)
    if len(crowded):  # only those keep their earliest ties: exactly k per row
        chosen[crowded] = above[crowded] | (ties[crowded] & (np.cumsum(ties[crowded], axis=-1) <= room[crowded]))
    keys = np.nonzero(chosen)[1].reshape(T, k)  # row-major: sorted by key within each row
    return keys, np.take_along_axis(p, keys, axis=-1)


def encode_topk(pattern: np.ndarray, k: int) -> dict:
    """[head, T, T] -> {'encoding': 'topk', 'k', 'causal', 'heads': [{'keys', 'weights', 'rest'}]}.

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
        keys, values = topk_rows(pattern[h], k)  # ties and order as in float64: the cast is exact
        values = values.astype(np.float64)
        rest = np.clip(1.0 - values.sum(-1), 0.0, 1.0)  # [T]
        heads.append(
            {
                "keys": b64(keys[keep].astype("<u2")),
                "weights": b64(quantize(values[keep])),
                "rest": b64(quantize(rest)),
            }
        )
    return {"encoding": "topk", "k": int(k), "causal": causal, "heads": heads}


def decode_pattern(enc: dict, T: int) -> np.ndarray:
    """Inverse of encode_dense / encode_topk: [head, T, T] float64. For 'topk', unstored keys are 0
    (their total is in `rest`); see decode_rest."""
    out = []
    for head in enc["heads"]:
        p = np.zeros((T, T))
        if enc["encoding"] == "uint8":
            values = dequantize(head)
            if enc["triangle"]:
                rows, cols = np.tril_indices(T)
                p[rows, cols] = values
            else:
                p[:] = values.reshape(T, T)
        else:
            k = enc["k"]
            counts = np.minimum(np.arange(T) + 1, k) if enc["causal"] else np.full(T, k)
            keys = unb64(head["keys"], "<u2").astype(np.int64)
            rows = np.repeat(np.arange(T), counts)
            p[rows, keys] = dequantize(head["weights"])
        out.append(p)
    return np.stack(out)


def decode_rest(enc: dict) -> np.ndarray:
    """[head, T]: the attention mass of the keys a 'topk' encoding did not store."""
    return np.stack([dequantize(h["rest"]) for h in enc["heads"]])


def encode_square(pattern, m: int) -> str:
    """[H, T, T] pattern (array or CPU tensor) -> base64 of uint8 [H, m, m]: its first m queries and
    keys, row-major."""
    return b64(quantize(pattern[:, :m, :m]))


def encode_row_scaled(rows: np.ndarray) -> tuple[str, list[float]]:
    """[..., T] rows -> (base64 of uint8 [n_rows * T], each row's maximum rounded to 7 decimals):
    byte = round(value / row max * 255); an all-zero row stays zero."""
    flat = rows.reshape(-1, rows.shape[-1]).astype(np.float64)  # [n_rows, T]
    peak = flat.max(axis=1)  # [n_rows]
    safe = np.where(peak > 0, peak, 1.0)
    return b64(quantize(flat / safe[:, None])), [round(float(m), 7) for m in peak]
