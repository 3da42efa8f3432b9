"""Attention snapshot PNGs of a generation (matplotlib, Agg): one figure per snapshot step.

A snapshot shows, for one step, the attention row of the context's last position (the query whose
output chose the step's token) in every layer and head: rows `L{l}.H{h}`, columns the context's
tokens, on the palette's sequential scale 0..1 (the page's head table uses the same colours). Bytes
are deterministic: no timestamps or software tag in the PNG metadata.

What this module does not do: compute attention (generate.py) or lay out pages (generation_site.py).
It is, with plots.py, one of the only modules that import matplotlib.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402

import visualizer.figures.palette as palette  # noqa: E402
from visualizer.artefacts.attention_codec import decode_float32  # noqa: E402
from visualizer.figures.glyphs import displayable  # noqa: E402

MAX_LABELS = 64  # beyond this many context tokens, label every n-th (with its position)
LABEL_CHARS = 12  # token labels are cut to this many characters


def mpl_text(text: str) -> str:
    """A label matplotlib prints literally ('$' would start mathtext)."""
    return text.replace("\\", "\\\\").replace("$", r"\$")


def snapshot_steps(n_steps: int, every: int) -> list[int]:
    """Steps (0-based) after every `every` generated tokens; 0 = none."""
    return [] if every <= 0 else [s for s in range(n_steps) if (s + 1) % every == 0]


def write_snapshot(path: Path, attention: np.ndarray, context_tokens: list[str], title: str, first_position: int = 0) -> None:
    """attention [n_layer, n_head, T] -> heatmap PNG (rows layer.head, columns context tokens; when
    only every n-th is labelled, each label starts with its sequence position, the context's first
    being `first_position`). Tokens are drawn as glyphs.displayable makes them (no empty boxes)."""
    n_layer, n_head, T = attention.shape
    grid = attention.reshape(n_layer * n_head, T)  # [L*H, T]
    width = min(16.0, max(6.0, 0.16 * T + 2.0))
    height = min(14.0, max(3.0, 0.22 * n_layer * n_head + 1.6))
    fig = plt.figure(figsize=(width, height), dpi=100)
    # fixed margins in inches (tight_layout would draw the figure twice): labels left, tokens below
    left, right, bottom, top = 0.6 / width, 1 - 1.0 / width, 0.75 / height, 1 - 0.35 / height
    ax = fig.add_axes((left, bottom, right - left, top - bottom))
    cax = fig.add_axes((right + 0.1 / width, bottom, 0.15 / width, top - bottom))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # glyphs the font lacks (emoji) are drawn as boxes
            rgb = palette.SEQUENTIAL[palette.index(grid, 0.0, 1.0)]  # [L*H, T, 3]: the page's colours exactly
            ax.imshow(rgb, aspect="auto", interpolation="nearest")
            scale = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=ListedColormap(palette.SEQUENTIAL / 255.0))
            stride = max(1, -(-T // MAX_LABELS))
            ax.set_xticks(range(0, T, stride))
            labels = [displayable(t, LABEL_CHARS) for t in context_tokens]
            if stride > 1:
                labels = [f"{first_position + i} {t}" for i, t in enumerate(labels)]
            ax.set_xticklabels([mpl_text(t) for t in labels[::stride]], rotation=90, fontsize=7, family="monospace")
            ax.set_yticks(range(n_layer * n_head))
            ax.set_yticklabels([f"L{l}.H{h}" for l in range(n_layer) for h in range(n_head)], fontsize=6)
            for l in range(1, n_layer):
                ax.axhline(l * n_head - 0.5, color="#888", linewidth=0.5)
            ax.set_xlabel("context token (key)")
            ax.set_title(mpl_text(displayable(title)), fontsize=9, loc="left")
            fig.colorbar(scale, cax=cax, label="attention")
            fig.savefig(path, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)


def write_snapshots(folder: Path, record: dict, every: int) -> list[dict]:
    """PNG of every `every`-th step from a generation record, into folder/snapshots/.
    Returns [{step, file (relative to folder), readable}] for the page."""
    tokens = list(record["prompt_tokens_readable"]) + [s["readable"] for s in record["steps"]]  # by position
    written = []
    for index in snapshot_steps(len(record["steps"]), every):
        step = record["steps"][index]
        name = f"snapshots/attention-step-{index:04d}.png"
        (folder / "snapshots").mkdir(exist_ok=True)
        start = step["context_start"]
        write_snapshot(folder / name, decode_float32(step["attention"]), tokens[start : start + step["context_length"]],
                       f"step {index}: chose {step['readable']!r} (p={step['prob']:.4f}) · "
                       "attention row of the context's last position", first_position=start)
        written.append({"step": index, "file": name, "readable": step["readable"]})
    return written
