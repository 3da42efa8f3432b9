"""The report's one palette: a colour scale per kind of quantity, for the PNGs and for the page.

- SEQUENTIAL, for non-negative quantities on a fixed 0..1 range (attention weights, probabilities,
  attention rollout shares, |A - B| of two patterns): white at 0 to dark blue at 1.
- DIVERGING, for signed quantities centred on 0 (activations, logit contributions, cosines,
  attributions): blue at -limit, white at 0, red at +limit. Its two ends are also the colours of
  negative and positive bars.

Each scale is a table of 256 colours built from fixed stops (ColorBrewer Blues and RdBu). A value v
shown between the scale's endpoints vmin..vmax picks entry floor((v - vmin) / (vmax - vmin) * 255 + 0.5),
clipped to 0..255. The page gets the same tables and the same formula (`templates/static/palette.js`,
written by `palette_js`, with float64 arithmetic in the same order), and CSS custom properties for
ramps and bars (`templates/static/palette.css`, `palette_css`): a value has the same colour in a PNG
and in the browser. Both files are generated: `python -m visualizer.figures.palette` rewrites them
after a change here (a test fails while they differ).

Also here: the grey of cells with no value (masked attention, and any value that is not a finite
number: a NaN or an infinity is drawn in it by `colour`, by the PNGs and by the page alike), the
text colour readable on each entry, the colours of the residual-stream norm series (the PNG chart and the page's chart) and of
word maps.

What this module does not do: choose the limits of a figure (plan.py) or draw (raster.py, wordmaps.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEQUENTIAL_STOPS = ("#ffffff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
DIVERGING_STOPS = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#ffffff", "#fddbc7", "#f4a582", "#d6604d", "#b2182b")

MASK_RGB = (200, 200, 200)  # a cell with no value (attention a query may not pay)
INK_DARK, INK_LIGHT = (29, 31, 35), (255, 255, 255)  # text on light and on dark cells
LIGHT_ENOUGH = 140  # luminance above which a cell takes dark text
# the residual-stream norm chart, PNG and page alike
NORM_SERIES = (("hook_resid_pre", (136, 136, 160)), ("hook_resid_mid", (211, 84, 0)), ("hook_resid_post", (36, 86, 199)))
WORD_FLOOR = 0.45  # word maps: the smallest weight is drawn at this point of the sequential scale


def rgb_of(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def hex_of(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb)


def _table(stops: tuple[str, ...], centred: bool = False) -> np.ndarray:
    """[256, 3] uint8: the stops evenly spaced, linear in RGB between them. `centred`: the middle
    stop lands exactly on entry 128, the entry 0 picks on a scale symmetric about 0."""
    points = np.array([rgb_of(s) for s in stops], dtype=np.float64)  # [n, 3]
    if centred:
        half = len(stops) // 2
        at = np.concatenate([np.linspace(0, 128, half + 1), np.linspace(128, 255, half + 1)[1:]])
    else:
        at = np.linspace(0, 255, len(stops))
    entries = np.arange(256)
    return np.rint(np.stack([np.interp(entries, at, points[:, c]) for c in range(3)], -1)).astype(np.uint8)


SEQUENTIAL = _table(SEQUENTIAL_STOPS)  # [256, 3] uint8
DIVERGING = _table(DIVERGING_STOPS, centred=True)  # [256, 3] uint8, entry 128 (value 0) white
SCALES = {"sequential": SEQUENTIAL, "diverging": DIVERGING}
POSITIVE_RGB, NEGATIVE_RGB = tuple(int(c) for c in DIVERGING[-1]), tuple(int(c) for c in DIVERGING[0])


def index(values, vmin: float, vmax: float) -> np.ndarray:
    """Table entries for `values` shown between vmin and vmax (any shape; non-finite values give 0)."""
    v = np.asarray(values, dtype=np.float64)
    span = (vmax - vmin) or 1.0
    t = np.floor((np.where(np.isfinite(v), v, vmin) - vmin) / span * 255 + 0.5)
    return np.clip(t, 0, 255).astype(np.intp)


def colour(scale: str, value: float, vmin: float, vmax: float) -> tuple[int, int, int]:
    """One value's colour on a scale ('sequential' or 'diverging'); MASK_RGB for a value that is
    not a finite number."""
    if not np.isfinite(float(value)):
        return MASK_RGB
    return tuple(int(c) for c in SCALES[scale][int(index(value, vmin, vmax))])


def sequential(p: float) -> tuple[int, int, int]:
    """A non-negative quantity on 0..1 (a probability, an attention weight)."""
    return colour("sequential", p, 0.0, 1.0)


def diverging(value: float, limit: float) -> tuple[int, int, int]:
    """A signed quantity on -limit..+limit (limit > 0; 0 gives the middle, white)."""
    limit = limit if limit > 0 else 1.0
    return colour("diverging", value, -limit, limit)


def ink_for(rgb) -> tuple[int, int, int]:
    """Text colour readable on the background `rgb`."""
    r, g, b = (float(c) for c in rgb)
    return INK_DARK if 0.299 * r + 0.587 * g + 0.114 * b > LIGHT_ENOUGH else INK_LIGHT


def word_colour(share: float) -> tuple[int, int, int]:
    """A word map's colour for a weight that is `share` (0..1) of the largest: the upper part of
    the sequential scale, so that light words stay readable."""
    return sequential(WORD_FLOOR + (1.0 - WORD_FLOOR) * max(0.0, min(1.0, share)) ** 0.5)


def _ink_flags(table: np.ndarray) -> str:
    """One character per entry: '1' where the entry takes light text."""
    return "".join("1" if ink_for(rgb) == INK_LIGHT else "0" for rgb in table)


def _ramp(stops: tuple[str, ...]) -> str:
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


# The page's side of `index`, `colour` and `ink_for`: the same arithmetic, in the same order.
_JS_FUNCTIONS = """
  P.index = function (v, vmin, vmax) {
    var span = (vmax - vmin) || 1;
    var t = Math.floor(((isFinite(v) ? v : vmin) - vmin) / span * 255 + 0.5);
    return t < 0 ? 0 : (t > 255 ? 255 : t);
  };
  P.colour = function (scale, v, vmin, vmax) { return isFinite(v) ? P.scales[scale].table[P.index(v, vmin, vmax)] : P.mask; };
  P.sequential = function (p) { return P.colour("sequential", p, 0, 1); };
  P.diverging = function (v, limit) { limit = limit > 0 ? limit : 1; return P.colour("diverging", v, -limit, limit); };
  P.ink = function (scale, v, vmin, vmax) {
    if (!isFinite(v)) return P.maskInk;
    return P.scales[scale].light[P.index(v, vmin, vmax)] === "1" ? P.inkLight : P.inkDark;
  };
  P.css = function (rgb) { return "rgb(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ")"; };
  P.word = function (share) { share = share < 0 ? 0 : (share > 1 ? 1 : share); return P.sequential(P.wordFloor + (1 - P.wordFloor) * Math.sqrt(share)); };
