"""The report page without a browser: compact attention encodings decode back to the pattern,
data files are safe classic scripts, figures land in their sections with their tensor, shape and
colour scale, hostile text is escaped, two renders give identical bytes, sizes stay small, and
rendering needs only the folder's files (no torch, no model)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.support.site import CHAR_VOCAB, INJECTION_PROBE, INJECTION_VOCAB, make_report, site_files
import visualizer.site.report as render
import visualizer.artefacts.attention_codec as codec
import visualizer.site.viewdata as viewdata
from visualizer.errors import VisualizerError

PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"
FIGURES = [("embed", "hook_embed", "embeddings"), ("q1", "blocks.1.attn.hook_q", "layer.1"),
           ("lnf", "ln_final.hook_normalized", "final")]


def causal_pattern(rng, n_head, T):
    scores = rng.normal(size=(n_head, T, T)) * 3
    scores[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = -np.inf
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def data_object(path):
    """The object a data file assigns (it is `window.X = window.X || {};\\nwindow.X[key] = {...};`)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].endswith("|| {};")
    return json.loads(lines[1].split(" = ", 1)[1].rstrip(";"))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("render") / "small"
    figures = make_report(folder, PROBE, CHAR_VOCAB, FIGURES, n_layer=2, n_head=2, n_embd=32, block_size=64)
    return folder, figures


# --- encodings ---------------------------------------------------------------------------------


