"""Static figures of a capture: heatmaps, small multiples, line and bar charts, tables, word maps.

Two steps, so the costly one can run in parallel and the cheap one stays a pure function:

  plan_figures(trace, tensors, report_data) -> [FigureJob]   what to draw, colour scales decided,
                                                             numpy views of the data (no drawing)
  render_figures(folder, jobs, workers)      -> [Figure]     folder/figures/<key>.png, in parallel

Every figure names the capture tensor it shows, its shape and colour scale, in the PNG's header and
in its `Figure` record. Colours come from palette.py, the page's palette too: signed values get the
diverging scale centred on 0 (symmetric limits, one scale for all heads of a tensor); probabilities
and attention weights get the sequential scale on 0..1 (the same for every head). Masked attention
cells (scores -inf, pattern 0) are grey. Token tables are laid out as the page's views are (the
logit lens: layers down, positions across). Captions name the norm and MLP the model's adapter
declares (trace.json's `presentation`), never a family. PNGs are palette images written by PIL
with no metadata: same inputs, same bytes.

Big inputs stay bounded: matrices get at most about 1000 x 768 pixels of cells (a single wide
matrix up to 1600 columns) and signed matrices at most MAX_SIGNED_CELLS distinct cells (noise costs
about a byte a cell in a PNG). Beyond that, blocks of rows (positions first) or columns are pooled
for display, each block showing its entry of largest magnitude (sign kept), so outliers and a
head's one attended key stay visible. The figure's header and caption say so.
Per-head attention PNGs (every token on both axes) are drawn only when T <= PER_HEAD_MAX_T and
there are two heads or more; the all-heads grid is always drawn. Token tables (top-k, logit lens,
neighbours) show at most TABLE_ROWS rows.

Drawing is PIL (raster.py): a matplotlib figure per PNG spends ~0.1-0.5 s building tick and axes
objects, which for 150+ figures breaks the time budget; PIL draws the same in ~15 ms, pixel-exact.
Word maps are wordmaps.py.

What this module does not do: compute analysis numbers (report_data.py) or write HTML (site.py).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import visualizer.figures.palette as palette
import visualizer.figures.raster as raster
import visualizer.figures.wordmaps as wordmaps
from visualizer.artefacts.numbers import number
from visualizer.figures.glyphs import displayable
from visualizer.figures.raster import tile_geometry

MAX_SIGNED_CELLS = 1 << 17  # distinct cells in one signed-value image (noise costs ~1 byte a cell)
PER_HEAD_MAX_T = 64  # per-head attention PNGs only up to this many positions
MODES = ("auto", "all", "none")  # --figures: auto = every figure up to DETAIL_MAX_T positions, the key ones beyond
DETAIL_MAX_T = 256  # auto: each layer's activation matrices (q, k, v, z, norms, MLP, streams) up to this length
TABLE_ROWS = 64  # token tables show at most the last TABLE_ROWS positions
LABEL_CHARS = 12  # token labels are cut to this many characters
CLIP_RATIO = 4.0  # clip a diverging scale at the 99.5th percentile when max|x| exceeds it this much
DIVERGING, SEQUENTIAL = "diverging", "sequential"  # palette.SCALES
DIVERGING_TEXT = "diverging (blue −, white 0, red +)"


@dataclass(frozen=True)
class Figure:
    """One PNG of the report, as the site lists it."""

    key: str  # unique; the file stem, e.g. 'blocks.0.attn.hook_pattern'
    section: str  # 'embeddings' | 'layer.{l}' | 'final'
    file: str  # relative to the report folder: 'figures/<key>.png'
    tensor: str  # capture name(s) shown
    shape: list[int]  # shape of that tensor (of the data shown, for derived views)
    scale: str  # colour (or size) scale, e.g. 'diverging (blue −, white 0, red +), centred on 0, ±1.23'
    title: str
    caption: str


@dataclass
class FigureJob:
    """A figure to draw: its record, a drawing kind, and the data that kind needs."""

    figure: Figure
    kind: str  # 'tiles' | 'lines' | 'bars' | 'table' | 'wordmap'
    data: dict = field(repr=False)
    cost: float = 1.0  # rough relative drawing cost, to start the slow ones first


# ----------------------------------------------------------------------------- colour scales


def diverging_limits(values: np.ndarray) -> tuple[float, float, str]:
    """(vmin, vmax, description) for signed values: vmin == -vmax, centred on 0, finite values only.

    The limit is max|x|, unless max|x| is more than CLIP_RATIO times the 99.5th percentile of |x|
    (a few outliers would wash everything else out): then the percentile, and the description
    says the scale is clipped and gives max|x|."""
    values = np.asarray(values)
    ok = np.isfinite(values)
    finite = np.abs(values if ok.all() else values[ok]).ravel()
    if finite.size == 0:
        return -1.0, 1.0, f"{DIVERGING_TEXT}, centred on 0; no finite values"
    peak = float(finite.max())
    if peak == 0.0:
        return -1.0, 1.0, f"{DIVERGING_TEXT}, centred on 0; all values are 0"
    limit, note = peak, ""
    if finite.size > 200:
        sample = finite[:: max(1, finite.size >> 20)]  # a fixed stride: about a million values at most
        p = float(np.percentile(sample, 99.5))
        if 0 < p and peak > CLIP_RATIO * p:
            limit, note = p, f" (clipped at the 99.5th percentile of |x|; max |x| = {peak:.3g})"
    return -limit, limit, f"{DIVERGING_TEXT}, centred on 0, ±{limit:.3g}{note}"


def sequential_limits(vmin: float = 0.0, vmax: float = 1.0) -> tuple[float, float, str]:
    return vmin, vmax, f"sequential (white {vmin:g} to dark blue {vmax:g})"


# ----------------------------------------------------------------------------- values that are not numbers


def non_finite_text(values: np.ndarray, minus_inf_masked: bool = False) -> str:
    """'' when every value is finite, else what is not: '3 NaN, 1 +inf values'. `minus_inf_masked`:
    -inf marks a masked cell (attention scores), not a broken value, and is not counted."""
    values = np.asarray(values)
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return ""
    parts = [(int(np.isnan(values).sum()), "NaN"), (int(np.isposinf(values).sum()), "+inf")]
    if not minus_inf_masked:
        parts.append((int(np.isneginf(values).sum()), "−inf"))
    parts = [f"{n:,} {name}" for n, name in parts if n]
    return (", ".join(parts) + " values") if parts else ""


def missing_sentence(what: str) -> str:
    """The caption's sentence for a figure with values that are not finite numbers."""
    return f"This tensor holds {what} (the model computed no finite number there): drawn in the missing-value grey."


