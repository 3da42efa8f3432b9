"""Report folders for the page tests: a small random nanoGPT checkpoint (tests.support.nanogpt), run through the real
pipeline (load -> capture -> trace_record -> build_report_data -> write_run_files), plus a few real PNG
figures drawn here with matplotlib, then `render.render_folder`.

What this module does not do: test anything itself (test_render.py, test_page.py do).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.nanogpt import make_checkpoint
from visualizer.capture import capture
from visualizer.model.registry import load_model
from visualizer.site.report import render_folder
from visualizer.model.probe import prepare_probe
from visualizer.analysis.report_data import build_report_data
from visualizer.artefacts.run_files import write_run_files
from visualizer.pipeline import trace_record

CHAR_VOCAB = sorted(set("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))

# Tokens an HTML page must show as text: markup, entities, quotes, whitespace, control, emoji.
INJECTION_VOCAB = [
    "<unk>", "<script>alert(1)</script>", "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=2">', "</script>", "</details>", "<!--", "-->",
    "&amp;", "&lt;", '"', "'", '" onmouseover="window.__pwned=3', "`", "\\", "<", ">", "&",
    " ", "\n", "\t", "\u2028", "😀", "👍🏽", "中", "a", "b", "c",
]
INJECTION_PROBE = (
    "<script>alert(1)</script> &amp; \" ' <img src=x onerror=\"window.__pwned=2\">\n😀 a "
    "</details> <!-- b --> \" onmouseover=\"window.__pwned=3 <script>window.__pwned=1</script> 👍🏽 中 & < > c"
)


# 256 characters of Shakespeare, and the word vocabulary of the long (1,024-token) page tests
CHAR_PROBE = ("ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"
              "Arise, fair sun, and kill the envious moon.\n" * 3)[:256]
WORDS = ["the", "king", "shall", "love", "light", "window", "night", "sun", "moon", "sweet", "Romeo", "Juliet",
         "thou", "art", "fair", "envious", "kill", "arise", "east", "breaks", "yonder", "soft", "what", "is",
         "and", "my", "lord", "good", "heaven", "name", "rose", "smell", "wherefore", "deny", "father", "refuse"]
WORD_VOCAB = ["\n", " ", ".", ","] + WORDS + [" " + w for w in WORDS]


def word_probe(n: int) -> str:
    """n tokens of the word vocabulary: words, full stops and line breaks in a fixed pattern."""
    tokens = []
    for i in range(n):
        if i % 13 == 12:
            tokens.append(".")
        elif i % 29 == 28:
            tokens.append("\n")
        else:
            word = WORDS[(i * 7 + i // 5) % len(WORDS)]
            tokens.append(word if not tokens or tokens[-1] == "\n" else " " + word)
    return "".join(tokens)


def draw_figures(folder: Path, tensors: dict, specs: list[tuple[str, str, str]]) -> list[dict]:
    """Real PNGs of some captured tensors: specs are (key, tensor name, section)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (folder / "figures").mkdir(exist_ok=True)
    figures = []
    for key, name, section in specs:
        a = tensors[name].reshape(tensors[name].shape[0], -1).numpy()
        vmax = float(abs(a).max()) or 1.0
        fig, ax = plt.subplots(figsize=(4, 2.5), dpi=60)
        ax.imshow(a, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
        ax.set_title(name)
        fig.savefig(folder / "figures" / f"{key}.png", metadata={"Software": None})
        plt.close(fig)
        figures.append({"key": key, "section": section, "file": f"figures/{key}.png", "tensor": name,
                        "shape": list(tensors[name].shape), "scale": f"diverging, centred on 0, ±{vmax:.3g}",
                        "title": f"{name} heatmap", "caption": "Drawn by the test suite."})
    return figures


def make_report(folder: Path, probe_text: str, vocab: list[str], figure_specs=(), **model) -> list[dict]:
    """A rendered report folder from a fresh checkpoint; returns the figure list it was given."""
    ckpt, meta = make_checkpoint(folder.parent / (folder.name + "-model"), vocab=vocab, **model)
    loaded = load_model(ckpt, meta, "cpu")
    probe = prepare_probe(loaded, probe_text)
    cache = capture(loaded, probe.ids)
    report_data = build_report_data(loaded, cache, probe.ids, 10)
    folder.mkdir(parents=True, exist_ok=True)
    write_run_files(folder, trace_record(loaded, probe, cache), cache.tensors, report_data)
    figures = draw_figures(folder, cache.tensors, list(figure_specs))
    render_folder(folder, figures)
    return figures


def site_files(folder: Path) -> dict[str, bytes]:
    """Every file of the rendered site (all but activations.safetensors), by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "activations.safetensors"
    }
