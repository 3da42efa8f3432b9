"""Static figures: what is planned, that PNGs are written, valid, deterministic and bounded, and
that colour scales read right (diverging symmetric about 0, one scale for all heads)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from tests.support.nanogpt import HOSTILE_VOCAB
from tests.support.figures import capture_inputs, png_chunks
import visualizer.figures.palette as palette
import visualizer.figures.plan as plots
import visualizer.figures.raster as raster
from visualizer.figures.glyphs import displayable

PROBE = "first citizen:\nhear me, all!"  # 27 characters of DEFAULT_VOCAB
LAYERS, HEADS = 2, 2


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    trace, tensors, data = capture_inputs(folder, PROBE, n_layer=LAYERS, n_head=HEADS, n_embd=32, block_size=32, bias=True)
    return trace, tensors, data, plots.plan_figures(trace, tensors, data)


@pytest.fixture(scope="module")
def rendered(small, tmp_path_factory):
    """The small report's figures drawn twice: in parallel, then in this process."""
    jobs = small[3]
    first, second = tmp_path_factory.mktemp("fig1"), tmp_path_factory.mktemp("fig2")
    figures = plots.render_figures(first, jobs, workers=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = plots.render_figures(second, jobs, workers=1)
    return figures, again, first, second, caught


def by_key(jobs):
    return {job.figure.key: job for job in jobs}


def test_plan_has_every_view_of_every_section(small):
    trace, tensors, data, jobs = small
    keys = set(by_key(jobs))
    expected = {"hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "embeddings.neighbours",
                "embeddings.neighbours.map", "ln_final.hook_normalized", "logits", "final.topk", "final.logit_lens",
                "final.next_token.map", "final.dla.by_component", "final.dla.by_dimension"}
    for layer in range(LAYERS):
        b = f"blocks.{layer}"
        expected |= {f"{b}.{n}" for n in ("ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
                                          "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "hook_attn_out",
                                          "hook_resid_mid", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post",
                                          "mlp.hook_post.top_neurons", "hook_mlp_out", "hook_resid_post", "resid_norms",
                                          "logit_lens.map")}
        expected |= {f"{b}.attn.hook_pattern.H{h}" for h in range(HEADS)}  # T <= PER_HEAD_MAX_T
    assert keys == expected
    sections = [job.figure.section for job in jobs]
    assert sections == sorted(sections, key=lambda s: (s != "embeddings", s == "final", s))  # page order
    for job in jobs:
        f = job.figure
        assert f.file == f"figures/{f.key}.png" and f.tensor and f.scale and f.title and f.caption
        assert all(isinstance(s, int) for s in f.shape)
    T = len(trace["tokens"])
    assert by_key(jobs)["blocks.1.attn.hook_q"].figure.shape == [T, HEADS, 16]
    assert by_key(jobs)["blocks.0.attn.hook_pattern"].figure.shape == [HEADS, T, T]


def test_figures_are_valid_pngs_without_metadata_and_byte_identical(rendered, small):
    figures, again, first, second, _ = rendered
    assert figures == again == [job.figure for job in small[3]]
    for figure in figures:
        a, b = first / figure.file, second / figure.file
        assert a.read_bytes() == b.read_bytes(), f"{figure.key}: parallel and serial renders differ"
        chunks = png_chunks(a)
        assert not {"tEXt", "zTXt", "iTXt", "tIME"} & set(chunks), f"{figure.key} carries metadata: {chunks}"
        with Image.open(a) as image:
            image.verify()
        with Image.open(a) as image:
            assert 300 <= image.width <= 2000 and 100 <= image.height <= 1200, (figure.key, image.size)
    assert sorted(p.name for p in (first / "figures").iterdir()) == sorted(f"{f.key}.png" for f in figures)


def test_no_glyph_or_other_warnings_while_drawing(rendered):
    messages = [str(w.message) for w in rendered[4]]
    assert not messages, messages[:3]


def test_figures_show_data_not_blank_images(rendered):
    figures, _, first, _, _ = rendered
    for figure in figures:
        with Image.open(first / figure.file) as image:
            rgb = np.asarray(image.convert("RGB"))
        inked = (rgb.min(axis=-1) < 235).mean()  # share of pixels that are not (near) white
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        colours = len(np.unique(packed))
        assert inked > 0.03 and colours > 8, (figure.key, inked, colours)


def test_diverging_limits_are_symmetric_about_zero():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 1.0, size=(40, 50))  # mostly positive: the scale must still centre on 0
    vmin, vmax, text = plots.diverging_limits(values)
    assert vmin == -vmax and vmax == pytest.approx(np.abs(values).max())
    assert "centred on 0" in text and "clipped" not in text
    with_masked = np.where(np.tri(40, 50, dtype=bool), values, -np.inf)
    vmin, vmax, _ = plots.diverging_limits(with_masked)
    assert vmin == -vmax and vmax == pytest.approx(np.abs(values[np.tri(40, 50, dtype=bool)]).max())
    outlier = rng.normal(0.0, 1.0, size=(100, 100))
    outlier[3, 7] = -500.0
    vmin, vmax, text = plots.diverging_limits(outlier)
    assert vmin == -vmax and vmax < 10 and "clipped" in text and "max |x| = 500" in text
    assert plots.diverging_limits(np.zeros((3, 3)))[:2] == (-1.0, 1.0)
    assert plots.diverging_limits(np.full((2, 2), -np.inf))[:2] == (-1.0, 1.0)


