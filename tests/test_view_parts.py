"""The pieces of the views that need no browser: the link to the site index only where one is, a
plain <title>, PNG axis labels that never run into the next panel, the logit lens of the embeddings,
the breakdown table's whole-row parts, and the control-picture font's coverage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import visualizer.figures.raster as raster
from tests.support.nanogpt import make_checkpoint
from tests.support.site import CHAR_VOCAB, make_report
from visualizer.analysis.report_data import build_report_data
from visualizer.artefacts.layout import SITE_OWNER_FILE
from visualizer.capture import capture
from visualizer.model.probe import prepare_probe
from visualizer.model.registry import load_model
from visualizer.model.tokenizer import readable
from visualizer.site.common import plain_text, site_index_href
from visualizer.site.report import lens_data

STATIC = Path(__file__).resolve().parents[1] / "templates" / "static"


def site_root(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<!doctype html>", encoding="utf-8")
    (folder / SITE_OWNER_FILE).write_text(json.dumps({"tool": "visualizer", "files": ["index.html"]}), encoding="utf-8")
    return folder


def test_the_all_reports_link_points_at_an_index_that_is_there(tmp_path):
    root = site_root(tmp_path / "visualizations")
    assert site_index_href(root / "model" / "probe") == "../../index.html"  # found above the report
    assert site_index_href(root / "probe") == "../index.html"
    assert site_index_href(tmp_path / "elsewhere" / "report") is None  # --out outside a site: no link
    new = tmp_path / "new-site"  # a root whose index is written with the report (it does not exist yet)
    assert site_index_href(new / "a", site_root=new) == "../index.html"
    assert site_index_href(tmp_path / "x", site_root=new) is None  # not under that root
    report = root / "model" / "probe"
    report.mkdir(parents=True)
    (report / "trace.json").write_text("{}", encoding="utf-8")
    (report / "index.html").write_text('<meta name="generator" content="visualizer 1">', encoding="utf-8")
    assert site_index_href(report / "inner") == "../../../index.html"  # a report is no site root, its parent site is


def test_rendered_report_links_its_site_index_only_when_asked(tmp_path):
    folder = tmp_path / "r"
    make_report(folder, "ROMEO: a light", CHAR_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=32)
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "all reports" not in html  # written outside any site
    from visualizer.site.report import render_folder

    render_folder(folder, [], "../index.html")
    assert '<a href="../index.html" class="up">all reports</a>' in (folder / "index.html").read_text(encoding="utf-8")


def test_titles_are_plain_text():
    assert plain_text("ROMEO:\n  But\tsoft\x14, what\r\u2028light") == "ROMEO: But soft, what light"
    assert plain_text("<b>&amp;</b> 😀") == "<b>&amp;</b> 😀"  # escaping is the template's job


def test_png_tick_labels_never_run_into_the_next_panel():
    font = raster.font(10)
    # four panels 64 px wide, 8 px apart; ticks 0, 20, 40, 60 in each
    items = [(panel * 72 + x, str(x)) for panel in range(4) for x in (0, 20, 40, 60)]
    kept = raster.fitting_labels(items, font, 64, 72, 4)
    spans = [(x - font.getlength(t) / 2, x + font.getlength(t) / 2) for x, t in kept]
    assert all(a[1] + 4 <= b[0] for a, b in zip(spans, spans[1:]))  # 4 px between any two labels
    assert [t for x, t in kept if x % 72 == 0] == ["0"] * 4  # every panel keeps its first number
    assert kept[-1] == (3 * 72 + 60, "60")  # the last panel's right edge is no limit


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("lens")
    ckpt, meta = make_checkpoint(root / "m", vocab=CHAR_VOCAB, n_layer=2, n_head=2, n_embd=16, block_size=32)
    loaded = load_model(ckpt, meta, "cpu")
    probe = prepare_probe(loaded, "ROMEO: a light")
    cache = capture(loaded, probe.ids)
    return loaded, cache, build_report_data(loaded, cache, probe.ids, 5)


def test_the_lens_of_the_embeddings_is_the_residual_entering_block_0(small_run):
    loaded, cache, data = small_run
    embed = data["logit_lens_embed"]
    assert embed["hook"] == "blocks.0.hook_resid_pre"
    logits = loaded.adapter.logits_from_residual(loaded, cache.tensors["blocks.0.hook_resid_pre"])  # [T, vocab]
    top = torch.log_softmax(logits.double(), -1).argmax(-1).tolist()
    assert [row[0]["id"] for row in embed["topk"]] == top
    assert len(embed["entropy_bits"]) == len(embed["kl_to_final"]) == logits.shape[0]
    assert [e["hook"] for e in data["logit_lens"]] == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]  # unchanged
    page = lens_data(data)
    assert page["embed"]["hook"] == "blocks.0.hook_resid_pre" and len(page["layers"]) == 2
    assert all(str(i) in page["vocab"] for i in page["embed"]["ids"])
    old = lens_data({k: v for k, v in data.items() if k != "logit_lens_embed"})  # reports written before it
    assert "embed" not in old


def test_the_breakdown_puts_embeddings_and_constant_across_the_whole_row(tmp_path):
    folder = tmp_path / "r"
    make_report(folder, "ROMEO: a light", CHAR_VOCAB, n_layer=2, n_head=3, n_embd=24, block_size=32)
    html = (folder / "index.html").read_text(encoding="utf-8")
    table = html[html.index('<table class="data comps">'):]
    table = table[:table.index("</table>")]
    assert '<th></th><th>H0</th><th>H1</th><th>H2</th><th>MLP</th>' in table
    for name in ("embed", "pos_embed", "constant"):
        assert f'<tr class="whole"><th>{name}</th><td class="cellv" colspan="4"' in table


def test_the_control_picture_font_covers_every_symbol_the_tokens_use():
    from fontTools.ttLib import TTFont

    font = TTFont(str(STATIC / "fonts" / "control-pictures.ttf"))
    have = set(font.getBestCmap())
    shown = {ord(c) for code in range(0x20) for c in readable(chr(code))} | {ord(c) for c in readable("\x7f")}
    pictures = {c for c in shown if 0x2400 <= c <= 0x2426}
    assert pictures and pictures - {0x2422, 0x2423} <= have  # U+2423 (␣) is DejaVu's own
    assert font["post"].isFixedPitch and (STATIC / "fonts" / "LICENSE-control-pictures.txt").is_file()
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    assert 'url("fonts/control-pictures.ttf")' in css and "unicode-range: U+2400-2421, U+2424-2426" in css


def test_reports_written_by_the_cli_link_the_index_written_with_them(tmp_path):
    from tests.support.cli import run_cli

    ckpt, meta = make_checkpoint(tmp_path / "m", vocab=CHAR_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=32)
    common = ["--checkpoint", ckpt, "--meta", meta, "--no-store", "--ig-steps", "0", "--quiet"]
    code, _, err = run_cli(*common, "--probe", "ROMEO: a", "--probe", "JULIET: b", "--out", tmp_path / "site")
    assert code == 0, err
    pages = sorted((tmp_path / "site").glob("*/index.html"))
    assert len(pages) == 2 and (tmp_path / "site" / "index.html").is_file()
    for page in pages:
        assert '<a href="../index.html" class="up">all reports</a>' in page.read_text(encoding="utf-8")
    code, _, err = run_cli(*common, "--probe", "ROMEO: a", "--out", tmp_path / "alone")
    assert code == 0, err
    assert "all reports" not in (tmp_path / "alone" / "index.html").read_text(encoding="utf-8")
