"""Word maps: tokens drawn with size proportional to a weight (wordcloud), as small deterministic PNGs.

`word_map(weights, path, ...)` draws one map from readable token -> weight (only positive weights
are drawn; nothing is tokenised or filtered, so single characters, punctuation and whitespace
symbols all appear). Layout is seeded, colours follow the weight, the PNG carries no metadata:
same inputs, same bytes. A header strip names what the map shows (tensor, weights). Word colours
come from palette.word_colour, as on the page's word maps.

`weights_from_records` turns report_data token records into map weights with readable, drawable
keys. `save_png` is the one PNG writer for every figure (palette PNG, no text chunks).

What this module does not do: compute weights from the model (report_data.py), plot matrices
(plots.py), or escape HTML (templates).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from wordcloud import WordCloud

import visualizer.figures.palette as palette
from visualizer.figures.glyphs import displayable, font_path
from visualizer.model.tokenizer import readable

HEADER_PX = 40
TOKEN_LIMIT = 32  # characters of a token shown in a map (longer ones end with '…')


OTHER_COLOURS = 48  # palette entries kept for text and lines when a scale's colours fill the rest


def _packed(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 -> [...] int: one integer per colour."""
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def png_palette(distinct: np.ndarray, colors: int, keep: np.ndarray | None) -> np.ndarray:
    """[n <= colors, 3] uint8: the colours of a PNG whose image has the `distinct` colours ([d, 3]).
    Every colour when there are no more than `colors`; else the entries of the scale `keep`
    ([256, 3]) the image uses, exactly (evenly thinned, in scale order, when they leave fewer than
    OTHER_COLOURS places), and the other colours (text, lines) reduced to the places left."""
    if len(distinct) <= colors:
        return distinct.astype(np.uint8)
    used = np.zeros((0, 3), dtype=np.uint8)
    if keep is not None:
        keep = np.asarray(keep, dtype=np.uint8)
        used = keep[np.isin(_packed(keep), _packed(distinct))]  # in scale order
        if len(used) > colors - OTHER_COLOURS:
            used = used[np.rint(np.linspace(0, len(used) - 1, colors - OTHER_COLOURS)).astype(np.intp)]
    rest = distinct[~np.isin(_packed(distinct), _packed(used))].astype(np.uint8)
    room = colors - len(used)
    others = Image.fromarray(rest[None]).quantize(colors=room, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    entries = np.array(others.getpalette()[: 3 * room], dtype=np.uint8).reshape(-1, 3)
    return np.concatenate([used, entries])[:colors]


def _pixel_keys(image: Image.Image) -> np.ndarray:
    """[H, W] uint32: each RGB pixel as 0xBBGGRR (one C conversion and a view, no int64 copy)."""
    rgbx = np.ascontiguousarray(np.asarray(image.convert("RGBX")))  # [H, W, 4] uint8
    return rgbx.view("<u4")[..., 0] & np.uint32(0xFFFFFF)


@functools.lru_cache(maxsize=1)
def _colour_lookup() -> np.ndarray:
    """[2**24] uint8: a per-process table from colour key to palette index, all zero between
    images (16 MiB, allocated once; save_png sets and clears only the entries an image uses)."""
    return np.zeros(1 << 24, dtype=np.uint8)


def _nearest(distinct: np.ndarray, entries: np.ndarray, rows: int = 4096) -> np.ndarray:
    """[d] uint8: the index of the closest entry ([n, 3]) to each distinct colour ([d, 3]);
    the first on a tie. Done in blocks of `rows` so d x n distances stay small."""
    out = np.empty(len(distinct), dtype=np.uint8)
    for start in range(0, len(distinct), rows):
        block = distinct[start:start + rows, None, :] - entries[None, :, :]  # [rows, n, 3]
        out[start:start + rows] = (block * block).sum(-1).argmin(-1)
    return out


def save_png(image: Image.Image, path: Path, colors: int = 256, keep: np.ndarray | None = None) -> None:
    """Write `image` as a palette PNG (<= `colors` colours, no dithering, no text or time chunks).
    `keep` ([256, 3]): a colour scale whose colours the image uses are written exactly (png_palette),
    so a PNG's cells have the page's colours; every other pixel takes the nearest palette colour."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    keys = _pixel_keys(image)  # [H, W]
    found = image.getcolors(1 << 16)  # fast while the image has no more colours than that
    if found is None:
        packed = np.unique(keys).astype(np.int64)
        distinct = np.stack([packed & 255, (packed >> 8) & 255, packed >> 16], -1)
        distinct = distinct[np.lexsort(distinct.T[::-1])]  # [d, 3] in (r, g, b) order
    else:
        distinct = np.array(sorted(c for _, c in found), dtype=np.int64)  # [d, 3]
    entries = png_palette(distinct, colors, keep).astype(np.int64)  # [n, 3]
    if len(distinct) <= colors:
        nearest = np.arange(len(distinct), dtype=np.uint8)  # every colour is its own entry
    else:
        nearest = _nearest(distinct, entries)
    colour_keys = distinct[:, 0] | (distinct[:, 1] << 8) | (distinct[:, 2] << 16)  # [d]
    lookup = _colour_lookup()
    lookup[colour_keys] = nearest
    quantized = Image.fromarray(lookup[keys], mode="P")
    lookup[colour_keys] = 0  # leave the table as found for the next image
    quantized.putpalette(entries.astype(np.uint8).ravel().tolist())
    quantized.save(path, format="PNG", compress_level=6)


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def weights_from_records(records, key: str = "prob", *, limit: int = TOKEN_LIMIT) -> dict[str, float]:
    """Token records ({'token' or 'readable', key: weight}) -> {displayable readable token: summed weight}.

    Records for the same token add up; negative weights are dropped (a map cannot draw them)."""
    out: dict[str, float] = {}
    for record in records:
        text = record.get("readable") or readable(record["token"])
        label = displayable(text, limit)
        weight = float(record[key])
        if weight > 0:
            out[label] = out.get(label, 0.0) + weight
    return out


def _colour_for(weights: dict[str, float]):
    top = max(weights.values())

    def colour(word, font_size, position, orientation, random_state=None, **kwargs):
        return palette.hex_of(palette.word_colour(weights.get(word, 0.0) / top))

    return colour


def _header(image: Image.Image, title: str, subtitle: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + HEADER_PX), "white")
    out.paste(image, (0, HEADER_PX))
    draw = ImageDraw.Draw(out)
    draw.text((8, 4), displayable(title), fill=(20, 20, 20), font=_font(14))
    draw.text((8, 22), displayable(subtitle), fill=(90, 90, 90), font=_font(11))
    return out


def word_map(
    weights: dict[str, float],
    path: Path,
    *,
    seed: int = 0,
    width: int = 640,
    height: int = 300,
    title: str = "",
    subtitle: str = "",
    max_words: int = 150,
) -> list[str]:
    """Draw `weights` (label -> weight; labels should already be readable) as a PNG at `path`.

    Labels are made drawable (glyphs the font lacks become <U+XXXX>) and cut to TOKEN_LIMIT
    characters; labels that end up equal add their weights. Only the `max_words` largest positive
    weights are drawn, largest first; ties are broken by label so the layout never depends on dict
    order. With no positive weight the map says so instead of failing. Returns the labels drawn,
    largest first (wordcloud leaves out words that no longer fit)."""
    merged: dict[str, float] = {}
    for label, weight in weights.items():
        weight = float(weight)
        if weight > 0 and np.isfinite(weight):
            key = displayable(label, TOKEN_LIMIT)
            merged[key] = merged.get(key, 0.0) + weight
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words]
    drawn: list[str] = []
    if ranked:
        frequencies = dict(ranked)
        # when words did not all fit (wordcloud stops at min_font_size), try again with smaller
        # big words and sizes that depend less on the weight: every word drawn beats exact sizes
        for divisor, scaling in ((3, 0.6), (4, 0.4), (5, 0.2), (6, 0.0)):
            cloud = WordCloud(
                font_path=str(font_path()),
                width=width,
                height=height,
                background_color="white",
                prefer_horizontal=1.0,
                min_font_size=8,
                max_font_size=max(12, height // divisor),
                max_words=max_words,
                random_state=seed,
                relative_scaling=scaling,
                margin=4,
                color_func=_colour_for(frequencies),
                collocations=False,
                normalize_plurals=False,
                repeat=False,
            )
            cloud.generate_from_frequencies(frequencies)
            drawn = [word for (word, _), *_ in cloud.layout_]
            if len(drawn) == len(frequencies):
                break
        body = cloud.to_image()
    else:
        body = Image.new("RGB", (width, height), "white")
        message = "(no positive weights to draw)"
        ImageDraw.Draw(body).text((12, height // 2 - 8), message, fill=(120, 120, 120), font=_font(14))
    save_png(_header(body, title, subtitle), Path(path))
    return drawn
