"""attention_codec: each encoding round-trips (exactly, or within half a step), and the 8-bit codes are
the ones the torch formula gives (round half to even, clamp), ties included."""

from __future__ import annotations

import base64

import numpy as np
import torch

import visualizer.artefacts.attention_codec as codec


def rows(shape, seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).random(shape)
    return (x / x.sum(-1, keepdims=True)).astype(np.float32)


def test_float32_round_trip_is_exact_for_arrays_and_tensors():
    a = rows((3, 2, 9))
    entry = codec.encode_float32(a)
    assert entry["shape"] == [3, 2, 9]
    assert np.array_equal(codec.decode_float32(entry), a)
    t = torch.from_numpy(a)
    assert codec.encode_float32(t) == entry
    assert codec.decode_float32(entry).dtype == np.dtype("<f4")


def test_b64_is_little_endian_whatever_the_input_byte_order():
    keys = np.array([1, 258, 65535], dtype=">u2")
    assert base64.b64decode(codec.b64(keys)) == bytes([1, 0, 2, 1, 255, 255])
    assert codec.unb64(codec.b64(keys), "<u2").tolist() == [1, 258, 65535]


def test_quantize_rounds_half_to_even_like_torch_and_clamps():
    p = np.array([0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5, 1.0, 1.2, -0.1])
    expected = (torch.from_numpy(p) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    assert np.array_equal(codec.quantize(p), expected)
    assert codec.quantize(p).tolist() == [0, 0, 2, 2, 128, 255, 255, 0]
    assert np.array_equal(codec.dequantize(codec.b64(codec.quantize(p))), codec.quantize(p) / 255.0)


def test_square_encoding_round_trips_within_half_a_step():
    pattern = torch.from_numpy(rows((2, 6, 6), seed=1))
    text = codec.encode_square(pattern, 4)
    decoded = codec.dequantize(text).reshape(2, 4, 4)
    assert np.abs(decoded - pattern[:, :4, :4].double().numpy()).max() <= 0.5 / 255 + 1e-12
    old = (pattern[:, :4, :4].double() * 255).round().clamp(0, 255).to(torch.uint8)  # the comparison page's formula
    assert base64.b64decode(text) == old.contiguous().numpy().tobytes()


def test_row_scaled_encoding_round_trips_within_half_a_step_of_each_row_maximum():
    attention = rows((2, 3, 11), seed=2)
    attention[1, 2] = 0.0  # an all-zero row stays zero (no division by its maximum)
    text, peaks = codec.encode_row_scaled(attention)
    assert len(peaks) == 6 and peaks[-1] == 0.0
    codes = codec.unb64(text, "u1").reshape(6, 11)
    decoded = codes / 255.0 * np.array(peaks)[:, None]
    assert np.abs(decoded - attention.reshape(6, 11)).max() <= max(peaks) / 510 + 1e-6
    assert (codes.max(axis=1)[:-1] == 255).all() and not codes[-1].any()


def test_dense_and_topk_round_trip():
    pattern = np.tril(rows((2, 5, 5), seed=3))
    pattern /= pattern.sum(-1, keepdims=True)
    dense = codec.encode_dense(pattern)
    assert dense["triangle"]
    assert np.abs(codec.decode_pattern(dense, 5) - pattern).max() <= 0.5 / 255 + 1e-9
    top = codec.encode_topk(pattern, 2)
    decoded, rest = codec.decode_pattern(top, 5), codec.decode_rest(top)
    assert ((decoded > 0).sum(-1) <= 2).all()
    assert np.abs(decoded.sum(-1) + rest - 1).max() <= 3 / 510
