"""Word maps: every token drawn readable (whitespace symbols, punctuation, single characters,
hostile strings), deterministic bytes, no metadata, no crash on empty input."""

from __future__ import annotations

from PIL import Image

from tests.support.nanogpt import DEFAULT_VOCAB, HOSTILE_VOCAB
from tests.support.figures import png_chunks
from visualizer.model.tokenizer import readable
from visualizer.figures.wordmaps import weights_from_records, word_map


def test_char_vocabulary_keeps_single_characters_and_whitespace(tmp_path):
    weights = {readable(ch): 1.0 + i % 5 for i, ch in enumerate(DEFAULT_VOCAB)}
    drawn = word_map(weights, tmp_path / "char.png", title="char vocabulary")
    assert set(drawn) == set(weights)  # nothing dropped: '↵', '␣', '!', ',', 'a', ...
    assert {"↵", "␣", "!", ",", "'", "a"} <= set(drawn)
    assert drawn[0] in {k for k, v in weights.items() if v == 5.0}  # largest first
    with Image.open(tmp_path / "char.png") as image:
        assert image.size == (640, 300 + 40)


def test_hostile_tokens_do_not_crash_and_stay_readable(tmp_path):
    weights = {readable(t): float(i + 1) for i, t in enumerate(HOSTILE_VOCAB)}
    drawn = word_map(weights, tmp_path / "hostile.png", title="<script>alert(1)</script>", subtitle="&amp; ${x}")
    assert {"<script>", "&amp;", "↵", "⇥", "<U+4E2D>", "😀", "<U+2400>", "<U+200B>"} <= set(drawn)
    assert len(drawn) == len(weights)
    png_chunks(tmp_path / "hostile.png")


def test_same_inputs_same_bytes_and_no_metadata(tmp_path):
    weights = {readable(ch): float(len(DEFAULT_VOCAB) - i) for i, ch in enumerate(DEFAULT_VOCAB)}
    word_map(weights, tmp_path / "a.png", seed=3)
    word_map(dict(reversed(list(weights.items()))), tmp_path / "b.png", seed=3)  # dict order must not matter
    word_map(weights, tmp_path / "c.png", seed=4)
    a = (tmp_path / "a.png").read_bytes()
    assert a == (tmp_path / "b.png").read_bytes()
    assert a != (tmp_path / "c.png").read_bytes()  # the seed drives the layout
    assert not {"tEXt", "zTXt", "iTXt", "tIME"} & set(png_chunks(tmp_path / "a.png"))


def test_nothing_to_draw_still_writes_a_map(tmp_path):
    assert word_map({"a": 0.0, "b": -1.0, "c": float("nan")}, tmp_path / "none.png", title="empty") == []
    with Image.open(tmp_path / "none.png") as image:
        assert image.size == (640, 340)
    assert word_map({"only": 0.3}, tmp_path / "one.png") == ["only"]


def test_records_become_readable_summed_positive_weights():
    records = [
        {"token": "\n", "readable": "↵", "prob": 0.5},
        {"token": "\n", "readable": "↵", "prob": 0.25},
        {"token": " ", "prob": 0.1},  # no 'readable': made here
        {"token": "中", "readable": "中", "prob": 0.2},
        {"token": "x", "readable": "x", "prob": 0.0},
    ]
    assert weights_from_records(records) == {"↵": 0.75, "␣": 0.1, "<U+4E2D>": 0.2}
