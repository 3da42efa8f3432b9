"""The generation view's attention controls in headless Chromium from file://: stepping through the
generation (buttons, arrow keys, Home/End, the step number), the threshold, and clicking a token (or
Enter on it from the keyboard) to keep only its connections, Escape to clear.

Checked against the data, not against fixed numbers: every drawn edge carries its query, key and
weight (data-q, data-k, data-w), and each step's weights are compared with the exact float32 rows
of generation.json (the page holds them as bytes scaled to each row's maximum: within max/510). The
model's attention is sharpened (query and key weights scaled) so that a threshold splits a row.
Also: a 390 px phone does not scroll sideways, a hostile vocabulary stays text, no console error,
no request leaves file://. Screenshots go to tests.support.cli.artifacts_dir() (look at them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.browser import Page, chromium
from tests.support.cli import artifacts_dir, run_cli
from tests.support.nanogpt import make_checkpoint
from tests.support.site import INJECTION_PROBE, INJECTION_VOCAB
from visualizer.artefacts.attention_codec import decode_float32

ARTIFACTS = artifacts_dir()
VOCAB = list("\n !',.:;?abcdefghijklmnopqrstuvwxyzRO<&>")
PROMPT = "romeo: <o> & rare"
STEPS = 8


def sharpen(ckpt: Path, factor: float) -> None:
    """Scale every block's query and key weights by `factor` (the attention logits by factor**2):
    a random model's near-uniform rows become peaked."""
    checkpoint = torch.load(ckpt, weights_only=False)
    for name, weight in checkpoint["model"].items():
        if name.endswith("attn.c_attn.weight"):  # [3 * n_embd, n_embd]: query, key, value rows
            weight[: 2 * weight.shape[1]] *= factor
    torch.save(checkpoint, ckpt)


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-controls")
    ckpt, meta = make_checkpoint(root / "m", vocab=VOCAB, block_size=32, n_layer=2, n_head=3, n_embd=24)
    sharpen(ckpt, 25.0)
    code, _, stderr = run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--prompt", PROMPT,
                              "--max-new-tokens", str(STEPS), "--out", root / "g", "--quiet")
    assert code == 0, stderr
    return root / "g"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-hostile")
    ckpt, meta = make_checkpoint(root / "m", vocab=INJECTION_VOCAB, block_size=128, n_layer=1, n_head=2, n_embd=16)
    code, _, stderr = run_cli("generate", "--checkpoint", ckpt, "--meta", meta, "--prompt", INJECTION_PROBE,
                              "--max-new-tokens", "12", "--temperature", "1", "--seed", "2", "--out", root / "g", "--quiet")
    assert code == 0, stderr
    return root / "g"


def record(folder: Path) -> dict:
    return json.loads((folder / "generation.json").read_text(encoding="utf-8"))


def exact_row(step: dict) -> tuple[np.ndarray, float]:
    """A step's attention row, mean over layers and heads, from the exact float32 record; and how far
    the page's 8-bit copy may be from it (the largest row maximum / 510)."""
    att = decode_float32(step["attention"]).astype(np.float64)  # [n_layer, n_head, T]
    return att.mean(axis=(0, 1)), float(att.max()) / 510 + 1e-9


def edges(p: Page) -> list[tuple[int, int, float]]:
    """The drawn edges as (query position, key position, weight)."""
    return [tuple(e) for e in p.js("Array.from(document.querySelectorAll('#flow-svg path.edge'))"
                                   ".map(e => [+e.dataset.q, +e.dataset.k, +e.dataset.w])")]


def graph(p: Page) -> dict:
    return p.js("Object.assign({}, document.getElementById('flow-svg').dataset)")


def open_page(browser, folder: Path, width: int = 1400) -> Page:
    p = Page(browser, folder, width, artifacts=ARTIFACTS)
    p.page.locator("#flow-threshold").fill("0")
    p.js("document.activeElement.blur()")  # keys go to the page, not the slider
    return p


def clean(p: Page) -> None:
    assert p.errors() == [] and p.foreign_requests() == [] and p.dialogs == []


def assert_shows_step(p: Page, rec: dict, s: int) -> None:
    """The page is at step s and the graph draws step s's row over its context, weights as recorded."""
    n, P = len(rec["steps"]), len(rec["prompt_ids"])
    step = rec["steps"][s]
    assert p.page.locator("#step-label").text_content() == f"step {s} (token {s + 1} of {n})"
    assert p.page.locator("#step-number").input_value() == str(s)
    assert p.page.locator("#step-slider").input_value() == str(s)
    assert p.page.locator(".gtok.current").get_attribute("data-step") == str(s)
    assert p.page.locator("#detail-step").text_content() == str(s)
    assert graph(p)["step"] == str(s)
    row, tol = exact_row(step)
    context = range(step["context_start"], step["context_start"] + step["context_length"])
    drawn = edges(p)
    assert {q for q, _, _ in drawn} == {P + s}  # the token produced at this step ...
    assert {k for _, k, _ in drawn} <= set(context)  # ... over the context so far
    for _, k, w in drawn:
        assert abs(w - row[k - step["context_start"]]) <= tol, (s, k, w)
    missing = [k for k in context if k not in {k for _, k, _ in drawn}]
    assert all(row[k - step["context_start"]] <= tol for k in missing)  # only the ones that round to 0
    assert int(graph(p)["shown"]) == len(drawn) and int(graph(p)["hidden"]) == len(missing)


