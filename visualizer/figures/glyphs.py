"""The one font every picture uses (DejaVu Sans, bundled with matplotlib) and the text it can draw.

`displayable(text)` keeps every character the font has a glyph for and spells the rest as
`<U+XXXX>`, so emoji, CJK or control pictures outside the font show as their code point instead of
an empty box. Apply it after `tokenizer.readable`.

What this module does not do: escape for HTML (the templates do), or draw anything (plots.py,
wordmaps.py). It does not import matplotlib: the font file is found from the installed package.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path


@functools.lru_cache(maxsize=2)
def font_path(bold: bool = False) -> Path:
    """matplotlib's bundled DejaVuSans.ttf (or -Bold), always installed with matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise RuntimeError("matplotlib is not installed: it is needed for figures and its bundled font")
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / name
    if not path.is_file():
        raise RuntimeError(f"matplotlib's bundled font is missing: {path}")
    return path


@functools.lru_cache(maxsize=1)
def covered() -> frozenset[int]:
    """Code points DejaVu Sans (regular) has a glyph for."""
    from fontTools.ttLib import TTFont  # a matplotlib dependency

    font = TTFont(str(font_path()), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def displayable(text: str, limit: int | None = None) -> str:
    """`text` with characters the font lacks written as <U+XXXX>. With `limit`, texts longer than
    `limit` characters (counted before spelling out) are cut to limit - 1 and end with '…'."""
    if limit is not None and len(text) > limit:
        text = text[: max(1, limit - 1)] + "…"
    have = covered()
    return "".join(ch if ord(ch) in have else f"<U+{ord(ch):04X}>" for ch in text)