# ----------------------------------------------------------------------------- display pooling


def no_candidates(empty: int, total: int, what: str = "positions") -> str:
    """The caption's sentence for a token table with rows that have no candidate (not finite logits)."""
    if not empty:
        return ""
    return (f" {empty:,} of {total:,} {what} have no candidate: the logits there are not finite numbers "
            "(NaN or infinite), so no probability exists; drawn in the missing-value grey.")


def pooling_note(rows: int, cols: int, geometry: dict, row_name: str, col_name: str) -> str:
    parts = []
    for count, f, name in ((rows, geometry["fr"], row_name), (cols, geometry["fc"], col_name)):
        if f > 1:
            parts.append(f"{count} {name} shown as {math.ceil(count / f)} blocks of {f}")
    if not parts:
        return ""
    return "display pooled: " + "; ".join(parts) + " (the entry of largest |x| in each block)"


# ----------------------------------------------------------------------------- planning


def _np(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    return t.detach().to("cpu").float().numpy()


def _shape_text(shape, names) -> str:
    return "[" + ", ".join(f"{n} {s}" for s, n in zip(shape, names)) + "]"


class _Planner:
    """Collects jobs; knows the probe's token labels."""

    def __init__(self, trace: dict, tensors: dict, report_data: dict, mode: str = "all"):
        self.trace, self.tensors, self.data = trace, tensors, report_data
        readable_tokens = trace.get("tokens_readable") or []
        self.tokens = [displayable(t, LABEL_CHARS) for t in readable_tokens]
        self.T = len(self.tokens)
        self.detailed = draws_activation_matrices(mode, self.T)  # else only each layer's key figures
        # short probes: the token alone; long ones: position and token (labels are thinned out)
        self.labels = self.tokens if self.T <= PER_HEAD_MAX_T else [f"{i} {t}" for i, t in enumerate(self.tokens)]
        self.jobs: list[FigureJob] = []
        # what the adapter declared (traces written before it did: generic words)
        declared = trace.get("presentation") or {}
        self.norm = declared.get("norm")  # 'LayerNorm' | 'RMSNorm' | None
        mlp = declared.get("mlp") or {}
        self.activation, self.gated = mlp.get("activation"), bool(mlp.get("gated"))
        self.notes = declared.get("stream_notes") or []
        self.final_notes = [n for n in self.notes if n.get("stage") == "final"]

    def norm_name(self, capital: bool) -> str:
        """The declared norm kind, else 'Norm'/'norm'."""
        return self.norm or ("Norm" if capital else "norm")

    def mlp_captions(self, layer: int) -> tuple[str, str, str]:
        """Captions of hook_pre and hook_post, and what hook_post is called, from the declared MLP kind."""
        act = self.activation or "the nonlinearity"
        if self.gated:
            return (f"MLP gate pre-activation of layer {layer} (the gate projection, before {act}), every neuron.",
                    f"MLP hidden activation of layer {layer}: {act}(gate) · up, what the down projection reads, every neuron.",
                    "hidden activation")
        return (f"MLP pre-activation of layer {layer} (before {act}), every neuron.",
                f"MLP post-activation of layer {layer} (after {act}), every neuron.", "post-activation")

    def position_labels(self) -> list[str]:
        return self.labels

    def add(self, key, section, tensor, shape, scale, title, caption, kind, data, cost=1.0):
        figure = Figure(key=key, section=section, file=f"figures/{key}.png", tensor=tensor, shape=[int(s) for s in shape],
                        scale=scale, title=title, caption=caption)
        self.jobs.append(FigureJob(figure, kind, data, cost))

    # --- matrices

    def matrix(self, key, section, name, values, *, dim_names, col_name, caption, signed=True, col_labels=None,
               tensor_shape=None, title=None, col_index=None):
        """One [pos, features] heatmap."""
        values = _np(values)
        self.tiles(key, section, name, values[None], tile_titles=None, dim_names=dim_names,
                   shape=tensor_shape or values.shape, row_name="positions", col_name=col_name, signed=signed,
                   caption=caption, col_labels=col_labels, square=False, title=title, col_index=col_index)

    def tiles(self, key, section, name, stack, *, tile_titles, dim_names, shape, row_name, col_name, signed, caption,
              col_labels=None, square=False, masked=False, title=None, col_index=None, mask=None):
        """n small multiples [n, R, C] in one image with one colour scale."""
        stack = _np(stack)
        n, R, C = stack.shape
        geometry = tile_geometry(n, R, C, square=square, max_cells=MAX_SIGNED_CELLS if signed else None)
        vmin, vmax, scale = diverging_limits(stack) if signed else sequential_limits()
        if masked:
            scale += "; masked positions grey"
        missing = non_finite_text(stack, minus_inf_masked=masked and mask is None)
        if missing:
            scale += f"; {missing} grey"
        note = pooling_note(R, C, geometry, row_name, col_name)
        subtitle = f"{_shape_text(shape, dim_names)} · {scale}"
        self.add(
            key, section, name, shape, scale, title or name,
            caption + (f" {note[0].upper() + note[1:]}." if note else "")
            + (f" {missing_sentence(missing)}" if missing else ""),
            "tiles",
            {
                "values": stack, "mask": mask, "tile_titles": tile_titles, "geometry": geometry,
                "vmin": vmin, "vmax": vmax, "cmap": DIVERGING if signed else SEQUENTIAL,
                "row_labels": self.position_labels(),
                "col_labels": col_labels if col_labels is not None else (self.position_labels() if square else None),
                "col_index": col_index,
                "title": title or name, "subtitle": subtitle, "note": note,
                "ylabel": "query position" if square else "position",
                "xlabel": "key position" if square else col_name,
            },
            cost=1.0 + stack.size / 2e5,
        )

    def heads(self, layer, hook, what):
        name = f"blocks.{layer}.attn.{hook}"
        if name not in self.tensors:
            return
        if not self.detailed:
            return
        t = _np(self.tensors[name])  # [T, heads, d_head]
        T, nh, dh = t.shape
        self.tiles(name, f"layer.{layer}", name, t.transpose(1, 0, 2), tile_titles=[f"H{h}" for h in range(nh)],
                   dim_names=("pos", "head", "d_head"), shape=t.shape, row_name="positions", col_name="d_head dims",
                   signed=True, caption=f"{what} of every head of layer {layer}: one panel per head, rows are "
                   f"positions, columns the {dh} dimensions of the head; one colour scale for all heads.")

    # --- sections

    def embeddings(self):
        section = "embeddings"
        dm = "d_model dims"
        extra = [n["heading"] for n in self.notes if n.get("stage") == "embedding"]
        if extra:
            entering = f"The residual stream entering block 0, after {', '.join(h.lower() for h in extra)}."
        elif "hook_pos_embed" in self.tensors:
            entering = "Their sum, the residual stream entering block 0."
        else:
            entering = "The residual stream entering block 0: the token embedding."
        specs = [
            ("hook_embed", "Token embedding: the row of W_E for each probe token."),
            ("hook_pos_embed", "Position embedding: the row of W_pos for each position."),
            ("blocks.0.hook_resid_pre", entering),
        ]
        for name, caption in specs:
            if name in self.tensors:
                self.matrix(name, section, name, self.tensors[name], dim_names=("pos", "d_model"), col_name=dm,
                            caption=caption + " Rows are positions, columns residual dimensions.")
        self.neighbours(section)

    def neighbours(self, section):
        table = self.data.get("neighbours")
        if not table:
            return
        ids = self.trace.get("token_ids") or list(range(len(table)))
        seen, rows = set(), []
        for pos, token_id in enumerate(ids):
            if token_id not in seen:
                seen.add(token_id)
                rows.append(pos)
        shown = rows[:TABLE_ROWS]
        k = max(len(table[p]) for p in shown)
        values = np.full((len(shown), k), np.nan, dtype=np.float32)
        texts = [["" for _ in range(k)] for _ in shown]
        for r, pos in enumerate(shown):
            for c, rec in enumerate(table[pos]):
                values[r, c] = number(rec["cosine"])
                texts[r][c] = displayable(rec["readable"], 8)
        cut = f" (the first {len(shown)} of {len(rows)} distinct tokens)" if len(rows) > len(shown) else ""
        self.add(
            "embeddings.neighbours", section, "W_E (token embedding matrix)", [len(shown), k],
            f"{DIVERGING_TEXT}, centred on 0, ±1 (cosine)",
            "Nearest vocabulary neighbours (cosine of W_E rows)",
            f"For each distinct probe token{cut}, the {k} vocabulary tokens whose embedding rows are closest "
            "by cosine similarity (the token itself excluded); cell colour is the cosine.",
            "table",
            {"values": values, "texts": texts, "row_labels": [self.tokens[p] for p in shown],
             "col_labels": [str(i + 1) for i in range(k)], "vmin": -1.0, "vmax": 1.0, "cmap": DIVERGING,
             "title": "Nearest neighbours in W_E (cosine)", "subtitle": f"[distinct tokens {len(shown)}, neighbours {k}]"
             f" · {DIVERGING_TEXT}, centred on 0, ±1", "ylabel": "probe token", "xlabel": "neighbour rank"},
            cost=1.0 + values.size / 300,
        )
        weights: dict[str, float] = {}
        for pos in range(len(table)):
            for rec in table[pos]:
                if number(rec["cosine"]) > 0:
                    label = rec["readable"]
                    weights[label] = weights.get(label, 0.0) + number(rec["cosine"])
        self.word_map("embeddings.neighbours.map", section, "W_E (token embedding matrix)", [len(table), k],
                      weights, "Embedding neighbours of the probe's tokens",
                      "size: cosine summed over the probe's positions (positive cosines only)",
                      "Vocabulary tokens nearest to the probe's tokens in the token embedding; a token near "
                      "many probe tokens (or near a repeated one) is drawn larger.")

    def word_map(self, key, section, tensor, shape, weights, title, scale, caption):
        self.add(key, section, tensor, shape, f"word size grows with weight: {scale}", title, caption, "wordmap",
                 {"weights": weights, "title": title, "subtitle": f"{tensor} · {scale}"}, cost=2.0)

    def layer(self, layer):
        section = f"layer.{layer}"
        b = f"blocks.{layer}"
        dm = "d_model dims"
        d = ("pos", "d_model")

        def mat(name, caption, dims=d, col=dm):
            if name in self.tensors and self.detailed:
                self.matrix(name, section, name, self.tensors[name], dim_names=dims, col_name=col, caption=caption)

        norm = self.norm_name(capital=True)
        pre, post, _ = self.mlp_captions(layer)
        mat(f"{b}.ln1.hook_normalized", f"{norm} 1 output of layer {layer}: what attention reads.")
        self.heads(layer, "hook_q", "Queries")
        self.heads(layer, "hook_k", "Keys")
        self.heads(layer, "hook_v", "Values")
        self.attention(layer, section)
        self.heads(layer, "hook_z", "z (pattern-weighted values, before the output projection)")
        mat(f"{b}.hook_attn_out", f"Attention output of layer {layer}: what attention adds to the residual stream.")
        mat(f"{b}.hook_resid_mid", f"Residual stream after attention of layer {layer} (resid_pre + attn_out).")
        mat(f"{b}.ln2.hook_normalized", f"{norm} 2 output of layer {layer}: what the MLP reads.")
        mat(f"{b}.mlp.hook_pre", pre, ("pos", "d_mlp"), "neurons")
        mat(f"{b}.mlp.hook_post", post, ("pos", "d_mlp"), "neurons")
        self.top_neurons(layer, section)
        mat(f"{b}.hook_mlp_out", f"MLP output of layer {layer}: what the MLP adds to the residual stream.")
        mat(f"{b}.hook_resid_post", f"Residual stream after layer {layer} (resid_mid + mlp_out).")
        self.norms(layer, section)
        self.lens_map(layer, section)

    def attention(self, layer, section):
        b = f"blocks.{layer}.attn"
        names = ("head", "query_pos", "key_pos")
        scores_name, pattern_name = f"{b}.hook_attn_scores", f"{b}.hook_pattern"
        scores = _np(self.tensors[scores_name]) if scores_name in self.tensors else None  # [nh, T, T], -inf masked
        if scores is not None and self.detailed:
            self.tiles(scores_name, section, scores_name, scores, tile_titles=[f"H{h}" for h in range(scores.shape[0])],
                       dim_names=names, shape=scores.shape, row_name="query positions", col_name="key positions",
                       signed=True, square=True, masked=True,
                       caption=f"Attention scores of layer {layer} (q·k scaled, before softmax), one panel per head; "
                       "rows are queries, columns keys; masked cells grey; one colour scale (finite values) for all heads.")
        if pattern_name not in self.tensors:
            return
        pattern = _np(self.tensors[pattern_name])  # [nh, T, T]
        nh = pattern.shape[0]
        masked = scores is not None
        grey = " Masked cells (probability 0) are grey." if masked else ""
        self.tiles(pattern_name, section, pattern_name, pattern, tile_titles=[f"H{h}" for h in range(nh)],
                   dim_names=names, shape=pattern.shape, row_name="query positions", col_name="key positions",
                   signed=False, square=True, masked=masked, mask=scores,
                   caption=f"Attention pattern of layer {layer} (softmax of the scores), one panel per head; rows are "
                   f"queries (each sums to 1), columns keys; the same 0..1 scale for every head.{grey}")
        if self.T > PER_HEAD_MAX_T or nh == 1:  # one head: the grid is that head's figure
            return
        for h in range(nh):
            self.tiles(f"{pattern_name}.H{h}", section, pattern_name, pattern[h][None], tile_titles=None,
                       dim_names=names[1:], shape=pattern.shape[1:], row_name="query positions",
                       col_name="key positions", signed=False, square=True, masked=masked,
                       mask=None if scores is None else scores[h][None], title=f"{pattern_name} head {h}",
                       caption=f"Attention pattern of layer {layer}, head {h}: rows are queries, columns keys, every "
                       f"token labelled; the same 0..1 scale as every head.{grey}")

    def top_neurons(self, layer, section):
        name = f"blocks.{layer}.mlp.hook_post"
        table = (self.data.get("neurons") or {}).get(str(layer))
        if not table or name not in self.tensors:
            return
        post = _np(self.tensors[name])  # [T, d_mlp]
        count: dict[int, int] = {}
        best: dict[int, float] = {}
        for row in table:
            for rec in row:
                n = rec["neuron"]
                count[n] = count.get(n, 0) + 1
                value = number(rec["value"])
                best[n] = max(best.get(n, -math.inf), value if math.isfinite(value) else -math.inf)
        chosen = sorted(count, key=lambda n: (-count[n], -best[n], n))[:64]
        chosen.sort()
        cut = f" (the {len(chosen)} most often in a top 5, of {len(count)})" if len(count) > len(chosen) else ""
        self.matrix(f"{name}.top_neurons", section, name, post[:, chosen], dim_names=("pos", "neuron"),
                    col_name="neuron", col_labels=[str(n) for n in chosen], col_index=chosen,
                    tensor_shape=[post.shape[0], len(chosen)], title=f"{name}: most active neurons",
                    caption=f"MLP {self.mlp_captions(layer)[2]} of layer {layer} for the neurons that are among the 5 "
                    f"most active at some position{cut}; columns labelled by neuron index.")

    def norms(self, layer, section):
        norms = self.data.get("resid_norms") or {}
        b = f"blocks.{layer}"
        hooks = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
        colours = dict(palette.NORM_SERIES)  # the page's norm chart uses the same colours
        series = [(h, [number(v) for v in norms[f"{b}.{h}"]], colours[h]) for h in hooks if f"{b}.{h}" in norms]
        if not series:
            return
        missing = sum(1 for _, values, _ in series for v in values if not math.isfinite(v))
        gaps = (f" {missing} of the norms are not finite numbers (the stream holds NaN or infinite values there): "
                "the lines leave those positions out.") if missing else ""
        self.add(f"{b}.resid_norms", section, ", ".join(f"{b}.{h}" for h, _, _ in series), [len(series[0][1])],
                 "linear axis: L2 norm", f"{b}: residual-stream norm per position",
                 f"L2 norm of the residual stream at every position, before layer {layer}, after its attention and "
                 "after its MLP." + gaps,
                 "lines", {"series": series, "labels": self.position_labels(), "ylabel": "L2 norm",
                           "title": f"{b}: residual-stream norm per position",
                           "subtitle": f"‖x‖₂ of hook_resid_pre, hook_resid_mid, hook_resid_post · [pos {self.T}]"},
                 cost=6.0)

    def lens_map(self, layer, section):
        lens = self.data.get("logit_lens") or []
        entry = next((e for e in lens if e.get("layer") == layer), None)
        if entry is None:
            return
        records = [rec for row in entry["topk"] for rec in row]
        weights = wordmaps.weights_from_records(records, "prob")
        k = max((len(row) for row in entry["topk"]), default=0)
        self.word_map(f"blocks.{layer}.logit_lens.map", section, entry["hook"], [len(entry["topk"]), k], weights,
                      f"Logit lens after layer {layer}",
                      f"lens probability summed over positions (top {k} per position)",
                      f"Next tokens predicted by the residual stream after layer {layer} (final norm and unembedding "
                      f"applied to {entry['hook']}): each position's top {k}, sized by probability summed over positions.")

    def final(self):
        section = "final"
        if "ln_final.hook_normalized" in self.tensors:
            self.matrix("ln_final.hook_normalized", section, "ln_final.hook_normalized",
                        self.tensors["ln_final.hook_normalized"], dim_names=("pos", "d_model"), col_name="d_model dims",
                        caption=f"Final {self.norm_name(capital=False)} output: what the unembedding reads.")
        if "logits" in self.tensors:
            self.matrix("logits", section, "logits", self.tensors["logits"], dim_names=("pos", "vocab"),
                        col_name="vocabulary ids", caption="Logits over the whole vocabulary at every position.")
        self.token_table("final.topk", section, "logits", [row for row in (self.data.get("final") or {}).get("topk", [])],
                         "Top next tokens at every position",
                         "The model's most likely next tokens after each position (softmax of the logits); "
                         "cell colour is the probability.", "rank")
        self.lens_table(section)
        final_rows = (self.data.get("final") or {}).get("topk") or []
        if final_rows:
            last = final_rows[-1]
            self.word_map("final.next_token.map", section, "logits", [len(last)],
                          wordmaps.weights_from_records(last, "prob"), "Next token after the whole probe",
                          f"probability at the last position (top {len(last)})",
                          "The model's next-token distribution after the last probe token, sized by probability.")
        self.dla(section)

    def token_table(self, key, section, tensor, rows, title, caption, col_name):
        if not rows:
            return
        start = max(0, len(rows) - TABLE_ROWS)
        shown = rows[start:]
        k = max(1, max(len(r) for r in shown))  # a row is empty where the logits are not finite
        values = np.full((len(shown), k), np.nan, dtype=np.float32)
        texts = [["" for _ in range(k)] for _ in shown]
        for r, row in enumerate(shown):
            for c, rec in enumerate(row):
                values[r, c] = number(rec["prob"])
                texts[r][c] = displayable(rec["readable"], 8)
        cut = f" Only the last {len(shown)} of {len(rows)} positions are shown." if start else ""
        labels = self.position_labels() or [str(i) for i in range(len(rows))]
        self.add(key, section, tensor, [len(rows), k], sequential_limits()[2] + " (probability)", title,
                 caption + cut + no_candidates(sum(1 for r in rows if not r), len(rows)),
                 "table",
                 {"values": values, "texts": texts, "row_labels": labels[start:start + len(shown)],
                  "col_labels": [str(i + 1) for i in range(k)], "vmin": 0.0, "vmax": 1.0,
                  "cmap": SEQUENTIAL, "title": title, "subtitle": f"{tensor} · [pos {len(rows)}, {col_name} {k}] · "
                  f"{sequential_limits()[2]} (probability)" + (f" · last {len(shown)} positions" if start else ""),
                  "ylabel": "position (input token)", "xlabel": col_name},
                 cost=1.0 + values.size / 300)

    def lens_table(self, section):
        """Layers down, positions across, as the page's logit-lens grid: each cell the top-1 token."""
        layers = self.data.get("logit_lens") or []
        if not layers:
            return
        embed = self.data.get("logit_lens_embed")  # reports since the embed row: the page grid's first row
        lens = ([embed] if embed else []) + layers
        row_labels = (["embed"] if embed else []) + [f"after L{e['layer']}" for e in layers]
        T = len(lens[0]["topk"])
        start = max(0, T - TABLE_ROWS)
        shown = range(start, T)
        tops = [[entry["topk"][pos][0] if entry["topk"][pos] else None for pos in shown] for entry in lens]  # [L][shown]
        values = np.array([[number(t["prob"]) if t else np.nan for t in row] for row in tops],
                          dtype=np.float32)  # [L, shown]: NaN where a row has no candidate
        texts = [[displayable(t["readable"], 8) if t else "" for t in row] for row in tops]
        empty = sum(1 for entry in lens for row in entry["topk"] if not row)
        labels = self.position_labels() or [str(i) for i in range(T)]
        tensor = (", ".join(e["hook"] for e in layers) if len(layers) <= 2
                  else f"blocks.{{0..{len(layers) - 1}}}.hook_resid_post")
        if embed:
            tensor = f"{embed['hook']}, {tensor}"
        if self.final_notes:
            last = (f"The last row reads the last layer's output, not the residual the model's own output is read from "
                    f"({'; '.join(n['heading'] for n in self.final_notes)} comes in between), so the two may differ.")
        else:
            last = "The last row is the model's own output."
        cut = f" Only the last {len(shown)} of {T} positions are shown." if start else ""
        scale = sequential_limits()[2] + " (probability)"
        self.add("final.logit_lens", section, tensor, [len(lens), T], scale, "Logit lens: top token after every layer",
                 "The most likely next token read from the residual stream after each layer (final norm and unembedding "
                 f"applied early), laid out as the page's logit-lens grid: layers down, positions across. {last} "
                 + ("The first row, embed, reads the stream entering block 0: what the embeddings alone predict. "
                    if embed else "") +
                 "Cell colour is its probability." + cut + no_candidates(empty, len(lens) * T, "cells"),
                 "table",
                 {"values": values, "texts": texts, "row_labels": row_labels,
                  "col_labels": labels[start:], "vmin": 0.0, "vmax": 1.0, "cmap": SEQUENTIAL, "wrap": True,
                  "title": "Logit lens: top token after every layer",
                  "subtitle": f"{tensor} · [layer {len(lens)}, pos {T}] · {scale}"
                  + (f" · last {len(shown)} positions" if start else ""),
                  "ylabel": "layer", "xlabel": "position (input token)"},
                 cost=1.0 + values.size / 300)

    def dla(self, section):
        dla = self.data.get("dla") or {}
        candidates = dla.get("candidates") or []
        if not candidates:
            return
        pos = dla.get("position", self.T - 1)
        token = self.tokens[pos] if 0 <= pos < self.T else str(pos)
        comp_panels, dim_panels = [], []
        for cand in candidates:
            head = (f"{displayable(cand['readable'], 10)}  p={number(cand['prob']):.3f}  "
                    f"logit={number(cand['logit']):.3g}")
            if cand.get("cap") is not None:  # the bars add up to the logit before the soft cap
                head += f" (raw {number(cand['raw_logit']):.3g})"
            comps = sorted(({"name": c["name"], "value": number(c["value"])} for c in cand["by_component"]),
                           key=lambda c: (-abs(c["value"]) if math.isfinite(c["value"]) else -math.inf))
            top = comps[:12]
            rest = sum(c["value"] for c in comps[12:])
            labels = [c["name"] for c in top] + ([f"{len(comps) - 12} others"] if len(comps) > 12 else []) + ["constant"]
            values = [c["value"] for c in top] + ([rest] if len(comps) > 12 else []) + [number(cand["constant"])]
            comp_panels.append({"title": head, "labels": labels, "values": values,
                                "total": number(cand["component_sum"])})
            dims = [{"dim": d["dim"], "product": number(d["product"])} for d in cand["by_dimension"]]
            shown = sum(d["product"] for d in dims)
            labels = [f"dim {d['dim']}" for d in dims] + ["other dims"]
            values = [d["product"] for d in dims] + [number(cand["dimension_sum"]) - shown]
            dim_panels.append({"title": head, "labels": labels, "values": values,
                               "total": number(cand["dimension_sum"])})
        n_comp = len(candidates[0]["by_component"])
        where = f"position {pos} ({token})"
        self.add("final.dla.by_component", section, "ln_final(resid) · W_U[token], split over residual components",
                 [len(candidates), n_comp], "bar length: contribution to the logit (red +, blue −)",
                 "Dot-product breakdown by component",
                 f"Each top candidate's logit at {where}, split over the pieces of the residual stream (embeddings, "
                 "every attention head, MLPs) with the final norm's scale frozen: the 12 largest by |value|, the rest "
                 "summed, and the final-norm bias term. The bars add up to the logit before any cap.",
                 "bars", {"panels": comp_panels, "title": "Dot-product breakdown by component",
                          "subtitle": f"logit = Σ component · W_U[token] at {where} (final norm frozen)",
                          "xlabel": "contribution to the logit"}, cost=15.0)
        self.add("final.dla.by_dimension", section, "ln_final.hook_normalized · W_U[token]",
                 [len(candidates), len(candidates[0]["by_dimension"])], "bar length: product (red +, blue −)",
                 "Dot-product breakdown by dimension",
                 f"Each top candidate's logit at {where} as a sum over d_model of ln_final(x)[i] · W_U[token, i]: the "
                 "products largest in absolute value (positive or negative) and the sum of the rest.",
                 "bars", {"panels": dim_panels, "title": "Dot-product breakdown by dimension",
                          "subtitle": f"logit = Σ_i ln_final(x)[i] · W_U[token, i] at {where}",
                          "xlabel": "product"}, cost=15.0)


def draws_activation_matrices(mode: str, T: int) -> bool:
    """Whether a report of T positions in figure mode `mode` (MODES) draws each layer's activation
    matrices; without them a layer keeps its attention pattern grid, top neurons, residual norms
    and lens map (the page's views show every position of the rest)."""
    if mode not in MODES:
        raise ValueError(f"figure mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "all" or (mode == "auto" and T <= DETAIL_MAX_T)


def figures_note(mode: str, T: int) -> str | None:
    """What a page of T positions says about the figures mode `mode` left out (None: nothing left out)."""
    if mode == "none":
        return ("This report has no PNG figures (written with --figures none): the interactive views and the "
                "tables show the data.")
    if not draws_activation_matrices(mode, T):
        return (f"At {T} positions (more than {DETAIL_MAX_T}) each layer's activation matrices (norm outputs, "
                "q, k, v, z, attention scores, attention and MLP outputs, residual streams) are not drawn as PNGs, "
                "so that the report stays fast: their statistics are in the tables, the attention and lens views "
                "show every position, and --figures all draws them.")
    return None


def plan_figures(trace: dict, tensors: dict, report_data: dict, mode: str = "all") -> list[FigureJob]:
    """Every figure of a report in figure mode `mode` (MODES; 'none': no figure), in page order:
    embeddings, each layer, final. Pure: no drawing.

    trace: trace.json contents (tokens_readable, token_ids, dims); tensors: capture name ->
    tensor or array (batch dropped); report_data: report_data.json contents. Figures whose data
    is absent (a model without position embeddings, say) are left out."""
    if mode == "none":
        return []
    planner = _Planner(trace, tensors, report_data, mode)  # checks the mode
    planner.embeddings()
    n_layer = (trace.get("dims") or {}).get("n_layer")
    if n_layer is None:
        n_layer = len({k.split(".")[1] for k in tensors if k.startswith("blocks.")})
    for layer in range(n_layer):
        planner.layer(layer)
    planner.final()
    keys = [job.figure.key for job in planner.jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"plan_figures: duplicate figure keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return planner.jobs


# ----------------------------------------------------------------------------- drawing

_JOBS: list[FigureJob] = []  # jobs a forked worker pool reads by index


_DRAW = {
    "tiles": lambda d: raster.tiles_image(d, palette.SCALES[d["cmap"]]),
    "table": lambda d: raster.table_image(d, palette.SCALES[d["cmap"]]),
    "lines": raster.lines_image,
    "bars": raster.bars_image,
}


def render_one(out: Path, job: FigureJob) -> Path:
    """Draw one job into out/<key>.png (out is the figures folder)."""
    path = Path(out) / f"{job.figure.key}.png"
    if job.kind == "wordmap":
        d = job.data
        wordmaps.word_map(d["weights"], path, title=d["title"], subtitle=d["subtitle"])
        return path
    scale = palette.SCALES.get(job.data.get("cmap"))  # its colours written exactly
    wordmaps.save_png(_DRAW[job.kind](job.data), path, keep=scale)
    return path


def _render_index(args) -> int:
    index, out = args
    render_one(out, _JOBS[index])
    return index


def render_figures(folder: Path, jobs: list[FigureJob], workers: int = 2,
                   meanwhile: Callable[[], None] | None = None) -> list[Figure]:
    """Draw every job into folder/figures/<key>.png; return the Figure records in plan order.

    workers > 1 draws in forked processes (they inherit the jobs' arrays without copying); where
    'fork' is unavailable, or workers <= 1, it draws in this process. Slow jobs start first.
    `meanwhile` runs in this process while the workers draw (the report writes its activations
    file then: disk time that would otherwise add to the drawing time); it always runs once."""
    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i].cost, i))
    workers = max(1, min(workers, len(jobs)))
    out = Path(folder) / "figures"
    if jobs:
        out.mkdir(parents=True, exist_ok=True)
    if not jobs or workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        if meanwhile is not None:
            meanwhile()
        for i in order:
            render_one(out, jobs[i])
    else:
        global _JOBS
        _JOBS = jobs
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                drawing = pool.imap_unordered(_render_index, [(i, out) for i in order], chunksize=1)
                if meanwhile is not None:
                    meanwhile()
                for _ in drawing:
                    pass
        finally:
            _JOBS = []
    return [job.figure for job in jobs]


def default_workers() -> int:
    """Worker processes for render_figures: the CPUs, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))