def test_one_scale_for_all_heads(small):
    _, tensors, _, jobs = small
    jobs = by_key(jobs)
    for layer in range(LAYERS):
        b = f"blocks.{layer}.attn"
        grid = jobs[f"{b}.hook_pattern"].data
        assert (grid["vmin"], grid["vmax"]) == (0.0, 1.0) and grid["values"].shape[0] == HEADS
        for h in range(HEADS):
            single = jobs[f"{b}.hook_pattern.H{h}"].data
            assert (single["vmin"], single["vmax"]) == (0.0, 1.0)
        q = tensors[f"{b}.hook_q"].numpy()
        peak = np.abs(q).max()
        assert jobs[f"{b}.hook_q"].data["vmax"] == pytest.approx(peak)  # over every head, not per head
        assert jobs[f"{b}.hook_q"].data["vmin"] == -jobs[f"{b}.hook_q"].data["vmax"]
        scores = jobs[f"{b}.hook_attn_scores"].data
        assert scores["vmin"] == -scores["vmax"] and np.isfinite(scores["vmax"])


def test_masked_attention_cells_are_grey_and_pooling_rules():
    lut = np.zeros((256, 3), dtype=np.uint8)
    rgb = raster.colourize(np.array([[1.0, -np.inf], [np.nan, 0.0]]), lut, -1.0, 1.0)
    assert tuple(rgb[0, 1]) == raster.MASK_RGB and tuple(rgb[1, 0]) == raster.MASK_RGB
    a = np.array([[1.0, -3.0, 0.5, np.nan], [2.0, 0.0, np.nan, -np.inf], [0.1, 0.2, 0.3, 0.4]])
    pooled = raster.pool2d(a, 2, 2)
    assert pooled.shape == (2, 2)
    assert pooled[0, 0] == -3.0  # largest magnitude, sign kept
    assert pooled[0, 1] == 0.5  # masked entries ignored
    assert pooled[1, 0] == np.float32(0.2) and pooled[1, 1] == np.float32(0.4)  # ragged edge block
    assert np.isnan(raster.pool2d(np.full((2, 2), -np.inf), 2, 2)[0, 0])
    assert np.array_equal(raster.pool2d(a[:2, :2], 1, 1), a[:2, :2].astype(np.float32))


def test_long_input_is_pooled_and_bounded(tmp_path):
    T = 600
    probe = ("the quick brown fox jumps over the lazy dog. " * 20)[:T]
    trace, tensors, data = capture_inputs(tmp_path / "m", probe, n_layer=1, n_head=2, n_embd=32, block_size=T)
    jobs = plots.plan_figures(trace, tensors, data)
    keys = by_key(jobs)
    assert not any(".hook_pattern.H" in k for k in keys)  # per-head PNGs only for short inputs
    assert "display pooled" in keys["blocks.0.attn.hook_pattern"].figure.caption.lower()
    assert "display pooled" in keys["blocks.0.attn.hook_attn_scores"].figure.caption.lower()
    assert "display pooled" in keys["blocks.0.attn.hook_pattern"].data["note"]  # and in the PNG's header
    picked = [keys[k] for k in ("blocks.0.attn.hook_pattern", "blocks.0.attn.hook_attn_scores", "blocks.0.mlp.hook_post",
                                "blocks.0.attn.hook_q", "final.topk", "blocks.0.resid_norms")]
    plots.render_figures(tmp_path, picked, workers=1)
    for job in picked:
        path = tmp_path / job.figure.file
        with Image.open(path) as image:
            assert image.width <= 1800 and image.height <= 1100, (job.figure.key, image.size)
        assert path.stat().st_size < 400_000
    table = keys["final.topk"].data
    assert table["values"].shape[0] == plots.TABLE_ROWS and table["row_labels"][-1].startswith(f"{T - 1} ")