def test_stepping_shows_each_steps_attention_over_the_context_so_far(browser, peaked):
    rec = record(peaked)
    p = open_page(browser, peaked)
    assert_shows_step(p, rec, STEPS - 1)
    p.page.keyboard.press("ArrowLeft")
    assert_shows_step(p, rec, STEPS - 2)
    p.page.locator("#step-prev").click()
    assert_shows_step(p, rec, STEPS - 3)
    p.page.locator("#step-next").click()
    assert_shows_step(p, rec, STEPS - 2)
    p.page.locator("#step-number").fill("2")
    assert_shows_step(p, rec, 2)
    p.js("document.activeElement.blur()")
    p.page.keyboard.press("Home")
    assert_shows_step(p, rec, 0)
    p.page.keyboard.press("ArrowRight")
    assert_shows_step(p, rec, 1)
    p.page.locator("#step-slider").fill("5")
    assert_shows_step(p, rec, 5)
    p.page.locator(".gtok[data-step='3']").click()
    assert_shows_step(p, rec, 3)
    p.page.keyboard.press("End")
    assert_shows_step(p, rec, STEPS - 1)
    clean(p)


def test_the_threshold_hides_the_weights_below_it(browser, peaked):
    rec = record(peaked)
    P, T = len(rec["prompt_ids"]), rec["steps"][-1]["context_length"]
    p = open_page(browser, peaked)
    weights = sorted(w for _, _, w in edges(p))
    p.page.locator("#flow-threshold").fill(f"{np.median(weights):.3f}")
    t = float(p.page.locator("#flow-threshold").input_value())  # as the range input kept it
    kept = [w for w in weights if w >= t]
    assert 0 < len(kept) < len(weights), "the sharpened model should split the row"
    assert sorted(w for _, _, w in edges(p)) == kept
    assert int(graph(p)["shown"]) == len(kept) and int(graph(p)["hidden"]) == T - len(kept)
    assert p.page.locator("#flow-status").text_content().startswith(f"{len(kept)} edges ≥ {t:.3f}, ")
    assert p.page.locator("#flow-threshold-value").text_content() == f"{t:.3f}"
    # every step: the same threshold over all rows
    p.page.locator("#flow-all").check()
    p.page.locator("#flow-threshold").fill("0")
    every = edges(p)
    assert {q for q, _, _ in every} == set(range(P, P + STEPS))
    p.page.locator("#flow-threshold").fill(f"{t:.3f}")
    assert sorted(edges(p)) == sorted(e for e in every if e[2] >= t)
    p.page.locator("#flow-threshold").fill("0.5")
    assert all(w >= 0.5 for _, _, w in edges(p))
    assert len(edges(p)) == sum(1 for e in every if e[2] >= 0.5)
    clean(p)


