"""The report page in headless Chromium (Debian's, driven by Playwright; no browser download):
it loads from file:// with no console errors and no network, every layer opens and draws from its
own data file, the head view answers a hover, the thumbnail grid and the logit lens respond, a
hostile vocabulary shows as text and injects nothing, a 512-token input uses the compact encoding
and still opens fast. Screenshots and timings go to test-artifacts/ (look at them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.browser import Page as BrowserPage
from tests.support.browser import chromium
from tests.support.cli import artifacts_dir
from tests.support.site import CHAR_VOCAB, INJECTION_PROBE, INJECTION_VOCAB, make_report
from visualizer.figures.palette import NORM_SERIES, hex_of

ARTIFACTS = artifacts_dir()
TIMINGS: dict[str, dict] = {}

PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"
FIGURES = [("embed", "hook_embed", "embeddings"), ("q1", "blocks.1.attn.hook_q", "layer.1")]


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    yield from chromium()
    (ARTIFACTS / "page-timings.json").write_text(json.dumps(TIMINGS, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page") / "small"
    make_report(folder, PROBE, CHAR_VOCAB, FIGURES, n_layer=2, n_head=3, n_embd=24, block_size=64)
    return folder


@pytest.fixture(scope="module")
def long(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page") / "long"
    text = ("the quick brown fox jumps over the lazy dog. " * 12)[:512]
    make_report(folder, text, CHAR_VOCAB, n_layer=2, n_head=2, n_embd=16, block_size=512)
    return folder


def Page(browser, folder: Path) -> BrowserPage:
    return BrowserPage(browser, folder, artifacts=ARTIFACTS)


INK = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) ink++;
  return ink; }"""