def test_geometry_keeps_images_bounded():
    for n, rows, cols, square in [(1, 1024, 768, False), (12, 1024, 64, False), (1, 1024, 3072, False),
                                  (12, 1024, 1024, True), (1, 1024, 50257, False), (25, 2048, 2048, True)]:
        g = raster.tile_geometry(n, rows, cols, square=square, max_cells=plots.MAX_SIGNED_CELLS)
        shown_r, shown_c = -(-rows // g["fr"]), -(-cols // g["fc"])
        assert n * shown_r * shown_c <= plots.MAX_SIGNED_CELLS * 1.05
        assert g["ncols"] * shown_c * g["cw"] <= raster.WIDE_W
        assert g["nrows"] * shown_r * g["ch"] <= raster.MAX_AXES_H
    g = raster.tile_geometry(1, 48, 1536, square=False, max_cells=plots.MAX_SIGNED_CELLS)
    assert g["fc"] == 1 and g["fr"] == 1  # a small model's MLP: every neuron its own column


def test_hostile_vocabulary_tokens_are_drawable(tmp_path):
    probe = "<script>&amp;😀\n中 a👍🏽${x}"
    trace, tensors, data = capture_inputs(tmp_path / "m", probe, n_layer=1, n_head=1, n_embd=16, block_size=16,
                                          vocab=HOSTILE_VOCAB)
    jobs = plots.plan_figures(trace, tensors, data)
    labels = by_key(jobs)["hook_embed"].data["row_labels"]
    assert "<script>" in labels and "&amp;" in labels and "↵" in labels and "<U+4E2D>" in labels
    assert "${x}" in labels and "😀" in labels  # DejaVu Sans has this emoji, not this one:
    assert "<U+1F44D><U+1F3FD>" in labels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.render_figures(tmp_path / "out", jobs, workers=1)
    assert not [str(w.message) for w in caught]
    for job in jobs:
        png_chunks(tmp_path / "out" / job.figure.file)


def test_displayable_spells_missing_glyphs():
    assert displayable("abc") == "abc"
    assert displayable("中") == "<U+4E2D>"
    assert displayable("␀") == "<U+2400>"  # a control picture DejaVu Sans lacks
    assert displayable("␣↵⇥") == "␣↵⇥"
    assert displayable("abcdefghijklmnop", 6) == "abcde…"


def test_one_token_one_head_one_layer(tmp_path):
    trace, tensors, data = capture_inputs(tmp_path / "m", "a", n_layer=1, n_head=1, n_embd=8, block_size=4)
    jobs = plots.plan_figures(trace, tensors, data)
    figures = plots.render_figures(tmp_path, jobs, workers=1)
    assert len(figures) == len(jobs) > 20
    for figure in figures:
        png_chunks(tmp_path / figure.file)


def test_figures_missing_from_the_capture_are_left_out(small):
    trace, tensors, data, _ = small
    partial = {k: v for k, v in tensors.items() if k != "hook_pos_embed" and "hook_attn_scores" not in k}
    keys = set(by_key(plots.plan_figures(trace, partial, {})))
    assert "hook_pos_embed" not in keys and "blocks.0.attn.hook_attn_scores" not in keys
    assert "blocks.0.attn.hook_pattern" in keys and "hook_embed" in keys
    assert not any(k.startswith("final.") or k.endswith(".map") for k in keys)  # no report_data, no tables


def test_lens_table_is_laid_out_as_the_page_grid_and_norms_use_the_page_colours(small):
    trace, _, data, jobs = small
    lens = by_key(jobs)["final.logit_lens"].data
    T = len(trace["tokens"])
    # layers down, positions across, as the interactive grid, with its first row: the embeddings' lens
    assert lens["values"].shape == (LAYERS + 1, T)
    assert lens["row_labels"] == ["embed"] + [f"after L{l}" for l in range(LAYERS)] and len(lens["col_labels"]) == T
    assert lens["values"][0, 3] == pytest.approx(data["logit_lens_embed"]["topk"][3][0]["prob"])
    for layer in range(LAYERS):
        assert lens["values"][layer + 1, 3] == pytest.approx(data["logit_lens"][layer]["topk"][3][0]["prob"])
        series = by_key(jobs)[f"blocks.{layer}.resid_norms"].data["series"]
        assert [(name, tuple(rgb)) for name, _, rgb in series] == list(palette.NORM_SERIES)
    for job in jobs:  # one palette: tiles and tables on its two scales only
        if job.kind in ("tiles", "table"):
            assert job.data["cmap"] in palette.SCALES


def test_auto_mode_leaves_out_activation_matrices_only_beyond_its_length(tmp_path):
    T = plots.DETAIL_MAX_T + 4
    trace, tensors, data = capture_inputs(tmp_path, ("first citizen: hear me speak. " * 20)[:T], n_layer=1, n_head=2,
                                          n_embd=16, block_size=T)
    every = {job.figure.key for job in plots.plan_figures(trace, tensors, data, "all")}
    auto = {job.figure.key for job in plots.plan_figures(trace, tensors, data, "auto")}
    assert plots.plan_figures(trace, tensors, data, "none") == []
    left_out = every - auto
    assert auto < every and left_out == {
        "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
        "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_z", "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid",
        "blocks.0.ln2.hook_normalized", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post"}
    # each layer keeps its attention grid, top neurons, norms and lens; embeddings and final stay whole
    assert {"blocks.0.attn.hook_pattern", "blocks.0.mlp.hook_post.top_neurons", "blocks.0.resid_norms",
            "blocks.0.logit_lens.map", "hook_embed", "logits"} <= auto
    assert "--figures all" in plots.figures_note("auto", T) and plots.figures_note("all", T) is None
    short = plots.DETAIL_MAX_T
    assert plots.figures_note("auto", short) is None and plots.draws_activation_matrices("auto", short)
    assert "--figures none" in plots.figures_note("none", 3)
    with pytest.raises(ValueError, match="figure mode"):
        plots.plan_figures(trace, tensors, data, "some")
