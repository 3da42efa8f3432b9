"""What the page says about a model comes from its adapter's declarations, and colours from one
palette: the PNG and the page's scripts give a value the same colour, no site module or template
names a family or reads a family's card keys, and the card is the declared rows. (That an RMSNorm
model's captions and card never say LayerNorm: test_families.py, on each family's report.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visualizer.figures.palette as palette
import visualizer.figures.raster as raster
import visualizer.site.common as site
import visualizer.site.report as render
from tests.support.site import CHAR_VOCAB, make_report
from tests.test_families import FAMILIES
from visualizer.figures.wordmaps import save_png
from visualizer.model.registry import load_model

ROOT = Path(__file__).resolve().parent.parent
PRESENTATION_FILES = sorted([*(ROOT / "visualizer" / "site").glob("*.py"),
                             *(p for p in (ROOT / "templates").rglob("*.*") if p.suffix != ".ttf")])  # text files
FAMILY_NAMES = re.compile(r"nanogpt|nanochat|llama|gpt-?2|qwen|mistral", re.IGNORECASE)
# card keys that are ordinary words the page also uses for other things (group ids, headings)
PLAIN_WORDS = {"family", "tokenizer", "positions", "source", "dtype", "norm", "activation", "mlp", "step", "meta",
               "architecture", "facts", "dataset"}
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_card(request, tmp_path_factory):
    """(family, its model card) from a tiny model of each family."""
    return request.param, load_model(FAMILIES[request.param](tmp_path_factory.mktemp(request.param)), None).card


# --- declarations (captions and cards per family: test_families.py, on the report it writes) ----


def test_site_and_templates_name_no_family_nor_card_key(family_card):
    name, card = family_card
    keys = {k for k in card if k not in PLAIN_WORDS}
    for path in PRESENTATION_FILES:
        text = path.read_text(encoding="utf-8")
        assert not FAMILY_NAMES.search(text), (path, FAMILY_NAMES.search(text).group(0))
        named = [k for k in keys if re.search(rf"\b{re.escape(k)}\b", text)]
        assert not named, (path, name, named)


def test_the_page_reads_the_declared_rows_not_the_card(tmp_path):
    folder = tmp_path / "report"
    make_report(folder, "ROMEO: a light", CHAR_VOCAB, n_layer=1, n_head=2, n_embd=16, block_size=32)
    trace = json.loads((folder / "trace.json").read_text(encoding="utf-8"))
    before = (folder / "index.html").read_bytes()
    copy = tmp_path / "no-card"
    shutil.copytree(folder, copy)
    (copy / "trace.json").write_text(json.dumps({**trace, "model": {}}), encoding="utf-8")
    render.render_folder(copy, [])
    assert (copy / "index.html").read_bytes() == before  # the card's keys play no part
    # a trace written before adapters declared anything still renders: its card, flattened
    old = {k: v for k, v in trace.items() if k != "presentation"}
    (copy / "trace.json").write_text(json.dumps(old), encoding="utf-8")
    render.render_folder(copy, [])
    html = (copy / "index.html").read_text(encoding="utf-8")
    assert f"<td>{trace['model']['checkpoint_file']}</td>" in html and "<th>n_layer</th>" in html


# --- one palette --------------------------------------------------------------------------------


def test_the_palette_assets_are_generated_from_palette_py():
    for name, text in palette.GENERATED.items():
        assert (palette.STATIC / name).read_text(encoding="utf-8") == text(), f"run python -m visualizer.figures.palette ({name})"


VALUES = [0.0, 1e-9, 0.5 / 255, 1 / 510, 1 / 255, 0.25, 0.5, 127.5 / 255, 0.75, 254.5 / 255, 0.999, 1.0, 1.5, -0.2]


def test_a_png_cell_has_exactly_the_palette_colour(tmp_path):
    values = np.array(VALUES[:12], dtype=np.float64).reshape(1, 3, 4)
    for scale, table, vmin, vmax in (("sequential", palette.SEQUENTIAL, 0.0, 1.0), ("diverging", palette.DIVERGING, -1.0, 1.0)):
        data = {"values": values * (vmax - vmin) + vmin, "mask": None, "tile_titles": None, "vmin": vmin, "vmax": vmax,
                "geometry": raster.tile_geometry(1, 3, 4, square=False), "row_labels": None, "col_labels": None,
                "title": "t", "subtitle": "s", "note": "", "xlabel": "x", "ylabel": "y"}
        path = tmp_path / f"{scale}.png"
        save_png(raster.tiles_image(data, table), path, keep=table)
        with Image.open(path) as image:
            written = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()}
        for v in data["values"].ravel():
            assert palette.colour(scale, v, vmin, vmax) in written, (scale, v)


def test_the_page_scripts_colour_a_value_as_the_pngs_do(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    site.copy_assets(tmp_path)
    (tmp_path / "p.html").write_text('<!doctype html><script src="assets/palette.js"></script>', encoding="utf-8")
    limits = [(0.0, 1.0), (-1.0, 1.0), (-3.7, 3.7), (0.0, 255.0), (0.0, 0.1433)]
    cases = [(s, float(v) * (hi - lo) + lo, lo, hi) for s in ("sequential", "diverging") for lo, hi in limits for v in VALUES]
    cases += [("sequential", float("nan"), 0.0, 1.0), ("diverging", float("inf"), -1.0, 1.0)]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.goto((tmp_path / "p.html").as_uri())
        got = page.evaluate("""(cases) => cases.map(([s, v, lo, hi]) => {
            const P = window.__vizPalette; return [P.colour(s, v, lo, hi), P.ink(s, v, lo, hi)]; })""",
                            [list(c) for c in cases])
        series = page.evaluate("window.__vizPalette.series")
        browser.close()
    for (scale, v, lo, hi), (rgb, ink) in zip(cases, got):
        expected = palette.colour(scale, v, lo, hi)
        assert tuple(rgb) == expected, (scale, v, lo, hi)
        assert ink == palette.hex_of(palette.ink_for(expected))
    assert series == {name: palette.hex_of(rgb) for name, rgb in palette.NORM_SERIES}