def test_clicking_a_token_keeps_only_its_connections(browser, peaked):
    rec = record(peaked)
    P = len(rec["prompt_ids"])
    p = open_page(browser, peaked)
    p.page.locator("#flow-all").check()
    every = edges(p)  # every step's row, threshold 0
    p.page.locator("#flow-all").uncheck()
    unfocused = edges(p)
    assert len(unfocused) < len(every)

    def touching(pos: int, last_step: int) -> list:
        return sorted(e for e in every if (e[0] == pos or e[1] == pos) and e[0] <= P + last_step)

    node = lambda pos: p.page.locator(f"#flow-svg .node[data-pos='{pos}']")  # noqa: E731
    # a prompt token: the rows of the steps up to the slider that read it
    node(3).click()
    assert graph(p)["focus"] == "3" and node(3).get_attribute("aria-pressed") == "true"
    shown = edges(p)
    assert sorted(shown) == touching(3, STEPS - 1) and all(k == 3 for _, k, _ in shown) and len(shown) >= 2
    for q, _, w in shown:  # each reader shows its weight beside its box
        assert node(q).locator("text.weight").text_content() == f"{w:.3f}"
    assert "only the connections of prompt position 3" in p.page.locator("#flow-status").text_content()
    p.page.screenshot(path=str(ARTIFACTS / "generation-controls-focus-1400.png"), full_page=True)
    p.page.keyboard.press("ArrowLeft")  # stepping back drops the later readers
    p.page.keyboard.press("ArrowLeft")
    assert sorted(edges(p)) == touching(3, STEPS - 3)
    node(3).click()  # again: cleared
    assert graph(p)["focus"] == "" and node(3).get_attribute("aria-pressed") == "false"
    assert {q for q, _, _ in edges(p)} == {P + STEPS - 3}
    # a generated token: its own row and the later rows that read it; one after the slider moves the slider
    node(P + STEPS - 1).click()
    assert graph(p)["step"] == str(STEPS - 1) and graph(p)["focus"] == str(P + STEPS - 1)
    node(P + 2).click()
    shown = edges(p)
    assert sorted(shown) == touching(P + 2, STEPS - 1)
    assert {q for q, _, _ in shown if q != P + 2} and {k for q, k, _ in shown if q == P + 2}  # read by, and reads
    assert graph(p)["step"] == str(STEPS - 1)  # the slider stays where it was
    p.page.keyboard.press("Escape")
    assert graph(p)["focus"] == "" and sorted(edges(p)) == sorted(unfocused)
    # the keyboard: one tab stop into the graph (the node last clicked), arrows move along the
    # tokens, Enter or Space filters
    p.page.locator("#flow-reset").focus()
    p.page.keyboard.press("Tab")
    active = lambda: p.js("document.activeElement.getAttribute('data-pos')")  # noqa: E731
    assert active() == str(P + 2)
    assert p.page.locator("#flow-svg .node[tabindex='0']").count() == 1
    for _ in range(3):
        p.page.keyboard.press("ArrowDown")
    assert active() == str(P + 5)
    p.page.keyboard.press("Enter")
    assert graph(p)["focus"] == str(P + 5) and active() == str(P + 5)  # the redraw keeps the keyboard there
    assert sorted(edges(p)) == touching(P + 5, STEPS - 1)
    p.page.keyboard.press(" ")
    assert graph(p)["focus"] == ""
    p.page.keyboard.press("ArrowUp")
    p.page.keyboard.press("Enter")
    assert graph(p)["focus"] == str(P + 4)
    p.page.keyboard.press("Escape")
    assert graph(p)["focus"] == "" and active() == str(P + 4)
    p.page.keyboard.press("ArrowLeft")  # arrows left and right still step
    assert graph(p)["step"] == str(STEPS - 2)
    clean(p)


def test_a_phone_does_not_scroll_sideways_and_a_tap_filters(browser, peaked):
    p = open_page(browser, peaked, 390)
    P = len(record(peaked)["prompt_ids"])
    width, inner = p.js("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page scrolls sideways: {width} > {inner}"
    svg_width = float(p.page.locator("#flow-svg").get_attribute("width"))
    assert svg_width <= p.js("document.querySelector('.flow-wrap').clientWidth")
    boxes = p.js("Array.from(document.querySelectorAll('#flow-svg rect')).map(r => [+r.getAttribute('x'), +r.getAttribute('width')])")
    assert boxes and all(x >= 0 and x + w <= svg_width for x, w in boxes)  # boxes and weight plates on screen
    for control in ("#step-prev", "#step-next", "#step-number", "#flow-threshold", "#flow-reset"):
        box = p.page.locator(control).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= inner, control
    p.page.screenshot(path=str(ARTIFACTS / "generation-controls-390.png"), full_page=True)
    p.page.locator("#flow-threshold").fill("0.02")
    p.page.locator(f"#flow-svg .node[data-pos='{P + 1}']").click()
    assert graph(p)["focus"] == str(P + 1)
    assert all(q == P + 1 or k == P + 1 for q, k, _ in edges(p))
    p.page.locator("#flow").screenshot(path=str(ARTIFACTS / "generation-controls-focus-390.png"))
    assert p.js("[document.scrollingElement.scrollWidth, innerWidth]")[0] <= inner
    clean(p)


def test_a_hostile_vocabulary_stays_text_in_the_graph(browser, hostile):
    rec = record(hostile)
    P = len(rec["prompt_ids"])
    assert any("<" in t for t in rec["prompt_tokens_readable"]) and rec["steps"]
    p = open_page(browser, hostile)
    tokens = rec["prompt_tokens_readable"] + [s["readable"] for s in rec["steps"]]
    titles = p.js("Array.from(document.querySelectorAll('#flow-svg .node > title')).map(t => t.textContent)")
    assert len(titles) == len(tokens)
    for pos, (title, token) in enumerate(zip(titles, tokens)):
        assert title.endswith(": " + token), (pos, title, token)
    for pos in (i for i, t in enumerate(tokens) if "<" in t or '"' in t or "&" in t):
        p.page.locator(f"#flow-svg .node[data-pos='{pos}']").click()
        assert json.dumps(tokens[pos], ensure_ascii=False) in p.page.locator("#flow-status").text_content()
        p.page.keyboard.press("Escape")
    tags = p.js("Array.from(new Set(Array.from(document.querySelectorAll('#flow-svg *')).map(e => e.tagName)))")
    assert set(tags) <= {"g", "rect", "text", "path", "title"}
    scripts = p.js("Array.from(document.scripts).map(s => s.getAttribute('src') || s.type)")
    assert scripts == ["assets/palette.js", "application/json", "assets/generation.js"]
    assert p.js("window.__pwned") is None and p.page.locator("#gen-text img, #flow img").count() == 0
    assert P + len(rec["steps"]) == p.page.locator("#flow-svg .node").count()
    clean(p)