def test_dense_encoding_decodes_within_half_a_step():
    p = causal_pattern(np.random.default_rng(0), 3, 20)
    enc = codec.encode_dense(p)
    assert enc["encoding"] == "uint8" and enc["triangle"]
    assert len(enc["heads"][0]) == len(codec.b64(np.zeros(20 * 21 // 2, np.uint8)))  # the triangle only
    assert np.abs(codec.decode_pattern(enc, 20) - p).max() <= 0.5 / 255 + 1e-9


def test_dense_encoding_keeps_a_non_causal_pattern_whole():
    rng = np.random.default_rng(1)
    p = rng.random((2, 7, 7)).astype(np.float32)
    p /= p.sum(-1, keepdims=True)
    enc = codec.encode_dense(p)
    assert not enc["triangle"]
    assert np.abs(codec.decode_pattern(enc, 7) - p).max() <= 0.5 / 255 + 1e-9


def test_topk_encoding_keeps_the_largest_keys_and_the_rest():
    T, k = 300, viewdata.TOPK_KEYS
    p = causal_pattern(np.random.default_rng(2), 2, T)
    enc = codec.encode_topk(p, k)
    decoded, rest = codec.decode_pattern(enc, T), codec.decode_rest(enc)
    stored = decoded > 0
    for h in range(2):
        for i in (0, 5, k - 1, k, 150, T - 1):
            row, kept = p[h, i], np.flatnonzero(stored[h, i])
            assert len(kept) <= min(k, i + 1) and kept.max() <= i  # causal: nothing later
            assert np.abs(decoded[h, i, kept] - row[kept]).max() <= 0.5 / 255 + 1e-9
            others = np.setdiff1d(np.arange(i + 1), np.flatnonzero(np.isin(np.arange(T), kept)))
            if len(others):  # every key left out weighs at most the smallest one kept
                assert row[others].max() <= row[kept].min() + 1e-7
            true_rest = row.sum() - np.sort(row)[::-1][: min(k, i + 1)].sum()
            assert abs(rest[h, i] - true_rest) <= 0.5 / 255 + 1e-6


def test_topk_rows_takes_the_largest_keys_and_the_earliest_of_ties():
    rng = np.random.default_rng(5)
    p = np.round(rng.random((40, 40)), 1)  # many ties
    p[:, 30:] = 0
    for k in (1, 7, 16, 40):
        keys, values = codec.topk_rows(p, k)
        order = np.argsort(-p, axis=-1, kind="stable")[:, :k]  # the obvious way: a stable sort
        assert np.array_equal(keys, np.sort(order, axis=-1))
        assert np.array_equal(values, np.take_along_axis(p, keys, axis=-1))


def test_encoding_switches_to_topk_for_long_inputs():
    rng = np.random.default_rng(3)
    assert viewdata.encode_pattern(causal_pattern(rng, 1, viewdata.DENSE_MAX_T))["encoding"] == "uint8"
    assert viewdata.encode_pattern(causal_pattern(rng, 1, viewdata.DENSE_MAX_T + 1))["encoding"] == "topk"


def test_thumbnail_is_the_block_maximum():
    p = causal_pattern(np.random.default_rng(4), 1, 10)[0]
    S, b64 = viewdata.thumbnail(p, size=4)
    cells = np.frombuffer(__import__("base64").b64decode(b64), np.uint8).reshape(S, S)
    edges = [0, 2, 5, 7, 10]
    expected = [[p[edges[a]:edges[a + 1], edges[b]:edges[b + 1]].max() for b in range(4)] for a in range(4)]
    assert S == 4 and np.array_equal(cells, codec.quantize(np.array(expected)))


def test_data_script_cannot_end_a_script_element():
    text = viewdata.data_script("__vizData", "x", {"t": "</script><!-- \u2028 & >"})
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text.splitlines()[1].split(" = ", 1)[1].rstrip(";")) == {"t": "</script><!-- \u2028 & >"}


# --- the rendered folder -------------------------------------------------------------------------


def test_render_writes_the_page_assets_and_one_data_file_per_layer(small):
    folder, _ = small
    names = set(site_files(folder))
    assert {"index.html", "assets/style.css", "assets/viz.js", ".nojekyll", "data/thumbs.js", "data/lens.js",
            "data/final.js", "data/embeddings.js", "data/layer-0.js", "data/layer-1.js"} <= names
    layer = data_object(folder / "data" / "layer-1.js")
    pattern = load_file(str(folder / "activations.safetensors"))["blocks.1.attn.hook_pattern"]
    T = pattern.shape[-1]
    assert np.abs(codec.decode_pattern(layer["attention"], T) - pattern).max() <= 0.5 / 255 + 1e-7
    report_data = json.loads((folder / "report_data.json").read_text())
    assert layer["neurons"]["ids"] == [r["neuron"] for row in report_data["neurons"]["1"] for r in row]
    lens = data_object(folder / "data" / "lens.js")
    assert [e["layer"] for e in lens["layers"]] == [0, 1]
    assert lens["layers"][1]["ids"][:5] == [r["id"] for r in report_data["logit_lens"][1]["topk"][0]]


def test_page_has_every_section_and_names_what_it_shows(small):
    folder, figures = small
    html = (folder / "index.html").read_text(encoding="utf-8")
    for anchor in ("overview", "embeddings", "attention", "layer-0", "layer-1", "lens", "final"):
        assert f'id="{anchor}"' in html and f'href="#{anchor}"' in html
    assert re.search(r'<details[^>]*id="layer-1"[^>]*data-needs="data/layer-1.js data/lens.js"', html)
    assert "Attention patterns are stored as 8-bit integers" in html
    trace = json.loads((folder / "trace.json").read_text())
    for name, check in trace["verification"].items():
        assert name.replace("<", "&lt;") in html or name in html
    for fig in figures:  # each figure: image, tensor name, shape, colour scale, link to the PNG
        block = html[html.index(f'id="fig-{fig["key"]}"'):]
        block = block[: block.index("</figure>")]
        assert f'src="{fig["file"]}"' in block and 'loading="lazy"' in block and f'href="{fig["file"]}" download' in block
        assert fig["tensor"] in block and "[" + ", ".join(map(str, fig["shape"])) + "]" in block
        assert fig["scale"].split(",")[0] in block
    # figures land in their section and group: the q figure inside layer 1's Q/K/V group
    assert html.index('id="layer-1-qkv"') < html.index('id="fig-q1"') < html.index('id="layer-1-attention"')
    assert html.index('id="embeddings-embed"') < html.index('id="fig-embed"') < html.index('id="attention"')
    assert html.index('id="final-ln_final"') < html.index('id="fig-lnf"')


def test_dla_sums_are_shown_equal_to_the_logit(small):
    folder, _ = small
    html = (folder / "index.html").read_text(encoding="utf-8")
    report_data = json.loads((folder / "report_data.json").read_text())
    candidates = report_data["dla"]["candidates"]
    assert html.count("≤ 1e-4 ✓") == len(candidates) >= 1
    for c in candidates:
        assert f"{c['component_sum']:.6f}" in html and f"{c['raw_logit']:.6f}" in html and f"{c['error']:.2e}" in html


def test_two_renders_give_identical_files(small, tmp_path):
    folder, figures = small
    copy = tmp_path / "again"
    shutil.copytree(folder, copy)
    for sub in ("data", "assets"):
        shutil.rmtree(copy / sub)
    (copy / "index.html").unlink()
    render.render_folder(copy, figures)
    assert site_files(copy) == site_files(folder)


def test_two_runs_of_the_whole_pipeline_give_identical_files(tmp_path):
    runs = []
    for name in ("a", "b"):
        folder = tmp_path / name / "report"
        make_report(folder, PROBE, CHAR_VOCAB, FIGURES[:1], n_layer=1, n_head=2, n_embd=16, block_size=64)
        runs.append({**site_files(folder), "activations": (folder / "activations.safetensors").read_bytes()})
    assert runs[0] == runs[1]


def test_hostile_vocabulary_is_escaped(tmp_path):
    folder = tmp_path / "hostile"
    make_report(folder, INJECTION_PROBE, INJECTION_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=64)
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert html.count("<script") == 4  # palette.js, the page's own JSON block, heatmap.js and viz.js, nothing injected
    assert "<img src=x" not in html and "<!-- b" not in html and "</details> " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = html[html.index('<script type="application/json" id="viz-page">'):]
    page = page[page.index(">") + 1: page.index("</script>")]
    assert "<" not in page and json.loads(page)["tokens"][0] == "<script>alert(1)</script>"
    for path in (folder / "data").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert "<" not in text and "\u2028" not in text


def test_figures_are_checked(small, tmp_path):
    folder, figures = small
    bad = dict(figures[0])
    with pytest.raises(VisualizerError, match="missing field"):
        render.check_figure(folder, {k: v for k, v in bad.items() if k != "scale"})
    with pytest.raises(VisualizerError, match="relative path inside"):
        render.check_figure(folder, {**bad, "file": "../outside.png"})
    with pytest.raises(VisualizerError, match="does not exist"):
        render.check_figure(folder, {**bad, "file": "figures/nope.png"})
    assert render.check_figure(folder, bad)["width"] == 240  # read from the PNG header (4 in x 60 dpi)
    as_object = __import__("types").SimpleNamespace(**bad)  # plots.Figure objects work as well as dicts
    assert render.check_figure(folder, as_object) == render.check_figure(folder, bad)


def test_unknown_sections_and_tensors_still_show(small, tmp_path):
    folder, figures = small
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    extra = [{**figures[0], "key": "odd", "section": "somewhere"},
             {**figures[0], "key": "lens-map", "section": "layer.0", "tensor": "wordmap"},
             {**figures[0], "key": "strange", "section": "layer.0", "tensor": "blocks.0.unknown"}]
    render.render_folder(copy, figures + extra)
    html = (copy / "index.html").read_text(encoding="utf-8")
    assert html.index('id="other"') < html.index('id="fig-odd"')
    assert html.index('id="layer-0-lens"') < html.index('id="fig-lens-map"') < html.index('id="layer-1"')
    assert html.index('id="layer-0"') < html.index('id="fig-strange"') < html.index('id="layer-1"')


def test_a_folder_without_report_data_is_refused(small, tmp_path):
    folder, _ = small
    copy = tmp_path / "partial"
    copy.mkdir()
    shutil.copy(folder / "trace.json", copy / "trace.json")
    with pytest.raises(VisualizerError, match="report_data.json: missing"):
        render.render_folder(copy, [])


def test_rendering_needs_no_torch():
    code = "import sys, visualizer.site.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(render.site.TEMPLATES.parent))
    assert out.stdout.strip() == "False"


def test_long_input_uses_the_compact_encoding_and_stays_small(tmp_path):
    folder = tmp_path / "long"
    text = ("the quick brown fox jumps over the lazy dog. " * 12)[:512]
    make_report(folder, text, CHAR_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=512)
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "This input has 512 positions" in html and "largest weights" in html
    layer = data_object(folder / "data" / "layer-0.js")
    assert layer["attention"]["encoding"] == "topk"
    pattern = load_file(str(folder / "activations.safetensors"))["blocks.0.attn.hook_pattern"]
    decoded = codec.decode_pattern(layer["attention"], 512)
    kept = decoded > 0
    assert np.abs(decoded[kept] - pattern[kept]).max() <= 0.5 / 255 + 1e-7
    assert np.abs(decoded.sum(-1) + codec.decode_rest(layer["attention"]) - 1).max() <= (viewdata.TOPK_KEYS + 1) / 510
    # a layer of 2 heads x 512 rows: at most 16 keys x 3 bytes + 1 per row, base64
    assert len(json.dumps(layer["attention"])) < 2 * 512 * 49 * 4 / 3 + 1_000
    assert (folder / "data" / "layer-0.js").stat().st_size < 150_000  # with the neurons and norms
    assert (folder / "index.html").stat().st_size < 400_000