"""


def palette_js() -> str:
    """assets/palette.js: window.__vizPalette with both tables and the functions every view colours with."""
    data = {
        "scales": {name: {"table": table.tolist(), "light": _ink_flags(table)} for name, table in SCALES.items()},
        "mask": list(MASK_RGB),
        "maskInk": hex_of(ink_for(MASK_RGB)),
        "inkDark": hex_of(INK_DARK),
        "inkLight": hex_of(INK_LIGHT),
        "series": {name: hex_of(rgb) for name, rgb in NORM_SERIES},
        "wordFloor": WORD_FLOOR,
    }
    return (
        "/* Generated by visualizer/figures/palette.py (the same tables the PNGs use): do not edit. */\n"
        "(function () {\n"
        f"  var P = window.__vizPalette = {json.dumps(data, sort_keys=True, separators=(',', ':'))};\n"
        f"{_JS_FUNCTIONS}"
        "})();\n"
    )


def palette_css() -> str:
    """assets/palette.css: the scales as CSS custom properties (ramps, bar and mask colours)."""
    props = {
        "--seq-ramp": _ramp(SEQUENTIAL_STOPS),
        "--div-ramp": _ramp(DIVERGING_STOPS),
        "--positive": hex_of(POSITIVE_RGB),
        "--negative": hex_of(NEGATIVE_RGB),
        "--mask": hex_of(MASK_RGB),
        "--word": hex_of(SEQUENTIAL[-1]),
    }
    body = "".join(f"  {k}: {v};\n" for k, v in props.items())
    return "/* Generated by visualizer/figures/palette.py: do not edit. */\n:root {\n" + body + "}\n"


STATIC = Path(__file__).resolve().parents[2] / "templates" / "static"
GENERATED = {"palette.js": palette_js, "palette.css": palette_css}  # file in templates/static -> its text


if __name__ == "__main__":
    for name, text in GENERATED.items():
        (STATIC / name).write_text(text(), encoding="utf-8")
        print(f"wrote {STATIC / name}")
