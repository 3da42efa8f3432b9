"""The views a researcher works with beyond one head (issue 13's "what to build"), in headless
Chromium at 1400 and 390 px: the head-types table (sorted by any column, a row opens its head); the
model view (every layer x head of a 12 x 12-head model at 1,024 tokens as max-pooled tiles, each a
link to its head; a hovered token marked in every tile, head view and pattern heatmap); the neuron
pages (what each top neuron writes, where it fires); the choose view (any position, a target or a
contrast pair: next tokens, breakdown, attribution or rollout), at 256 and 1,024 tokens.

Interaction times are printed (not asserted). Screenshots go to tests.support.cli.artifacts_dir().
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.support.browser import Page
from tests.support.site import WORD_VOCAB, make_report, word_probe
from tests.test_views import ARTIFACTS, WIDTHS, no_sideways_scroll, report_timing
from tests.test_views import browser, char256  # noqa: F401 (fixtures: the browser, the 256-character report)
from visualizer.site.viewdata import THUMB_SIZE, thumbnail


@pytest.fixture(scope="module")
def heads144(tmp_path_factory):
    """12 layers x 12 heads at 1,024 tokens (a narrow d_model: the views' sizes are GPT-2 small's)."""
    folder = tmp_path_factory.mktemp("research") / "heads144"
    make_report(folder, word_probe(1024), WORD_VOCAB, n_layer=12, n_head=12, n_embd=48, block_size=1024)
    return folder


def column(p: Page, index: int) -> list:
    return p.js(f"Array.from(document.querySelectorAll('table.head-types tbody tr')).map(r => r.cells[{index}].getAttribute('data-v'))")


@pytest.mark.parametrize("width", WIDTHS)
def test_head_types_table_sorts_by_any_column_and_opens_a_head(browser, char256, width):
    record = json.loads((char256 / "report_data.json").read_text(encoding="utf-8"))["head_types"]
    p = Page(browser, char256, width, artifacts=ARTIFACTS)
    p.page.locator("#heads > summary").click()
    rows = p.page.locator("table.head-types tbody tr")
    assert rows.count() == 8 and column(p, 0) == [str(l * 10_000 + h) for l in range(2) for h in range(4)]
    previous = [record["probe"]["previous"]["score"][l][h] for l in range(2) for h in range(4)]
    assert [float(v) for v in column(p, 2)] == pytest.approx(previous, abs=1e-6)
    header = p.page.locator("table.head-types thead th").nth(2)
    start = time.perf_counter()
    header.click()
    sort_ms = 1000 * (time.perf_counter() - start)
    assert [float(v) for v in column(p, 2)] == pytest.approx(sorted(previous, reverse=True), abs=1e-6)  # largest first
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert [float(v) for v in column(p, 2)] == pytest.approx(sorted(previous), abs=1e-6)
    induction = p.page.locator("table.head-types thead th").nth(8)  # induction on the probe: rows without a target last
    induction.click()
    values = column(p, 8)
    present = [float(v) for v in values if v]
    assert present == sorted(present, reverse=True) and values[:len(present)] == [v for v in values if v]
    row = rows.nth(3)
    layer, head = int(row.get_attribute("data-layer")), int(row.get_attribute("data-head"))
    start = time.perf_counter()
    row.click()
    p.page.wait_for_function(f"document.getElementById('layer-{layer}').getAttribute('data-state') === 'ready'")
    open_ms = 1000 * (time.perf_counter() - start)
    pressed = p.page.locator(f"#layer-{layer} button.head-btn[aria-pressed='true']")
    assert pressed.get_attribute("data-head") == str(head)
    no_sideways_scroll(p)
    p.page.locator("#heads").scroll_into_view_if_needed()
    p.shot(f"research-head-types-{width}", "#heads")
    report_timing(f"head types @{width}", sort_click=sort_ms, sort_in_page=p.js("__vizTiming['heads.sort']"),
                  open_head=open_ms)
    assert p.errors() == [] and p.foreign_requests() == []


# --- model view -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_model_view_shows_every_head_max_pooled_links_each_and_marks_a_hovered_token(browser, heads144, width):
    p = Page(browser, heads144, width, artifacts=ARTIFACTS)
    opened = p.open("#attention")
    tiles = p.page.locator("#attention button.thumb")
    assert tiles.count() == 144
    S = THUMB_SIZE
    assert p.js("[...document.querySelectorAll('#attention button.thumb canvas')].every(c => c.width === %d && c.height === %d)" % (S, S))
    if width == 1400:  # every data cell at least one screen pixel
        assert tiles.first.locator("canvas").bounding_box()["width"] >= S
    # the tiles' data: each cell the largest weight of the block of positions it covers (not an average)
    patterns = load_file(str(heads144 / "activations.safetensors"))
    for layer, head in ((0, 0), (7, 5), (11, 11)):
        pattern = patterns[f"blocks.{layer}.attn.hook_pattern"][head]  # [T, T]
        size, expected = thumbnail(pattern)
        assert size == S and p.js(f"__vizData.thumbs.layers[{layer}][{head}]") == expected
        cells = np.frombuffer(base64.b64decode(expected), np.uint8).reshape(S, S)
        assert cells[S // 2, S // 2] == round(255 * float(pattern[512:528, 512:528].max()))  # the block's maximum
    # a hovered token: its row and column marked in every tile, the open layer's heatmap and head view
    p.page.locator("#attention .mv-tok[data-pos='700']").scroll_into_view_if_needed()
    p.page.locator("#attention .mv-tok[data-pos='700']").hover()
    assert p.js("__vizFocus()") == 700
    focus_ms = p.js("__vizTiming.focus")
    cell = 700 * S // 1024
    bands = p.js("[...document.querySelectorAll('#attention .mv-row')].map(b => [b.style.display, parseFloat(b.style.top)])")
    assert len(bands) == 144 and all(b == ["block", pytest.approx(cell / S * 100)] for b in bands)
    assert "700" in p.page.locator("#attention .mv-readout").text_content()
    tile = tiles.nth(11 * 12 + 7)
    assert tile.get_attribute("data-layer") == "11" and tile.get_attribute("data-head") == "7"
    start = time.perf_counter()
    tile.click()
    p.page.wait_for_function("document.getElementById('layer-11').getAttribute('data-state') === 'ready'")
    open_ms = 1000 * (time.perf_counter() - start)
    assert p.page.locator("#layer-11 button.head-btn[aria-pressed='true']").get_attribute("data-head") == "7"
    assert p.page.locator("#layer-11 canvas.heatmap").get_attribute("data-marked") == "700"
    assert "hv-cross" in p.page.locator("#layer-11 .hv-left .hv-tok[data-pos='700']").get_attribute("class")
    p.page.locator("#layer-11 .hv-right .hv-tok[data-pos='12']").hover()  # a head view's token moves the focus for all
    assert p.js("__vizFocus()") == 12
    assert p.js("parseFloat(document.querySelector('#attention .mv-row').style.top)") == pytest.approx(12 * S // 1024 / S * 100)
    assert "focus" in p.page.locator("#attention .mv-tok[data-pos='12']").get_attribute("class")
    no_sideways_scroll(p)
    p.page.locator("#attention").scroll_into_view_if_needed()
    p.shot(f"research-model-view-144-{width}", "#attention")
    report_timing(f"model view 12x12 @1024 tokens @{width}", open_section=1000 * opened,
                  draw=p.js("__vizTiming['attention.draw']"), hover_token_all_views=focus_ms, open_head=open_ms)
    assert p.errors() == [] and p.foreign_requests() == []


# --- neuron pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_neuron_pages_show_what_each_top_neuron_writes_and_where_it_fires(browser, char256, width):
    record = json.loads((char256 / "report_data.json").read_text(encoding="utf-8"))["neuron_pages"]
    p = Page(browser, char256, width, artifacts=ARTIFACTS)
    opened = p.open("#neurons")
    cards = p.page.locator("#neurons .neuron-card")
    assert cards.count() == 2 * record["per_layer"]
    assert p.js("[...document.querySelectorAll('#neurons canvas.neuron-strip')].every(c => c.getAttribute('data-drawn') === '1')")
    first = record["layers"][1]["neurons"][0]
    card = p.page.locator(f"#neuron-L1-N{first['neuron']}")
    chips = card.locator(".writes").first.locator(".chip")
    assert chips.count() == record["top_tokens"]
    assert chips.all_text_contents() == [r["readable"] for r in first["promoted"]]  # textContent: the model's own tokens
    assert f"@{first['position']}" in card.locator(".fires").text_content()  # where it fires most
    strip = card.locator("canvas.neuron-strip")
    strip.scroll_into_view_if_needed()
    box = strip.bounding_box()
    start = time.perf_counter()
    p.page.mouse.move(box["x"] + box["width"] * (100.5 / 256), box["y"] + box["height"] / 2)
    hover_ms = 1000 * (time.perf_counter() - start)
    assert p.js("__vizFocus()") == 100  # the hovered position, now marked in every view
    marks = p.js("[...document.querySelectorAll('#neurons .strip-mark')].map(m => [m.style.display, parseFloat(m.style.left)])")
    assert all(m == ["block", pytest.approx(100.5 / 256 * 100)] for m in marks)
    assert "position 100" in p.page.locator(".viz-tip").last.text_content()
    no_sideways_scroll(p)
    p.shot(f"research-neurons-{width}", "#neurons")
    report_timing(f"neuron pages @{width}", open_section=1000 * opened, draw=p.js("__vizTiming['neurons.draw']"),
                  hover_strip=hover_ms, focus_all_views=p.js("__vizTiming.focus"))
    assert p.errors() == [] and p.foreign_requests() == []


# --- choose a position and a target ---------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_choose_any_position_a_target_and_a_contrast_pair(browser, char256, heads144, width):
    for name, folder in (("char256", char256), ("heads144-1024", heads144)):
        record = json.loads((folder / "report_data.json").read_text(encoding="utf-8"))["choices"]
        T = len(record["ids"])
        p = Page(browser, folder, width, artifacts=ARTIFACTS)
        opened = p.open("#choose")
        view = p.page.locator("#choose .choose-view")
        assert view.get_attribute("data-pos") == str(T - 1)  # the last position first
        position = 200
        chip = p.page.locator(f"#choose .ch-tok[data-pos='{position}']")
        chip.scroll_into_view_if_needed()
        start = time.perf_counter()
        chip.click()
        click_ms = 1000 * (time.perf_counter() - start)
        ids = record["ids"][position]
        assert view.get_attribute("data-pos") == str(position) and view.get_attribute("data-a") == str(ids[0])
        rows = p.page.locator("#choose .ch-table tbody tr")
        assert rows.count() == 11  # the top 10 and "no B"
        # the pair: the second candidate as B
        p.page.locator(f"#choose .ch-table input[name='ch-b'][value='{ids[1]}']").check()
        assert view.get_attribute("data-b") == str(ids[1])
        raw = record["breakdown"]["raw"][position]
        assert float(p.page.locator("#choose .ch-break").get_attribute("data-raw")) == pytest.approx(raw[0] - raw[1], abs=1e-4)
        total = float(p.page.locator("#choose .ch-break").get_attribute("data-sum"))
        assert total == pytest.approx(raw[0] - raw[1], abs=0.02 * max(1.0, abs(raw[0] - raw[1])))  # float16 parts
        cells = p.page.locator("#choose .ch-grid td.cellv").count()
        assert cells >= 12 * 13 if name.startswith("heads") else cells >= 2 * 5
        kind = p.page.locator("#choose .ch-attr").get_attribute("data-kind")
        covered = position in record["attribution"]["positions"]
        assert kind == ("gradient" if covered else "rollout")
        assert "A − B" in p.page.locator("#choose .ch-status").text_content() or "−" in p.page.locator("#choose .ch-status").text_content()
        colored = p.js(f"[...document.querySelectorAll('#choose .ch-astrip .tok')].slice(0, {position + 1}).every(e => e.style.background)")
        after = p.js(f"[...document.querySelectorAll('#choose .ch-astrip .tok')].slice({position + 1}).every(e => e.classList.contains('after'))")
        assert colored and after
        p.page.locator("#choose .ch-bar button[aria-label='next position']").click()
        assert view.get_attribute("data-pos") == str(position + 1) and view.get_attribute("data-b") in ("", str(ids[1]))
        if name.startswith("heads"):  # beyond the budget's positions: rollout; within: the gradient
            assert record["attribution"]["positions"] and record["attribution"]["positions"][-1] == T - 1
            assert record["attribution"]["positions"][0] > position and kind == "rollout"
            p.js(f"__vizChoose({T - 1})")
            assert p.page.locator("#choose .ch-attr").get_attribute("data-kind") == "gradient"
        draw_ms = p.js("__vizTiming['choose.draw']")
        no_sideways_scroll(p)
        p.page.locator("#choose").scroll_into_view_if_needed()
        p.shot(f"research-choose-{name}-{width}", "#choose")
        report_timing(f"choose {name} @{width}", open_section=1000 * opened, click_position=click_ms, redraw_in_page=draw_ms)
        assert p.errors() == [] and p.foreign_requests() == []


def test_the_new_views_show_hostile_tokens_as_text(browser, tmp_path):
    from tests.support.site import INJECTION_PROBE, INJECTION_VOCAB

    folder = tmp_path / "hostile"
    make_report(folder, INJECTION_PROBE, INJECTION_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=64)
    p = Page(browser, folder, 1400, artifacts=ARTIFACTS)
    for section in ("#heads", "#attention", "#neurons", "#choose"):
        p.page.locator(f"{section} > summary").click()
    p.page.wait_for_function("['attention', 'neurons', 'choose'].every(s => document.getElementById(s).getAttribute('data-state') === 'ready')")
    p.page.locator("#attention .mv-tok").nth(3).hover()
    p.page.locator("#choose .ch-tok").nth(5).click()
    texts = p.js("[...document.querySelectorAll('#choose .ch-tok, #neurons .chip')].map(e => e.textContent)")
    assert "<script>alert(1)</script>" in texts or "<script>window.__pwned=1</script>" in texts
    assert p.js("window.__pwned") is None and p.dialogs == []
    assert p.errors() == [] and p.foreign_requests() == []
