"""The generation view in headless Chromium from file://: no console errors, no network, and every
control reacts (token click, slider and keys, flow graph threshold/focus/show-all/reset, heads).
Skips when Chromium or Playwright is missing. Screenshots go to tests.support.cli.artifacts_dir() (look at them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.nanogpt import make_checkpoint
from tests.support.cli import artifacts_dir, run_cli

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = artifacts_dir()


@pytest.fixture(scope="module")
def page_path(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium")
    pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("genpage")
    ckpt, meta = make_checkpoint(root / "m", vocab=list("\n !',.:;?abcdefghijklmnopqrstuvwxyzRO<&>"), block_size=32,
                                 n_layer=2, n_head=3, n_embd=24)
    code, _, stderr = run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--prompt", "romeo: <o> & rare",
                              "--max-new-tokens", "8", "--snapshot-every", "4", "--out", root / "g", "--quiet")
    assert code == 0, stderr
    return root / "g" / "index.html"


def test_generation_view_works_offline(page_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            assert page.locator("#step-label").text_content() == "step 7 (token 8 of 8)"
            assert page.locator("#detail-step").text_content() == "7"

            page.locator(".gtok[data-step='2']").click()  # a token: its candidates and its logit lens
            assert page.locator("#detail-step").text_content() == "2"
            assert page.locator("#cand-before tbody tr").count() == 10
            assert page.locator("#lens-table tbody tr").count() == 2
            assert page.locator(".gtok.future").count() == 5
            page.keyboard.press("ArrowRight")
            assert page.locator("#step-label").text_content() == "step 3 (token 4 of 8)"
            page.keyboard.press("Home")
            assert page.locator("#detail-step").text_content() == "0"
            page.locator("#step-slider").fill("5")
            assert page.locator("#step-label").text_content() == "step 5 (token 6 of 8)"

            # flow graph: one step's edges, then all, then a threshold, a focus and a reset
            edges = lambda: page.locator("#flow-svg path.edge").count()  # noqa: E731
            page.locator("#flow-threshold").fill("0")
            assert edges() == 17 + 5  # step 5 reads the 17 prompt tokens and 5 generated ones
            page.locator("#flow-all").check()
            all_edges = edges()
            assert all_edges == sum(17 + s for s in range(8))
            page.locator("#flow-threshold").fill("0.048")  # near-uniform rows: 1/17 kept, 1/24 not
            assert 0 < edges() < all_edges
            page.locator("#flow-layer").select_option("1")
            page.locator("#flow-head").select_option("2")
            page.locator("#flow-split").check()
            page.locator("#flow-threshold").fill("0")
            page.locator("#flow-svg .node.prompt").nth(3).click()
            assert "only the connections of prompt position 3" in page.locator("#flow-status").text_content()
            assert edges() == 8  # every step read prompt position 3
            page.screenshot(path=str(ARTIFACTS / "generation-flow-focus.png"), full_page=True)
            page.locator("#flow-reset").click()
            assert page.locator("#flow-all").is_checked() is False and "step 5" in page.locator("#flow-status").text_content()

            page.locator("#heads-layer").select_option("0")
            assert page.locator("#heads-table thead th").count() == 2 + 3
            assert page.locator("#heads-table tbody tr").count() == 17 + 5
            texts = page.locator(".gen-text").text_content()
            assert "<o>" in texts and "&" in texts  # shown as text, not markup
            page.screenshot(path=str(ARTIFACTS / "generation-view.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert all(url.startswith("file://") for url in requests), requests
