"""The views a researcher works with, at realistic sizes, in headless Chromium at 1400 px and at a
phone's 390 px: a 256-token character report and a 1,024-token report (word tokens).

Checked: the head view's lines carry the weight in opacity and width, both zero at zero; the
attention heatmaps have position axes, zoom, pan and a tooltip naming query, key and weight; the
logit-lens grid keeps its row labels in view, numbers its columns, marks the hovered cell and starts
with an embed row; no page scrolls sideways on a phone and every view is drawn; the generation page
lists a sampled token outside the top 10, counts its steps right and fills its width with the flow
graph; the comparison maps are labelled and move together; control characters have glyphs.
Interaction times are printed (not asserted). Screenshots go to tests.support.cli.artifacts_dir().
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from tests.support.browser import Page, chromium
from tests.support.cli import artifacts_dir, run_cli
from tests.support.nanogpt import make_checkpoint
from tests.support.site import CHAR_PROBE, CHAR_VOCAB, WORD_VOCAB, make_report, word_probe
from visualizer.analysis.summary import analyze
from visualizer.artefacts.run_files import read_run_files
from visualizer.site.report import render_folder

ARTIFACTS = artifacts_dir()
WIDTHS = (1400, 390)
def with_analysis(folder: Path) -> Path:
    """The report rendered again with its analysis.json (make_report writes none)."""
    files = read_run_files(folder, str(folder))
    (folder / "analysis.json").write_text(json.dumps(analyze(files.tensors, files.trace, files.report_data)), encoding="utf-8")
    render_folder(folder, [])
    return folder


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    yield from chromium()


@pytest.fixture(scope="module")
def char256(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views") / "char256"
    make_report(folder, CHAR_PROBE, CHAR_VOCAB, n_layer=2, n_head=4, n_embd=32, block_size=256)
    return with_analysis(folder)


@pytest.fixture(scope="module")
def long1024(tmp_path_factory):
    folder = tmp_path_factory.mktemp("views") / "long1024"
    make_report(folder, word_probe(1024), WORD_VOCAB, n_layer=2, n_head=4, n_embd=64, block_size=1024)
    assert len(json.loads((folder / "trace.json").read_text())["token_ids"]) == 1024
    return folder


@pytest.fixture(scope="module")
def generation(tmp_path_factory):
    root = tmp_path_factory.mktemp("views-gen")
    ckpt, meta = make_checkpoint(root / "m", vocab=CHAR_VOCAB, n_layer=2, n_head=4, n_embd=32, block_size=128)
    code, _, stderr = run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--prompt", CHAR_PROBE[:60],
                              "--max-new-tokens", "24", "--temperature", "1.0", "--seed", "3", "--snapshot-every", "12",
                              "--out", root / "g", "--quiet")
    assert code == 0, stderr
    return root / "g"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, char256):
    root = tmp_path_factory.mktemp("views-cmp")
    other = root / "other"
    make_report(other, CHAR_PROBE.replace("light", "night"), CHAR_VOCAB, n_layer=2, n_head=4, n_embd=32, block_size=256)
    code, _, stderr = run_cli("compare", char256, other, "--out", root / "cmp", "--store", root / "store")
    assert code == 0, stderr
    return root / "cmp"


def report_timing(name: str, **times) -> None:
    print(f"\n[timing] {name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in times.items()))


def ticks(p: Page, selector: str, axis: str) -> list[int]:
    text = p.page.locator(selector).get_attribute(f"data-{axis}ticks") or ""
    return [int(t) for t in text.split()]


def no_sideways_scroll(p: Page) -> None:
    width, inner = p.js("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page scrolls sideways: {width} > {inner}"


def open_everything(p: Page) -> None:
    """Every <details> open (twice: opening a layer adds lazy ones), every data file loaded and drawn."""
    for _ in range(2):
        p.js("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        p.page.wait_for_function("Array.from(document.querySelectorAll('details[data-needs]'))"
                                 ".every(d => d.getAttribute('data-state') === 'ready')", timeout=60_000)


# --- head view ------------------------------------------------------------------------------------


def test_head_view_lines_carry_the_weight_in_opacity_and_width(browser, char256):
    p = Page(browser, char256, 1400, artifacts=ARTIFACTS)
    p.open("#layer-0")
    T = 256
    assert p.js("[__vizLineStyle(0).opacity, __vizLineStyle(0).width]") == [0, 0]  # zero at zero
    lines = p.js("__vizHeadLines(0)")
    assert len(lines) == T * (T + 1) // 2  # every line of the causal triangle, drawn or not
    ordered = sorted(lines, key=lambda line: line["weight"])
    for a, b in zip(ordered, ordered[1:]):
        assert a["opacity"] <= b["opacity"] and a["width"] <= b["width"]  # monotonic in the weight
    for line in lines:
        assert line["opacity"] == pytest.approx(line["weight"], abs=1e-6)  # 8-bit weights: opacity = weight
        assert line["width"] == pytest.approx(6 * line["weight"], abs=1e-6)
        if line["weight"] == 0:
            assert line["opacity"] == 0 and line["width"] == 0
    assert lines[0] == {"q": 0, "k": 0, "weight": 1, "opacity": 1, "width": 6}  # position 0 reads only itself
    # one query in focus: its row only, same encoding; a weight of 0.001 and one of 0.3 differ 300-fold
    start = time.perf_counter()
    p.page.locator("#layer-0 .hv-left .hv-tok").nth(200).hover()
    hover_ms = 1000 * (time.perf_counter() - start)
    row = p.js("__vizHeadLines(0)")
    assert {line["q"] for line in row} == {200} and len(row) == 201
    assert all(line["opacity"] == pytest.approx(line["weight"], abs=1e-6) for line in row)
    legend = p.page.locator("#layer-0 .hv-legend").text_content()
    assert "opacity" in legend and "width" in legend and "0 draws nothing" in legend
    start = time.perf_counter()
    p.page.locator("#layer-0 select.colour-mode").select_option("sqrt")
    mode_ms = 1000 * (time.perf_counter() - start)
    lines = p.js("__vizHeadLines(0)")
    assert all(line["opacity"] == pytest.approx(round(math.sqrt(line["weight"]) * 255) / 255, abs=1e-6) for line in lines)
    assert "√weight" in p.page.locator("#layer-0 .hv-legend").text_content()
    report_timing("head view 256", hover_query=hover_ms, colour_scale_redraw=mode_ms)
    info = p.page.locator("#layer-0 .hv-info")
    assert info.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # no clipped line
    assert p.errors() == []


# --- heatmaps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_heatmap_has_position_axes_zoom_pan_and_a_tooltip(browser, long1024, width):
    p = Page(browser, long1024, width, artifacts=ARTIFACTS)
    opened = p.open("#layer-0")
    canvas = "#layer-0 canvas.heatmap"
    c = p.page.locator(canvas)
    c.scroll_into_view_if_needed()
    rows, cols = ticks(p, canvas, "y"), ticks(p, canvas, "x")
    for axis in (rows, cols):  # position numbers at round steps over the whole input
        assert len(axis) >= 4 and axis == sorted(axis) and axis[0] == 0 and axis[-1] <= 1023
        assert len({b - a for a, b in zip(axis, axis[1:])}) == 1
    panel = p.js(f"document.querySelector('{canvas}').parentNode.clientWidth")
    assert c.bounding_box()["width"] >= min(panel, 900) - 2  # the heatmap uses its column
    view = lambda: [float(v) for v in c.get_attribute("data-view").split()]  # noqa: E731
    assert view() == [0, 0, 1024]
    box = c.bounding_box()
    x, y = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.8
    p.page.mouse.move(x, y)
    start = time.perf_counter()
    for _ in range(12):
        p.page.mouse.wheel(0, -400)
    p.page.wait_for_function(f"+document.querySelector('{canvas}').getAttribute('data-view').split(' ')[2] < 64")
    wheel_ms = 1000 * (time.perf_counter() - start)
    assert c.get_attribute("data-tokens") == "1" and c.get_attribute("data-block") == "1"  # every position labelled
    zoomed = ticks(p, canvas, "y")
    assert zoomed == list(range(zoomed[0], zoomed[0] + len(zoomed)))
    start = time.perf_counter()
    p.page.mouse.move(x + 3, y + 3)
    hover_ms = 1000 * (time.perf_counter() - start)
    q, k = (int(v) for v in c.get_attribute("data-hover").split())
    tip = p.page.locator(".viz-tip").last.text_content()
    assert f"query {q}" in tip and f"key {k}" in tip and "weight" in tip
    before = view()
    start = time.perf_counter()
    p.page.mouse.down()
    p.page.mouse.move(x - 60, y - 40, steps=4)
    p.page.mouse.up()
    drag_ms = 1000 * (time.perf_counter() - start)
    after = view()
    assert after[2] == before[2] and after[0] > before[0] and after[1] > before[1]  # dragged up-left: later positions
    p.shot(f"views-heatmap-1024-{width}", "#layer-0 .attention-view")
    p.page.locator("#layer-0 .hm-fit").click()
    assert view() == [0, 0, 1024]
    draw_ms = float(c.get_attribute("data-draw-ms"))
    report_timing(f"heatmap 1024 @{width}", open_layer=1000 * opened, wheel_zoom_12=wheel_ms, hover=hover_ms, drag=drag_ms,
                  draw=draw_ms)
    assert p.errors() == [] and p.foreign_requests() == []


# --- logit lens -----------------------------------------------------------------------------------


def test_lens_grid_keeps_row_labels_numbers_positions_and_starts_with_embed(browser, long1024):
    p = Page(browser, long1024, 390, artifacts=ARTIFACTS)
    opened = p.open("#lens")
    labels = p.js("Array.from(document.querySelectorAll('#lens table.lens tbody th')).map(e => e.textContent)")
    assert labels == ["embed", "after L0", "after L1"]
    numbers = p.js("Array.from(document.querySelectorAll('#lens table.lens thead th.col .pos')).map(e => +e.textContent)")
    assert numbers == list(range(1024))
    box = p.page.locator("#lens .lens-scroll")
    box.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    inside = box.bounding_box()
    for label in p.page.locator("#lens table.lens tbody th").all():  # sticky: still at the box's left edge
        assert abs(label.bounding_box()["x"] - inside["x"]) <= 2
    cell = p.page.locator("#lens td.cell[data-layer='embed'][data-pos='1023']")
    start = time.perf_counter()
    cell.hover()
    hover_ms = 1000 * (time.perf_counter() - start)
    assert "hot" in cell.get_attribute("class")
    assert p.js("document.querySelectorAll('#lens th.hot').length") == 2  # its row label and its column head
    assert "position 1023" in p.page.locator("#lens .lens-panel").text_content()
    p.shot("views-lens-1024-390", "#lens")
    no_sideways_scroll(p)
    report_timing("lens grid 1024 @390", open=1000 * opened, hover=hover_ms)


# --- whole pages at both widths -------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_report_pages_fit_the_screen_and_draw_every_view(browser, char256, long1024, width):
    for name, folder in (("char256", char256), ("long1024", long1024)):
        p = Page(browser, folder, width, artifacts=ARTIFACTS)
        start = time.perf_counter()
        open_everything(p)
        opened_ms = 1000 * (time.perf_counter() - start)
        no_sideways_scroll(p)
        for canvas in p.page.locator("canvas.heatmap").all():
            assert canvas.get_attribute("data-drawn") == "1"
            assert canvas.get_attribute("data-xticks") and canvas.get_attribute("data-yticks")
        assert p.js("Array.from(document.querySelectorAll('.view')).every(v => !v.querySelector('.loading'))")
        report_timing(f"report {name} @{width}", open_everything=opened_ms, load=1000 * p.load_s)
        assert p.errors() == [] and p.foreign_requests() == []


def test_analysis_tables_hold_every_position_or_say_how_many(char256):
    html = (char256 / "index.html").read_text(encoding="utf-8")
    logits = html[html.index('id="analysis-logits"'):html.index('id="analysis-lens"')]
    assert logits.count("<tr><td>") == 256 and "All 256 positions" in logits
    assert "the last 32 of 256 positions" in html[html.index('id="analysis-mlp"'):]


# --- generation page ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_generation_page_lists_the_sampled_token_counts_steps_and_fills_its_width(browser, generation, width):
    p = Page(browser, generation, width, artifacts=ARTIFACTS)
    data = json.loads(p.js("document.getElementById('generation-data').textContent"))
    n = len(data["steps"])
    assert p.page.locator("#step-label").text_content() == f"step {n - 1} (token {n} of {n})"
    outside = [s for s, step in enumerate(data["steps"]) if step["rank"] > 10]
    assert outside, "the fixture should sample a token below the top 10 at some step"
    s = outside[0]
    p.page.locator(f".gtok[data-step='{s}']").click()
    assert p.page.locator("#cand-before tbody tr").count() == 10
    extra = p.page.locator("#cand-before tfoot tr.outside")
    assert extra.count() == 1
    cells = extra.locator("td").all_text_contents()
    assert cells[0] == str(data["steps"][s]["rank"]) and cells[2] == str(data["steps"][s]["id"]) and "sampled" in cells[1]
    # flow graph: the box's width, every node on screen, the prompt in view, a legend for the edge colours
    wrap = p.js("(() => { const w = document.querySelector('.flow-wrap'); return [w.clientWidth, w.scrollTop]; })()")
    svg_width = float(p.page.locator("#flow-svg").get_attribute("width"))
    assert wrap[0] - 40 <= svg_width <= wrap[0]
    right = p.js("Math.max(...Array.from(document.querySelectorAll('#flow-svg .node rect')).map(r => +r.getAttribute('x') + +r.getAttribute('width')))")
    assert right <= svg_width
    assert p.js("document.querySelector('.flow-wrap').scrollTop") == 0
    assert p.page.locator(".flow-legend .prompt-key").count() == 1 and p.page.locator(".flow-legend .gen-key").count() == 1
    # compare heads: every header above its own column
    heads = p.js("""(() => { const t = document.getElementById('heads-table');
      const h = Array.from(t.querySelectorAll('thead th')).map(e => e.getBoundingClientRect());
      const d = Array.from(t.querySelector('tbody tr').children).map(e => e.getBoundingClientRect());
      return h.map((r, i) => [r.left, r.right, d[i].left, d[i].right]); })()""")
    for h_left, h_right, d_left, d_right in heads:
        assert abs(h_left - d_left) <= 1 and abs(h_right - d_right) <= 1
    # snapshots at their own size (not scaled down)
    for img in p.page.locator(".snapshots img").all():
        img.scroll_into_view_if_needed()
        p.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        assert abs(img.evaluate("i => i.getBoundingClientRect().width - i.naturalWidth")) <= 1
    no_sideways_scroll(p)
    p.shot(f"views-generation-{width}")
    assert p.errors() == [] and p.foreign_requests() == []


# --- comparison page ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_comparison_maps_have_position_axes_and_move_together(browser, comparison, width):
    p = Page(browser, comparison, width, artifacts=ARTIFACTS)
    p.page.wait_for_function("window.__compareLayers && window.__compareLayers[0]")
    ids = ("hv-a", "hv-b", "hv-diff")
    for i in ids:
        assert ticks(p, f"#{i}", "x") and ticks(p, f"#{i}", "y")
    start = time.perf_counter()
    p.js("document.getElementById('hv-b').__heatmap.zoom(8)")
    zoom_ms = 1000 * (time.perf_counter() - start)
    views = {p.page.locator(f"#{i}").get_attribute("data-view") for i in ids}
    assert len(views) == 1 and views != {"0 0 256"}  # one view for the three maps
    tip = p.js("document.getElementById('hv-a').__heatmap.hover(40, 12).join(' | ')")
    assert "query 40" in tip and "key 12" in tip and "A 0." in tip and "B 0." in tip
    no_sideways_scroll(p)
    p.shot(f"views-compare-{width}", "#heads")
    report_timing(f"compare @{width}", zoom_three_maps=zoom_ms)
    assert p.errors() == [] and p.foreign_requests() == []


# --- glyphs ---------------------------------------------------------------------------------------


def test_control_characters_have_glyphs_on_the_page(browser, tmp_path):
    folder = tmp_path / "control"
    make_report(folder, "ab\r\x14 c\x1bab", list("abc ") + ["\r", "\x14", "\x1b"], n_layer=1, n_head=2, n_embd=16, block_size=32)
    p = Page(browser, folder, 1400, artifacts=ARTIFACTS)
    chips = p.js("Array.from(document.querySelectorAll('ol.tokens .tok')).map(e => e.textContent)")
    assert "\u240d" in chips and "\u2414" in chips and "\u241b" in chips
    p.page.wait_for_function("document.fonts.ready.then(() => true)")
    assert p.js("document.fonts.check('15px VizControlPictures', '\u240d\u2414\u241b')")
    assert p.js("Array.from(document.fonts).some(f => f.family.replace(/\"/g, '') === 'VizControlPictures' && f.status === 'loaded')")
    name = json.loads((folder / "trace.json").read_text(encoding="utf-8"))["model_name"]
    assert p.js("document.title") == f"{name} · ab cab · visualizer"  # plain text in the title: no symbols
    assert p.errors() == [] and p.foreign_requests() == []
