"""Golden snapshot of a tiny report folder's format (pdoc-style): a change of any file's name,
keys, structure or page markup shows up as a diff of tests/golden/tiny-report.txt in review.

Numbers are masked (`#`), base64 blobs reduced to their length and binary files to their names
(and, for the activations, tensor names and shapes), so the snapshot pins the format, not the
floating-point bits of one CPU. After an intended change of format:

    python -m tests.test_golden --update      (then review and commit the diff)
"""

from __future__ import annotations

import difflib
import json
import re
import sys
import tempfile
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny-report.txt"
PROBE = "to be, or not: <b>&amp;</b>"
NUMBER = re.compile(r"(?<![A-Za-z0-9_.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
BASE64 = re.compile(r'"([A-Za-z0-9+/]{24,}={0,2})"')


def mask_json(value):
    """Numbers -> '#'; a list of only numbers -> '#xN'; keys and strings kept."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "#"
    if isinstance(value, str):
        return BASE64.sub(lambda m: f'"<base64 x{len(m.group(1))}>"', f'"{value}"')[1:-1]
    if isinstance(value, list):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return f"#x{len(value)}"
        masked = [mask_json(v) for v in value]
        if len(masked) > 1 and (all(m == masked[0] for m in masked) or (
                all(isinstance(m, dict) for m in masked) and len({tuple(sorted(m)) for m in masked}) == 1)):
            return [masked[0], f"(x{len(masked)} of this shape)"]  # rows of one shape: the first, and the count
        return masked
    return {k: mask_json(v) for k, v in value.items()}


def mask_text(text: str) -> str:
    """Numbers -> '#', base64 -> its length; a run of identical lines -> one and the count."""
    text = NUMBER.sub("#", BASE64.sub(lambda m: f'"<base64 x{len(m.group(1))}>"', text))
    lines: list[str] = []
    repeats = 0
    for line in text.splitlines() + [None]:
        if lines and line == lines[-1]:
            repeats += 1
            continue
        if repeats:
            lines.append(f"(the line above x{repeats + 1})")
            repeats = 0
        if line is not None:
            lines.append(line)
    return "\n".join(lines)


def tensor_listing(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return "\n".join(f"{name} {list(f.get_slice(name).get_shape())}" for name in sorted(f.keys()))


def snapshot(folder: Path) -> str:
    """The folder's format as one text: a section per file, sorted by path."""
    sections = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if path.suffix == ".json":
            body = json.dumps(mask_json(json.loads(path.read_text(encoding="utf-8"))), indent=1, sort_keys=True,
                              ensure_ascii=False)
        elif path.suffix == ".safetensors":
            body = tensor_listing(path)
        elif rel.startswith("assets/") or path.suffix == ".png" or path.name == ".nojekyll":
            body = "(listed only)"
        else:
            body = mask_text(path.read_text(encoding="utf-8"))
        sections.append(f"===== {rel}\n{body.rstrip()}\n")
    return "\n".join(sections)


def build(folder: Path) -> str:
    """The tiny report, written by the command line exactly as a user runs it, and its snapshot."""
    from tests.support.cli import run_cli
    from tests.support.nanogpt import char_vocab, make_checkpoint

    vocab = char_vocab("\n !&,.:;<>/abcdefghijklmnopqrstuvwxyz")
    ckpt, meta = make_checkpoint(folder / "model", n_layer=2, n_head=2, n_embd=16, block_size=32, seed=7, vocab=vocab)
    out = folder / "report"
    code, _, stderr = run_cli("--checkpoint", ckpt, "--meta", meta, "--probe", PROBE, "--out", out, "--no-store",
                              "--quiet", "--ig-steps", "4")
    assert code == 0, stderr
    return snapshot(out)


def test_tiny_report_matches_the_golden_snapshot(tmp_path):
    actual = build(tmp_path)
    expected = GOLDEN.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "golden", "now", n=2))
        raise AssertionError("the report folder's format changed (python -m tests.test_golden --update, then review "
                             f"the diff):\n{diff[:6000]}")


def test_masking_keeps_format_and_drops_values():
    assert mask_json({"a": [1.5, 2], "b": "x", "c": [{"d": -3e-5}, {"d": 1}]}) == {"a": "#x2", "b": "x",
                                                                                "c": [{"d": "#"}, "(x2 of this shape)"]}
    assert mask_text("a\nb 1\nb 2\nc") == "a\nb #\n(the line above x2)\nc"
    assert mask_text('<td>0.25</td> "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"') == '<td>#</td> "<base64 x32>"'


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_golden --update")
    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(build(Path(tmp)), encoding="utf-8")
    print(f"wrote {GOLDEN}")
