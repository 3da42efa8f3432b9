"""The views a researcher works with beyond one head (issue 13's "what to build"), in headless
Chromium at 1400 and 390 px: the head-types table (sorted by any column, a row opens its head).

Interaction times are printed (not asserted). Screenshots go to tests.support.cli.artifacts_dir().
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.browser import Page, chromium
from tests.support.cli import artifacts_dir
from tests.support.site import CHAR_VOCAB, make_report

ARTIFACTS = artifacts_dir()
WIDTHS = (1400, 390)
CHAR_PROBE = ("ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"
              "Arise, fair sun, and kill the envious moon.\n" * 3)[:256]


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    yield from chromium()


@pytest.fixture(scope="module")
def char256(tmp_path_factory):
    folder = tmp_path_factory.mktemp("research") / "char256"
    make_report(folder, CHAR_PROBE, CHAR_VOCAB, n_layer=2, n_head=4, n_embd=32, block_size=256)
    return folder


def report_timing(name: str, **times) -> None:
    print(f"\n[timing] {name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in times.items()))


def no_sideways_scroll(p: Page) -> None:
    width, inner = p.js("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page scrolls sideways: {width} > {inner}"


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
