"""Matrices and token tables drawn straight to pixels with PIL: each shown cell is an exact block
of pixels, axes are labelled with the probe's tokens, a colour bar gives the scale and a header
names the tensor, its shape and scale.

Why not matplotlib here: a report has a hundred or more such images and matplotlib spends most
of its time building tick and axes objects; drawing the same picture with PIL costs a few
milliseconds. Colour scales come in as lookup tables ([256, 3] uint8, from palette.py), indexed
the way palette.index says, so a value has the same colour here as on the page.

Also here, because they decide what the pixels show: `pool2d` (display pooling of large
matrices) and `tile_geometry` (how small multiples are laid out within a pixel budget).

What this module does not do: choose colour scales or captions (plan.py, palette.py), or write files
(wordmaps.save_png).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import visualizer.figures.palette as palette
from visualizer.figures.glyphs import font_path

MAX_AXES_W = 1000  # pixels of matrix area, at most
MAX_AXES_H = 768
WIDE_W = 1600  # a single matrix may be this wide before its columns are pooled
MAX_CELL = 12  # largest pixel size of one matrix cell (enough to label every row)
LABEL_PX = 12  # pixels one tick label needs along its axis
TILE_GAP_PX, TILE_TITLE_PX = 8, 18  # between small multiples (the vertical gap holds the head's name)
MASK_RGB = palette.MASK_RGB  # cells with no finite value (masked attention)
INK, GREY, NOTE = (20, 20, 20), (80, 80, 80), (160, 64, 0)


@functools.lru_cache(maxsize=8)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(bold)), size)


# ----------------------------------------------------------------------------- what the pixels show


def pool2d(a: np.ndarray, fr: int, fc: int) -> np.ndarray:
    """[R, C] -> [ceil(R/fr), ceil(C/fc)] for display: in each block, the finite entry of largest
    magnitude, sign kept, so a lone outlier (a massive activation, a head's one attended key)
    stays visible. Non-finite entries count as missing; a block with none finite is NaN."""
    a = np.asarray(a, dtype=np.float32)
    if fr == 1 and fc == 1:
        return np.where(np.isfinite(a), a, np.nan)
    R, C = a.shape
    Rp, Cp = -(-R // fr) * fr, -(-C // fc) * fc
    padded = np.full((Rp, Cp), np.nan, dtype=np.float32)
    padded[:R, :C] = np.where(np.isfinite(a), a, np.nan)
    blocks = padded.reshape(Rp // fr, fr, Cp // fc, fc).transpose(0, 2, 1, 3).reshape(Rp // fr, Cp // fc, fr * fc)
    magnitude = np.where(np.isnan(blocks), -1.0, np.abs(blocks))
    pick = magnitude.argmax(-1)[..., None]
    return np.take_along_axis(blocks, pick, -1)[..., 0]


def _fit(count: int, budget_px: int, max_cell: int) -> tuple[int, int]:
    """(pool factor, pixels per shown cell) to show `count` cells within `budget_px` pixels."""
    if count <= budget_px:
        return 1, max(1, min(max_cell, budget_px // count))
    return math.ceil(count / budget_px), 1


def tile_geometry(n: int, rows: int, cols: int, *, square: bool, max_cells: int | None = None) -> dict:
    """How n tiles of [rows, cols] fit MAX_AXES_W x MAX_AXES_H: grid, pool factors, cell pixels.

    square (attention, [T, T] tiles): a near-square grid of heads, square cells.
    Otherwise all tiles in one row while their columns fit, else more rows.
    max_cells bounds the number of distinct cells shown (all tiles together): noisy matrices cost
    about a byte per distinct cell in a PNG, so long inputs pool positions further (rows first)."""
    if square:
        ncols = n if n <= 3 else math.ceil(math.sqrt(n))
    else:
        ncols = n
        while ncols > 1 and ncols * cols > MAX_AXES_W:
            ncols = math.ceil(ncols / 2)
    nrows = math.ceil(n / ncols)
    budget_h = MAX_AXES_H // nrows - (TILE_TITLE_PX if nrows > 1 else 0)
    budget_w = MAX_AXES_W // ncols - (TILE_GAP_PX if ncols > 1 else 0)
    fr, ch = _fit(rows, budget_h, MAX_CELL)
    if not square and n == 1 and budget_w < cols <= WIDE_W:
        fc, cw = 1, 1  # one wide matrix (d_mlp): every column its own pixel rather than pooled
    else:
        fc, cw = _fit(cols, budget_w, MAX_CELL)
    if square:
        fr = fc = max(fr, fc)
        if max_cells and n * math.ceil(rows / fr) ** 2 > max_cells:
            fr = fc = math.ceil(rows / max(1, math.isqrt(max_cells // n)))
        side = math.ceil(rows / fr)
        ch = cw = max(1, min(MAX_CELL, budget_h // side, budget_w // side))
    elif max_cells and n * math.ceil(rows / fr) * math.ceil(cols / fc) > max_cells:
        fr = math.ceil(rows / max(1, max_cells // (n * math.ceil(cols / fc))))
        ch = max(1, min(MAX_CELL, budget_h // math.ceil(rows / fr)))
    return {"ncols": ncols, "nrows": nrows, "fr": fr, "fc": fc, "cw": cw, "ch": ch}


def colourize(values: np.ndarray, lut: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """[R, C] float -> [R, C, 3] uint8 through a [256, 3] lookup table (entries as palette.index
    picks them); non-finite cells MASK_RGB."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    rgb = lut[palette.index(values, vmin, vmax)]
    rgb[~finite] = MASK_RGB
    return rgb


def ticks(count: int, factor: int, cell_px: int, labels: list[str] | None, index: list[int] | None = None):
    """[(shown cell, label)] for `count` entries shown as ceil(count/factor) cells of cell_px pixels.

    With labels: every label that fits (one per LABEL_PX pixels, evenly thinned); the label of
    a pooled block is its first entry's. Without: round numbers (or `index[i]`) at about 8 places."""
    shown = math.ceil(count / factor)
    room = max(1, shown * cell_px // LABEL_PX)
    if labels is not None:
        step = max(1, math.ceil(shown / room))
        return [(c, labels[c * factor]) for c in range(0, shown, step)]
    raw = max(1, math.ceil(count / max(1, min(room, 8))))
    magnitude = 10 ** int(math.floor(math.log10(raw)))
    unit = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [(i // factor, str(i if index is None else index[i])) for i in range(0, count, unit)]


def fitting_labels(items, f: ImageFont.FreeTypeFont, tile_w: int, pitch: int, n_tiles: int,
                   gap: int = 4) -> list[tuple[int, str]]:
    """Horizontal tick labels [(x, label)] (x from the left of the first of `n_tiles` tiles, each
    `tile_w` pixels wide, one every `pitch` pixels) that end within their tile (they may start in
    half the space before it) and keep `gap` pixels from the label before: side by side panels never
    run their numbers together, and each panel's first number stays. The outer edges of the first
    and last tile are not limits."""
    spill = (pitch - tile_w) / 2
    kept, right = [], -math.inf
    for x, label in items:
        half = f.getlength(label) / 2
        tile = min(n_tiles - 1, x // pitch)
        low = -math.inf if tile == 0 else tile * pitch - spill
        high = math.inf if tile == n_tiles - 1 else tile * pitch + tile_w
        if x - half < low or x + half > high or x - half < right + gap:
            continue
        kept.append((x, label))
        right = x + half
    return kept


# ----------------------------------------------------------------------------- drawing pieces


def _number(v: float) -> str:
    return f"{v:.3g}".replace("-", "\u2212")


def _rotated_text(image: Image.Image, text: str, centre_x: int, centre_y: int, size: int = 11) -> None:
    """Axis title reading bottom to top, centred on (centre_x, centre_y)."""
    f = font(size)
    w = int(f.getlength(text)) + 4
    tmp = Image.new("RGB", (w, size + 6), "white")
    ImageDraw.Draw(tmp).text((2, 2), text, font=f, fill=INK)
    tmp = tmp.transpose(Image.Transpose.ROTATE_90)
    image.paste(tmp, (centre_x - tmp.width // 2, max(0, centre_y - tmp.height // 2)))


def _vertical_labels(image: Image.Image, x0: int, y0: int, width: int, strip_h: int, items) -> None:
    """Labels reading bottom to top, their ends at y0, at x positions (relative to x0)."""
    f = font(10)
    tmp = Image.new("RGB", (strip_h, width), "white")
    draw = ImageDraw.Draw(tmp)
    for x, label in items:
        draw.text((strip_h - 2, x), label, font=f, fill=INK, anchor="rm")
    image.paste(tmp.transpose(Image.Transpose.ROTATE_90), (x0, y0))


def _header(draw: ImageDraw.ImageDraw, d: dict) -> None:
    draw.text((8, 6), d["title"], font=font(13, bold=True), fill=INK)
    draw.text((8, 25), d["subtitle"], font=font(10), fill=GREY)
    if d.get("note"):
        draw.text((8, 39), d["note"], font=font(10), fill=NOTE)


def _header_size(d: dict) -> tuple[int, int]:
    width = max(font(13, True).getlength(d["title"]), font(10).getlength(d["subtitle"]),
                font(10).getlength(d.get("note") or ""))
    return int(width) + 16, 56 if d.get("note") else 42


COLORBAR_STEPS = np.rint(np.linspace(0, 255, 64)).astype(np.intp)  # the scale entries a colour bar shows


def _colorbar(image: Image.Image, draw, x: int, y: int, h: int, lut, vmin: float, vmax: float) -> None:
    """A colour bar of 64 steps (ends included): it adds few colours beyond the cells', so that the
    PNG's palette can keep the cells' colours exact (wordmaps.png_palette)."""
    entries = palette.index(np.linspace(vmax, vmin, h), vmin, vmax)  # [h], top = vmax
    nearest = COLORBAR_STEPS[np.abs(entries[:, None] - COLORBAR_STEPS[None, :]).argmin(-1)]
    column = lut[nearest][:, None]  # [h, 1, 3]
    image.paste(Image.fromarray(np.repeat(column, 12, axis=1)), (x, y))
    draw.rectangle((x - 1, y - 1, x + 12, y + h), outline=GREY)
    for i in range(5):
        v = vmax - (vmax - vmin) * i / 4
        ty = y + round((h - 1) * i / 4)
        draw.line((x + 12, ty, x + 15, ty), fill=GREY)
        draw.text((x + 18, ty), _number(v), font=font(10), fill=INK, anchor="lm")


def _colorbar_width(vmin: float, vmax: float) -> int:
    labels = [_number(vmax - (vmax - vmin) * i / 4) for i in range(5)]
    return 12 + 12 + 18 + int(max(font(10).getlength(s) for s in labels)) + 8


# ----------------------------------------------------------------------------- figures


def tiles_image(d: dict, lut: np.ndarray) -> Image.Image:
    """Small multiples (or one matrix) from plots' 'tiles' job data:
    values [n, R, C]; mask [n, R, C] or None (cells where the mask is not finite are shown as
    masked, e.g. the pattern where the scores are -inf); geometry (tile_geometry); vmin, vmax;
    row_labels (R) or None; col_labels (C) or None; col_index (numeric column names) or None;
    tile_titles (n) or None; title, subtitle, note, xlabel, ylabel."""
    g, stack = d["geometry"], d["values"]
    n, R, C = stack.shape
    mask = d.get("mask")
    shown = [
        pool2d(stack[i] if mask is None else np.where(np.isfinite(mask[i]), stack[i], np.nan), g["fr"], g["fc"])
        for i in range(n)
    ]
    r, c = shown[0].shape
    ncols, nrows, cw, ch = g["ncols"], g["nrows"], g["cw"], g["ch"]
    gap_c = math.ceil(TILE_GAP_PX / cw) if ncols > 1 else 0
    gap_r = math.ceil(TILE_TITLE_PX / ch) if nrows > 1 else 0
    aw = (ncols * c + (ncols - 1) * gap_c) * cw
    ah = (nrows * r + (nrows - 1) * gap_r) * ch
    f = font(10)
    row_ticks = ticks(R, g["fr"], ch, d["row_labels"])
    col_ticks = ticks(C, g["fc"], cw, d["col_labels"], d.get("col_index"))
    row_w = max((f.getlength(s) for _, s in row_ticks), default=0)
    rotated = d["col_labels"] is not None
    strip_h = int(max((f.getlength(s) for _, s in col_ticks), default=0)) + 6 if rotated else 14
    header_w, header_h = _header_size(d)
    left = int(6 + 16 + 4 + row_w + 6)
    top = header_h + (16 if d["tile_titles"] else 6)
    cb_h = max(60, min(ah, 260))
    right = _colorbar_width(d["vmin"], d["vmax"])
    width = max(left + aw + right, header_w, 360)
    height = top + max(ah, cb_h) + 6 + strip_h + 18
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    bold = font(10, bold=True)
    for i, tile in enumerate(shown):
        tx = left + (i % ncols) * (c + gap_c) * cw
        ty = top + (i // ncols) * (r + gap_r) * ch
        rgb = colourize(tile, lut, d["vmin"], d["vmax"])
        if cw > 1 or ch > 1:
            rgb = np.repeat(np.repeat(rgb, ch, axis=0), cw, axis=1)
        image.paste(Image.fromarray(rgb), (tx, ty))
        draw.rectangle((tx - 1, ty - 1, tx + c * cw, ty + r * ch), outline=GREY)
        if d["tile_titles"]:
            draw.text((tx, ty - 3), d["tile_titles"][i], font=bold, fill=INK, anchor="lb")
    for row in range(nrows):
        for cell, label in row_ticks:
            y = top + (row * (r + gap_r) + cell) * ch + ch // 2
            draw.line((left - 5, y, left - 2, y), fill=GREY)
            draw.text((left - 7, y), label, font=f, fill=INK, anchor="rm")
    base = top + ah + 2
    items = []
    for col in range(ncols):
        for cell, label in col_ticks:
            x = (col * (c + gap_c) + cell) * cw + cw // 2
            draw.line((left + x, base, left + x, base + 3), fill=GREY)
            items.append((x, label))
    if rotated:
        _vertical_labels(image, left, base + 4, aw, strip_h, items)
    else:
        for x, label in fitting_labels(items, f, c * cw, (c + gap_c) * cw, ncols):
            draw.text((left + x, base + 4), label, font=f, fill=INK, anchor="mt")
    draw.text((left + aw // 2, base + 6 + strip_h), d["xlabel"], font=font(11), fill=INK, anchor="mt")
    _rotated_text(image, d["ylabel"], 14, top + ah // 2)
    _colorbar(image, draw, left + aw + 12, top, cb_h, lut, d["vmin"], d["vmax"])
    _header(draw, d)
    return image


def table_image(d: dict, lut: np.ndarray) -> Image.Image:
    """A table of short texts on coloured cells from plots' 'table' job data:
    values [R, K] (cell colour), texts [R][K], row_labels (R), col_labels (K), vmin, vmax,
    title, subtitle, xlabel (over the column labels), ylabel. With `wrap` true, columns that do not
    fit MAX_AXES_W go on in further bands below, each with its column labels (rows repeated)."""
    values, texts = d["values"], d["texts"]
    R, K = values.shape
    f = font(10)
    cell_w = int(max([f.getlength(t) for row in texts for t in row] + [f.getlength(s) for s in d["col_labels"]] + [24])) + 10
    cell_h = 15
    band = max(1, min(K, MAX_AXES_W // cell_w)) if d.get("wrap") else K  # columns per band
    n_bands = math.ceil(K / band) if K else 1
    band_step = R * cell_h + 16 + 8  # a band, then the next band's column labels and a gap
    row_w = max((f.getlength(s) for s in d["row_labels"]), default=0)
    header_w, header_h = _header_size(d)
    left = int(6 + 16 + 4 + row_w + 8)
    top = header_h + 34
    aw, ah = min(K, band) * cell_w, (n_bands - 1) * band_step + R * cell_h
    cb_h = max(60, min(ah, 260))
    width = max(left + aw + _colorbar_width(d["vmin"], d["vmax"]), header_w, 360)
    height = top + max(ah, cb_h) + 10
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    rgb = colourize(values, lut, d["vmin"], d["vmax"])
    for b in range(n_bands):
        first, y0 = b * band, top + b * band_step
        cols = range(first, min(K, first + band))
        cells = rgb[:, first:first + band]
        image.paste(Image.fromarray(np.repeat(np.repeat(cells, cell_h, axis=0), cell_w, axis=1)), (left, y0))
        for r in range(R):
            y = y0 + r * cell_h + cell_h // 2
            draw.text((left - 6, y), d["row_labels"][r], font=f, fill=INK, anchor="rm")
            for k in cols:
                if texts[r][k]:
                    colour = palette.ink_for(rgb[r, k])
                    draw.text((left + (k - first) * cell_w + cell_w // 2, y), texts[r][k], font=f, fill=colour, anchor="mm")
        for k in cols:
            draw.text((left + (k - first) * cell_w + cell_w // 2, y0 - 3), d["col_labels"][k], font=f, fill=INK, anchor="mb")
        draw.rectangle((left - 1, y0 - 1, left + len(cols) * cell_w, y0 + R * cell_h), outline=GREY)
    draw.text((left + aw // 2, top - 18), d["xlabel"], font=font(11), fill=INK, anchor="mb")
    _rotated_text(image, d["ylabel"], 14, top + ah // 2)
    _colorbar(image, draw, left + aw + 12, top, cb_h, lut, d["vmin"], d["vmax"])
    _header(draw, d)
    return image


# ----------------------------------------------------------------------------- charts

POSITIVE_RGB, NEGATIVE_RGB = palette.POSITIVE_RGB, palette.NEGATIVE_RGB  # the diverging scale's ends
GRID_RGB = (225, 225, 225)
SUPERSAMPLE = 4  # chart lines are drawn this many times larger, then reduced: antialiased


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering low..high."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int(round((last - first) / step)) + 1)]


def _antialiased_line(image: Image.Image, box: tuple[int, int, int, int], points, colour, width: int = 2) -> None:
    """A polyline in the box (x0, y0, w, h), points relative to it, drawn antialiased."""
    x0, y0, w, h = box
    s = SUPERSAMPLE
    mask = Image.new("L", (w * s, h * s), 0)
    ImageDraw.Draw(mask).line([(x * s, y * s) for x, y in points], fill=255, width=width * s, joint="curve")
    image.paste(colour, (x0, y0, x0 + w, y0 + h), mask.reduce(s))


def lines_image(d: dict) -> Image.Image:
    """Line chart over positions from plots' 'lines' job data: series [(name, [T values], rgb)],
    labels (T position labels), ylabel, title, subtitle. The y axis starts at 0. Values that are
    not finite are left out: the line breaks there."""
    series, labels = d["series"], d["labels"]
    T = len(series[0][1])
    f = font(10)
    top_value = max((v for _, values, _ in series for v in values if math.isfinite(v)), default=1.0)
    ticks_y = nice_ticks(0.0, max(top_value, 1e-12))
    y_max = ticks_y[-1]
    aw = min(MAX_AXES_W, max(480, T * 14))
    ah = 220
    header_w, header_h = _header_size(d)
    x_ticks = ticks(T, 1, max(1, aw // max(T, 1)), labels)
    strip_h = int(max((f.getlength(s) for _, s in x_ticks), default=0)) + 6
    left = 30 + int(max(f.getlength(_number(v)) for v in ticks_y)) + 8
    top = header_h + 22
    width = max(left + aw + 20, header_w, 360)
    height = top + ah + 6 + strip_h + 18
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def y_of(v: float) -> float:
        return ah - v / y_max * ah

    def x_of(i: int) -> float:
        return (i + 0.5) * aw / T

    for v in ticks_y:
        y = top + round(y_of(v))
        draw.line((left, y, left + aw, y), fill=GRID_RGB)
        draw.line((left - 4, y, left - 1, y), fill=GREY)
        draw.text((left - 6, y), _number(v), font=f, fill=INK, anchor="rm")
    for name, values, colour in series:
        colour = tuple(colour)
        runs, run = [], []  # stretches of finite values, each drawn as one line
        for i, v in enumerate(values):
            if math.isfinite(v):
                run.append((x_of(i), y_of(v)))
            elif run:
                runs, run = runs + [run], []
        for points in runs + ([run] if run else []):
            _antialiased_line(image, (left, top, aw, ah), points, colour)
            if T <= 64:
                for x, y in points:
                    draw.ellipse((left + x - 2, top + y - 2, left + x + 2, top + y + 2), fill=colour)
    draw.rectangle((left - 1, top - 1, left + aw, top + ah), outline=GREY)
    items = []
    for i, label in x_ticks:
        x = round(x_of(i))
        draw.line((left + x, top + ah + 1, left + x, top + ah + 4), fill=GREY)
        items.append((x, label))
    _vertical_labels(image, left, top + ah + 5, aw, strip_h, items)
    draw.text((left + aw // 2, top + ah + 7 + strip_h), "position", font=font(11), fill=INK, anchor="mt")
    _rotated_text(image, d["ylabel"], 12, top + ah // 2)
    x = left + aw
    for k in reversed(range(len(series))):  # legend, right-aligned above the plot
        name = series[k][0]
        x -= int(f.getlength(name)) + 30
        y = top - 11
        draw.line((x, y, x + 18, y), fill=tuple(series[k][2]), width=2)
        draw.text((x + 22, y), name, font=f, fill=INK, anchor="lm")
    _header(draw, d)
    return image


def bars_image(d: dict) -> Image.Image:
    """Horizontal bar charts side by side, one x scale for all, from plots' 'bars' job data:
    panels [{title, labels, values, total}], xlabel, title, subtitle. Positive bars red, negative
    blue, a line at 0; a value that is not finite gets no bar, and its text ('nan', 'inf') in grey."""
    panels = d["panels"]
    f = font(10)
    everything = [v for p in panels for v in p["values"] if math.isfinite(v)] + [0.0]
    scale_ticks = nice_ticks(min(everything), max(everything), 4)
    low, high = scale_ticks[0], scale_ticks[-1]
    label_w = int(max(f.getlength(s) for p in panels for s in p["labels"])) + 10
    pw, bar_h = 190, 15
    n_bars = max(len(p["labels"]) for p in panels)
    ah = n_bars * bar_h
    header_w, header_h = _header_size(d)
    top = header_h + 34
    panel_w = label_w + pw + 24
    width = max(8 + len(panels) * panel_w, header_w, 360)
    height = top + ah + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def x_of(v: float) -> int:
        return round((v - low) / ((high - low) or 1.0) * pw)

    for k, p in enumerate(panels):
        left = 8 + k * panel_w + label_w
        draw.text((left - label_w + 4, top - 30), p["title"], font=f, fill=INK)
        draw.text((left - label_w + 4, top - 16), f"sum = {p['total']:.4g}".replace("-", "\u2212"), font=f, fill=GREY)
        for v in scale_ticks:
            x = left + x_of(v)
            draw.line((x, top, x, top + ah), fill=GRID_RGB)
            draw.line((x, top + ah + 1, x, top + ah + 4), fill=GREY)
            draw.text((x, top + ah + 6), _number(v), font=f, fill=INK, anchor="mt")
        zero = left + x_of(0.0)
        for i, (label, v) in enumerate(zip(p["labels"], p["values"])):
            y = top + i * bar_h
            draw.text((left - 6, y + bar_h // 2), label, font=f, fill=INK, anchor="rm")
            if not math.isfinite(v):
                draw.text((zero + 3, y + bar_h // 2), str(v), font=f, fill=GREY, anchor="lm")
                continue
            a, b = sorted((zero, left + x_of(v)))
            draw.rectangle((a, y + 2, max(a, b - 1), y + bar_h - 3), fill=POSITIVE_RGB if v >= 0 else NEGATIVE_RGB)
        draw.line((zero, top, zero, top + ah), fill=INK)
        draw.rectangle((left - 1, top - 1, left + pw, top + ah), outline=GREY)
        draw.text((left + pw // 2, top + ah + 20), d["xlabel"], font=f, fill=INK, anchor="mt")
    _header(draw, d)
    return image