PIXELS = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0; for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0; return h; }"""


def test_page_loads_offline_and_every_layer_opens(browser, small):
    p = Page(browser, small)
    assert p.js("Object.keys(window.__vizLayers).length") == 0  # nothing per-layer before a layer opens
    opens = []
    for layer in range(2):
        sel = f"#layer-{layer}"
        opens.append(p.open(sel))
        assert p.js(f"!!window.__vizLayers[{layer}]")
        assert p.js(f"document.querySelectorAll('script[src=\"data/layer-{layer}.js\"]').length") == 1
        assert p.js(INK, f"{sel} canvas.heatmap") > 100
        assert p.js(INK, f"{sel} canvas.hv-lines") > 100
        assert p.js(f"document.querySelectorAll('{sel} .head-btn').length") == 3
        T = p.js("JSON.parse(document.getElementById('viz-page').textContent).T")
        assert p.js(f"document.querySelectorAll('{sel} .lens-view tbody tr').length") == T
        assert p.js(f"document.querySelectorAll('{sel} .neurons-view tbody tr').length") == T
        assert p.js(f"document.querySelectorAll('{sel} .norms-view polyline').length") == 3
        strokes = p.js(f"Array.from(document.querySelectorAll('{sel} .norms-view polyline')).map(e => e.getAttribute('stroke'))")
        assert strokes == [hex_of(rgb) for _, rgb in NORM_SERIES]  # the PNG chart's colours
        assert p.js(f"document.querySelectorAll('{sel} .lens-map .word').length") > 0
    for sel in ("#embeddings", "#attention", "#lens", "#final-all"):
        opens.append(p.open(sel))
    assert p.js("document.querySelectorAll('#attention canvas').length") == 2 * 3
    assert p.js("document.querySelectorAll('#final-all tbody tr.last').length") == 1
    assert p.errors() == [] and p.foreign_requests() == []
    TIMINGS["small"] = {"load_s": round(p.load_s, 3), "open_s": [round(t, 3) for t in opens]}
    p.shot("page-small-all-open")


def test_head_view_answers_hover_click_and_head_choice(browser, small):
    p = Page(browser, small)
    p.open("#layer-1")
    view = "#layer-1 .attention-view"
    before = p.js(PIXELS, "#layer-1 canvas.hv-lines")
    p.page.locator("#layer-1 .hv-left .hv-tok").nth(12).hover()
    assert p.js("document.querySelector('#layer-1 .hv').getAttribute('data-focus')") == "q:12"
    shaded = p.js("Array.from(document.querySelectorAll('#layer-1 .hv-right .hv-tok')).filter(e => e.style.background).length")
    assert 1 <= shaded <= 13  # the keys query 12 reads: itself and earlier only
    assert p.js(PIXELS, "#layer-1 canvas.hv-lines") != before
    assert "attends to" in p.page.locator("#layer-1 .hv-info").text_content()
    p.shot("page-head-view-hover", view)
    p.page.locator("#layer-1 .hv-right .hv-tok").nth(3).hover()
    assert p.js("document.querySelector('#layer-1 .hv').getAttribute('data-focus')") == "k:3"
    readers = p.js("Array.from(document.querySelectorAll('#layer-1 .hv-left .hv-tok')).filter(e => e.style.background).map(e => +e.dataset.pos)")
    assert readers and min(readers) >= 3  # only later positions read key 3
    heat = p.js(PIXELS, "#layer-1 canvas.heatmap")
    p.page.locator("#layer-1 .head-btn").nth(2).click()
    assert p.js("document.querySelector('#layer-1 .head-btn[data-head=\"2\"]').getAttribute('aria-pressed')") == "true"
    assert p.js(PIXELS, "#layer-1 canvas.heatmap") != heat
    assert "head 2" in p.page.locator("#layer-1 .heatmap-title").text_content()
    assert p.errors() == []


def test_thumbnail_grid_and_logit_lens_respond(browser, small):
    p = Page(browser, small)
    p.open("#attention")
    p.page.locator("#attention button.thumb").nth(1 * 3 + 2).click()  # layer 1, head 2
    p.page.wait_for_function("document.querySelector('#layer-1').getAttribute('data-state') === 'ready'")
    assert p.js("document.querySelector('#layer-1').open")
    assert p.js("document.querySelector('#layer-1 .head-btn[data-head=\"2\"]').getAttribute('aria-pressed')") == "true"
    p.shot("page-thumbnails", "#attention")
    p.page.locator("nav.toc a[href='#layer-0']").click()  # a contents link opens its section
    p.page.wait_for_function("document.querySelector('#layer-0').getAttribute('data-state') === 'ready'")
    p.open("#lens")
    p.page.locator("#lens td.cell").nth(5).hover()
    assert p.js("document.querySelectorAll('#lens .lens-panel li').length") == 5
    p.shot("page-logit-lens", "#lens")
    assert p.errors() == [] and p.foreign_requests() == []


def test_hostile_vocabulary_shows_text_and_injects_nothing(browser, tmp_path):
    folder = tmp_path / "hostile"
    make_report(folder, INJECTION_PROBE, INJECTION_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=64)
    p = Page(browser, folder)
    for sel in ("#embeddings", "#attention", "#layer-0", "#lens", "#final-all"):
        p.open(sel)
    p.page.locator("#layer-0 .hv-left .hv-tok").nth(8).hover()
    assert p.js("window.__pwned") is None and p.dialogs == []
    scripts = p.js("Array.from(document.scripts).map(s => s.getAttribute('src') || s.type)")
    assert sorted(scripts) == sorted(["assets/palette.js", "application/json", "assets/heatmap.js", "assets/viz.js", "data/embeddings.js", "data/thumbs.js",
                                      "data/layer-0.js", "data/lens.js", "data/final.js"])
    assert p.js("document.querySelectorAll('img').length") == 0  # no figures here, so no image at all
    chips = p.js("Array.from(document.querySelectorAll('ol.tokens .tok')).map(e => e.textContent)")
    assert chips[0] == "<script>alert(1)</script>" and '<img␣src=x␣onerror="window.__pwned=2">' in chips
    assert "😀" in chips and "↵" in chips
    heads = p.js("Array.from(document.querySelectorAll('#layer-0 .hv-left .hv-tok')).map(e => e.textContent)")
    assert heads == chips
    assert p.errors() == [] and p.foreign_requests() == []
    p.shot("page-hostile")


def test_long_input_page_uses_topk(browser, long):
    p = Page(browser, long)
    assert "This input has 512 positions" in p.page.locator("#layer-0 .encoding").text_content()
    opened = p.open("#layer-0")
    assert p.js("document.querySelector('#layer-0 .neurons-view tbody')") is None  # long tables wait to be opened
    p.page.locator("#layer-0 details[data-draw='neurons'] > summary").click()
    p.page.wait_for_function("document.querySelectorAll('#layer-0 .neurons-view tbody tr').length > 0", timeout=10_000)
    assert p.js("document.querySelectorAll('#layer-0 .neurons-view tbody tr').length") == 512
    assert p.js("document.querySelector('#layer-0 canvas.heatmap').getAttribute('data-block')") == "1"
    p.page.locator("#layer-0 .hv-left .hv-tok").nth(300).hover()
    info = p.page.locator("#layer-0 .hv-info").text_content()
    assert "attends to" in info and "rest" in info
    assert p.js(INK, "#layer-0 canvas.heatmap") > 1000
    lens = p.open("#lens")
    assert p.errors() == [] and p.foreign_requests() == []
    TIMINGS["long-512"] = {"load_s": round(p.load_s, 3), "layer_open_s": round(opened, 3), "lens_open_s": round(lens, 3)}
    p.shot("page-long-layer0", "#layer-0 .attention-view")
