"""Build templates/static/fonts/control-pictures.ttf: the Unicode Control Pictures (U+2400-U+2421,
U+2424-U+2426) that tokenizer.readable writes for control characters (␍ for \\r, ␔ for \\x14, ...),
which DejaVu and most system fonts lack (browsers show an empty box).

Each glyph is the character's abbreviation (CR, DC4, ESC, ...) in small capitals set on a falling
diagonal, as the Unicode charts draw them, made from DejaVu Sans Mono Bold's letter outlines (matplotlib
ships the font and its licence, LICENSE_DEJAVU, copied beside the output). Glyphs are as wide as DejaVu
Sans Mono's, so monospaced token columns stay aligned. The output bytes do not depend on the clock.

    python scripts/build_control_font.py      (then commit the two files it writes)

What this script does not do: run at report time (the page links the committed font) or cover the
characters DejaVu already has (U+2422, U+2423).
"""

from __future__ import annotations

from pathlib import Path

import sys

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.recordingPen import DecomposingRecordingPen
from fontTools.pens.transformPen import TransformPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from visualizer.figures.glyphs import font_path  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "templates" / "static" / "fonts"
FAMILY = "VizControlPictures"
NAMES = ["NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI",
         "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
         "SP", "DEL"]  # U+2400 .. U+2421
EXTRA = {0x2424: "NL", 0x2425: "DEL", 0x2426: "SUB"}  # U+2425, U+2426: alternative forms, drawn as their names
EPOCH = 0x7C259DC0  # 2000-01-01 in seconds since 1904 (the font's timestamps; fixed for identical bytes)


def letters() -> dict[int, str]:
    table = {0x2400 + i: name for i, name in enumerate(NAMES)}
    table.update(EXTRA)
    return table


def build(out: Path = OUT) -> Path:
    mono = font_path().with_name("DejaVuSansMono-Bold.ttf")  # bold: legible at the small sizes they are drawn
    source = TTFont(str(mono))
    upm = source["head"].unitsPerEm
    advance = source["hmtx"]["M"][0]
    glyphs_in, cmap_in = source.getGlyphSet(), source.getBestCmap()
    h = source["glyf"]["H"]
    h.recalcBounds(source["glyf"])
    cap = h.yMax  # capital height
    order, cmap, outlines, metrics = [".notdef"], {}, {}, {".notdef": (advance, 0)}
    outlines[".notdef"] = TTGlyphPen(None).glyph()
    for code, name in sorted(letters().items()):
        n = len(name)
        scale = 0.56 if n == 2 else 0.39  # two or three letters on the diagonal, each as wide as it can be
        low, high = -0.12 * cap, 1.08 * cap  # from a little below the baseline to a little above the capitals
        step_x = (advance - scale * advance) / (n - 1)
        step_y = (high - low - scale * cap) / (n - 1)
        pen = TTGlyphPen(None)
        for i, ch in enumerate(name):
            recorded = DecomposingRecordingPen(glyphs_in)
            glyphs_in[cmap_in[ord(ch)]].draw(recorded)
            baseline = high - scale * cap - i * step_y  # letters fall to the right
            recorded.replay(TransformPen(pen, (scale, 0, 0, scale, round(i * step_x), round(baseline))))
        glyph_name = f"uni{code:04X}"
        order.append(glyph_name)
        cmap[code] = glyph_name
        outlines[glyph_name] = pen.glyph()
        metrics[glyph_name] = (advance, 0)
    fb = FontBuilder(upm, isTTF=True)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap(cmap)
    fb.setupGlyf(outlines)
    for name, glyph in outlines.items():
        glyph.recalcBounds(fb.font["glyf"])
        metrics[name] = (advance, getattr(glyph, "xMin", 0))
    fb.setupHorizontalMetrics(metrics)
    hhea = source["hhea"]
    fb.setupHorizontalHeader(ascent=hhea.ascent, descent=hhea.descent)
    fb.setupNameTable({"familyName": FAMILY, "styleName": "Regular", "uniqueFontIdentifier": f"{FAMILY}-Regular",
                       "fullName": f"{FAMILY} Regular", "psName": f"{FAMILY}-Regular", "version": "Version 1.0",
                       "copyright": "Glyphs made from DejaVu Sans Mono Bold outlines (c) Bitstream; DejaVu changes public "
                                    "domain. See LICENSE-control-pictures.txt."})
    fb.setupOS2(sTypoAscender=hhea.ascent, sTypoDescender=hhea.descent, usWinAscent=hhea.ascent,
                usWinDescent=-hhea.descent, sCapHeight=cap, achVendID="VIZ ")
    fb.setupPost(isFixedPitch=1)
    fb.setupHead(unitsPerEm=upm, created=EPOCH, modified=EPOCH)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "control-pictures.ttf"
    fb.font.recalcTimestamp = False
    fb.save(str(path))
    licence = mono.with_name("LICENSE_DEJAVU").read_text(encoding="utf-8")
    (out / "LICENSE-control-pictures.txt").write_text(
        f"{path.name} ({FAMILY}) is made by scripts/build_control_font.py from the letter outlines of\n"
        "DejaVu Sans Mono Bold (as shipped with matplotlib); it is renamed as the licence below requires.\n\n" + licence,
        encoding="utf-8")
    return path


if __name__ == "__main__":
    print(build())
