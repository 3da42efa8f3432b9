"""Render a report folder's page from its files alone: `trace.json`, `report_data.json`,
`activations.safetensors` (read lazily, one attention pattern at a time) and the figures already
drawn into `figures/`.

Writes `index.html` (header, model card, tokens, verification, table of contents, every section
with its figures, summary statistics, the final next-token table and the dot-product breakdown),
`assets/` (style.css, palette.js, heatmap.js, viz.js, fonts/) and `data/*.js` (the compact data the interactive views
draw from, each file loaded only when its section is opened: per layer its patterns, the model view's
tiles, the lens, the next tokens, the neighbours, the neuron pages, the choose view). The head-types
table is written into the page itself (it needs no script to read).

What the page says about the architecture comes from trace.json's `presentation` (what the model's
adapter declared: norm and MLP kinds, extra stream operations, the card's rows); colours come from
figures/palette.py. This module names no model family and reads no family's card keys.

What this module does not do: run or load the model, draw figures (plan.py), or hold HTML
(templates/ through site/common.py).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np
from safetensors import safe_open

from visualizer import __version__
from visualizer.artefacts import layout
from visualizer.artefacts.numbers import number
import visualizer.figures.palette as palette
import visualizer.site.common as site
import visualizer.site.viewdata as viewdata
from visualizer.errors import VisualizerError
from visualizer.site.viewdata import PROB_DIGITS, VALUE_DIGITS, rounded

FIGURE_FIELDS = ("key", "section", "file", "tensor", "shape", "scale", "title", "caption")

# Each section is a list of groups: (id, heading, tensors, one-sentence explanation). A figure goes
# to the group named by its optional `group` field, else to the group listing its tensor, else
# ("lens" / "neighbours" in its key) to that view's group, else to "more" at the section's end.
# Names a model does not capture drop their group; captured names no group lists are shown in an
# "Other tensors" group of their section. The model's extra stream operations (trace.json's
# `presentation.stream_notes`, declared by its adapter) add groups at their stage: 'embedding'
# before "sum", 'attention' after "qkv", 'final' first. {norm} in a text is the declared norm kind.
EMBEDDING_GROUPS = [
    ("embed", "Token embedding", ["hook_embed"],
     "Each probe token's row of the token-embedding matrix W_E: one d_model-wide vector per position."),
    ("pos_embed", "Position embedding", ["hook_pos_embed"],
     "The learned vector the model adds for each position."),
    ("ln_embed", "Normalised embedding", ["ln_embed.hook_normalized"],
     "The token embedding after the model's embedding norm{norm}."),
    ("sum", "The residual stream entering layer 0", ["blocks.0.hook_resid_pre"],
     "What the first layer reads and writes into: the embedding step's output."),
    ("neighbours", "Nearest vocabulary neighbours", [],
     "For each probe token, the vocabulary tokens whose embedding rows point the most the same way (cosine similarity)."),
]

LAYER_GROUPS = [
    ("resid_pre", "Residual stream entering the layer", ["blocks.{l}.hook_resid_pre"],
     "The running sum of everything written so far; every layer reads it and adds to it."),
    ("ln1", "ln_1 output", ["blocks.{l}.ln1.hook_normalized"],
     "The residual stream normalised by the layer's first norm{norm}: what attention reads."),
    ("qkv", "Queries, keys and values, every head", ["blocks.{l}.attn.hook_q", "blocks.{l}.attn.hook_k", "blocks.{l}.attn.hook_v"],
     "Each head projects every position into a query (what it looks for), a key (what it offers) and a value (what it passes on)."),
    ("attention", "Attention scores and pattern, every head", ["blocks.{l}.attn.hook_attn_scores", "blocks.{l}.attn.hook_pattern"],
     "Scores are query·key scaled, −∞ where a query may not look (later positions); the pattern is their softmax over each row: how much each position reads from each earlier one."),
    ("z", "z and attn_out", ["blocks.{l}.attn.hook_z", "blocks.{l}.hook_attn_out"],
     "z is each head's attention-weighted sum of values; attn_out is all heads' z projected back to d_model and added to the stream."),
    ("resid_mid", "Residual stream after attention", ["blocks.{l}.hook_resid_mid"],
     "resid_pre + attn_out: what the MLP half of the layer reads."),
    ("mlp", "MLP pre and post activations", ["blocks.{l}.ln2.hook_normalized", "blocks.{l}.mlp.hook_pre",
                                             "blocks.{l}.mlp.hook_pre_linear", "blocks.{l}.mlp.hook_post"],
     "{mlp}"),
    ("mlp_out", "mlp_out", ["blocks.{l}.hook_mlp_out"],
     "The neurons' activations multiplied by the MLP's second matrix: what the MLP adds to the stream."),
    ("resid_post", "Residual stream leaving the layer", ["blocks.{l}.hook_resid_post"],
     "resid_mid + mlp_out: the layer's output. Its L2 norm per position is drawn below."),
    ("lens", "Logit lens after this layer", [],
     "The final norm and unembedding applied to this layer's output, as if the model stopped here: its top-5 next tokens at every position."),
]

FINAL_GROUPS = [
    ("ln_final", "ln_final output", ["ln_final.hook_normalized"],
     "The residual stream normalised by the final norm{norm}: the vector each token's unembedding row is dotted with."),
    ("logits", "Next-token candidates at every position", ["logits"],
     "logits = ln_final(x) · W_U (then any cap the model applies); softmax turns them into the probability of each token coming next."),
    ("dla", "Dot-product breakdown of the top candidates", [], ""),
]
FINAL_WORDS = ("final", "logits", "unembed")  # top-level names holding one of these go to the final section
NOTE_PLACES = {"embedding": ("sum", 0), "attention": ("qkv", 1), "final": ("ln_final", 0)}  # (group, 0 before / 1 after)
MLP_TEXT = {
    None: "The second norm, then the MLP's first matrix gives the pre-activations and the nonlinearity turns them into the "
          "post-activations (its neurons); a gated MLP multiplies them by a second, linear projection (hook_pre_linear).",
    False: "The second norm, then the MLP's first matrix gives the pre-activations (hook_pre) and {act} turns them into the "
           "post-activations (hook_post, its neurons).",
    True: "The second norm, then the MLP's gate projection gives the pre-activations (hook_pre), its up projection a second, "
          "linear input (hook_pre_linear), and {act}(gate) · up the hidden activations (hook_post, its neurons) that the "
          "down projection reads.",
}

VIEW_KEYWORDS = (("lens", "lens"), ("neighbo", "neighbours"))


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VisualizerError(f"{path}: missing (a report folder needs it to render)") from None
    except ValueError as e:
        raise VisualizerError(f"{path}: not valid JSON ({e})") from None


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def check_figure(folder: Path, fig) -> dict:
    """A figure record as the template uses it; refuses missing fields and files outside the folder.
    `fig` is a dict or any object with the fields as attributes (plots.Figure)."""
    if not isinstance(fig, Mapping):
        fig = {f: getattr(fig, f) for f in (*FIGURE_FIELDS, "group") if hasattr(fig, f)}
    missing = [f for f in FIGURE_FIELDS if f not in fig]
    if missing:
        raise VisualizerError(f"figure {fig.get('key', '?')!r}: missing field(s) {', '.join(missing)}")
    rel = PurePosixPath(str(fig["file"]))
    if rel.is_absolute() or ".." in rel.parts:
        raise VisualizerError(f"figure {fig['key']!r}: file {fig['file']!r} must be a relative path inside the report")
    path = folder / rel
    if not path.is_file():
        raise VisualizerError(f"figure {fig['key']!r}: {path} does not exist")
    size = png_size(path)
    shape = fig["shape"]
    return {
        **{f: fig[f] for f in FIGURE_FIELDS},
        "group": fig.get("group"),
        "file": rel.as_posix(),
        "shape_text": "[" + ", ".join(str(s) for s in shape) + "]" if isinstance(shape, (list, tuple)) else str(shape),
        "width": size[0] if size else None,
        "height": size[1] if size else None,
    }


def place_figures(figures: list[dict], groups: list[dict]) -> list[dict]:
    """Put each figure into a group of its section (see the comment on EMBEDDING_GROUPS);
    returns the figures no group took."""
    by_id = {g["id"]: g for g in groups}
    by_tensor = {t: g for g in groups for t in g["tensors"]}
    more = []
    for fig in figures:
        group = by_id.get(fig["group"]) or by_tensor.get(fig["tensor"])
        if group is None:
            group = next((by_id[g] for word, g in VIEW_KEYWORDS if word in str(fig["key"]).lower() and g in by_id), None)
        if group is None:
            more.append(fig)
        else:
            group["figures"].append(fig)
    return more


def with_notes(spec: list, notes: list[dict], stage: str) -> list:
    """A section's group spec with the declared stream notes of `stage` placed in it (NOTE_PLACES)."""
    anchor, after = NOTE_PLACES[stage]
    extra = [(f"note-{i}", n["heading"], list(n["tensors"]), n["text"])
             for i, n in enumerate(notes) if n["stage"] == stage]
    at = next(i for i, g in enumerate(spec) if g[0] == anchor) + after
    return spec[:at] + extra + spec[at:]


def group_texts(declared: dict) -> dict:
    """What {norm} and {mlp} stand for in the group texts, from the adapter's declarations."""
    mlp = declared.get("mlp") or {}
    gated = mlp.get("gated") if mlp else None
    return {"norm": f" ({declared['norm']})" if declared.get("norm") else "",
            "mlp": MLP_TEXT[gated].format(act=mlp.get("activation") or "the nonlinearity")}


def section_groups(spec, stats: dict, figures: list[dict], always: set[str], others: list[str], texts: dict, **fmt) -> dict:
    """Groups of one section with their figures and statistics rows; empty groups dropped.
    `others`: captured names of this section no group lists (shown in an "Other tensors" group);
    `texts`: what {norm} and {mlp} in a group's text stand for (group_texts)."""
    groups = []
    for gid, heading, tensors, text in spec:
        names = [t.format(**fmt) for t in tensors]
        groups.append(
            {"id": gid, "heading": heading, "text": text.format(**texts), "tensors": names, "figures": [],
             "stats": [(n, stats[n]) for n in names if n in stats]}
        )
    listed = {n for g in groups for n in g["tensors"]}
    extra = [n for n in others if n not in listed]
    if extra:
        groups.append({"id": "other", "heading": "Other tensors", "figures": [], "tensors": extra,
                       "text": "Captured for this model; named as in activations.safetensors.",
                       "stats": [(n, stats[n]) for n in extra]})
    more = place_figures(figures, groups)
    kept = [g for g in groups if g["figures"] or g["stats"] or g["id"] in always]
    return {"groups": kept, "more": more}


def token_chips(trace: dict) -> list[dict]:
    return [
        {"pos": i, "id": tid, "readable": r, "raw": repr(t)}
        for i, (tid, r, t) in enumerate(zip(trace["token_ids"], trace["tokens_readable"], trace["tokens"]))
    ]


# --- colours for inline tables (palette.py; assets/palette.js gives the canvases the same) ----

def diverging(value: float, vmax: float) -> str:
    """Blue (negative) - white (0) - red (positive) on -vmax..vmax, as a hex colour."""
    return palette.hex_of(palette.diverging(value, vmax))


def sequential(p: float) -> str:
    """White (0) to dark blue (1), for probabilities, as a hex colour."""
    return palette.hex_of(palette.sequential(p))


def ink(background: str) -> str:
    """Text colour readable on a hex background."""
    return palette.hex_of(palette.ink_for(palette.rgb_of(background)))


# --- the dot-product breakdown -----------------------------------------------------------------

def dla_view(dla: dict, n_layer: int, n_head: int) -> dict:
    """The breakdown of each candidate laid out for tables: dimensions with bars, components as a
    layer x (heads, bias, MLP) grid coloured on one diverging scale per candidate."""
    candidates = []
    for cand in dla["candidates"]:
        comps = {c["name"]: c["value"] for c in cand["by_component"]}
        vmax = max([abs(v) for v in comps.values()] + [abs(cand["constant"]), 1e-12])
        has_bias = any(n.endswith(".attn_bias") for n in comps)
        rows = []
        for layer in range(n_layer):
            names = [f"L{layer}.H{h}" for h in range(n_head)] + ([f"L{layer}.attn_bias"] if has_bias else []) + [f"L{layer}.mlp"]
            rows.append({"layer": layer, "cells": [cell(n, comps.get(n), vmax) for n in names]})
        top = [cell(n, comps[n], vmax) for n in ("embed", "pos_embed") if n in comps]
        known = {c["name"] for r in rows for c in r["cells"]} | {c["name"] for c in top}
        others = [cell(n, v, vmax) for n, v in comps.items() if n not in known]
        dmax = max([abs(d["product"]) for d in cand["by_dimension"]] + [1e-12])
        dims = [
            {**d, "width": round(100 * abs(d["product"]) / dmax, 1), "sign": "pos" if d["product"] >= 0 else "neg"}
            for d in cand["by_dimension"]
        ]
        listed = sum(d["product"] for d in cand["by_dimension"])
        candidates.append(
            {**cand, "rows": rows, "top": top, "others": others, "vmax": vmax, "dims": dims,
             "listed_sum": listed, "unlisted_sum": cand["dimension_sum"] - listed,
             "constant_cell": cell("constant", cand["constant"], vmax), "has_bias": has_bias,
             "ok": cand["error"] <= 1e-4}
        )
    return {"position": dla["position"], "candidates": candidates,
            "columns": [f"H{h}" for h in range(n_head)]}


def cell(name: str, value: float | None, vmax: float) -> dict:
    if value is None:
        return {"name": name, "value": None, "bg": "#fff", "fg": "#1d1f23"}
    bg = diverging(value, vmax)
    return {"name": name, "value": value, "bg": bg, "fg": ink(bg)}


# --- head types ------------------------------------------------------------------------------------

# (kind, sequence, column label, what it is): the head-types table's score columns, left to right
HEAD_TYPE_COLUMNS = [
    ("previous", "probe", "previous", "previous-token score on the probe"),
    ("first", "probe", "first/BOS", "first/BOS score on the probe"),
    ("self", "probe", "self", "self score on the probe"),
    ("offset", "probe", "offset", "best fixed-offset score (k = 2 and up) on the probe"),
    ("duplicate", "probe", "duplicate (probe)", "duplicate-token score on the probe"),
    ("duplicate", "repeated", "duplicate (repeated)", "duplicate-token score on the repeated random sequence"),
    ("induction", "probe", "induction (probe)", "induction score on the probe"),
    ("induction", "repeated", "induction (repeated)", "induction score on the repeated random sequence"),
]


def head_types_view(record: dict | None) -> dict | None:
    """report_data.json's `head_types` laid out as the table's rows (None: a report written before it)."""
    if not record:
        return None
    rows = []
    for head in record["heads"]:
        layer, h = head["layer"], head["head"]
        typed = {(t["kind"], t["on"]) for t in head["types"]}
        cells = []
        for kind, on, _, _ in HEAD_TYPE_COLUMNS:
            table = record.get(on)
            value = table[kind]["score"][layer][h] if table else None
            k = table[kind]["k"][layer][h] if table and kind == "offset" else None
            cells.append({"value": value, "k": k, "judged": (kind, on) in typed})
        rows.append({"layer": layer, "head": h, "order": layer * 10_000 + h, "types": [t["name"] for t in head["types"]],
                     "cells": cells})
    return {"rows": rows, "columns": [{"label": label, "title": title} for _, _, label, title in HEAD_TYPE_COLUMNS],
            "sequence": record["repeated_sequence"], "min_score": record["min_score"], "lift": record["lift"],
            "max_offset": record["max_offset"], "notes": record.get("notes") or []}


# --- data files ----------------------------------------------------------------------------------

def vocab_of(records) -> dict[str, str]:
    return {str(r["id"]): r["readable"] for r in records}


def flat_records(table: list[list[dict]], field: str, digits: int | None) -> list:
    values = [r[field] for row in table for r in row]
    return values if digits is None else rounded(values, digits)


def lens_record(entry: dict, vocab: dict[str, str]) -> dict:
    """One lens entry of report_data.json, compact; adds its tokens to `vocab`."""
    table = entry["topk"]
    vocab.update(vocab_of(r for row in table for r in row))
    return {"hook": entry["hook"], "k": len(table[0]) if table else 0,
            "ids": flat_records(table, "id", None), "probs": flat_records(table, "prob", PROB_DIGITS),
            "entropy": rounded(entry["entropy_bits"], VALUE_DIGITS), "kl": rounded(entry["kl_to_final"], VALUE_DIGITS)}


def lens_data(report_data: dict) -> dict:
    """The lens after each layer and (reports since the embed row) of the residual entering block 0."""
    vocab: dict[str, str] = {}
    out = {"layers": [{"layer": e["layer"], **lens_record(e, vocab)} for e in report_data["logit_lens"]], "vocab": vocab}
    if report_data.get("logit_lens_embed"):
        out["embed"] = lens_record(report_data["logit_lens_embed"], vocab)
    return out


def final_data(report_data: dict) -> dict:
    table = report_data["final"]["topk"]
    return {
        "k": len(table[0]) if table else 0,
        "ids": flat_records(table, "id", None),
        "probs": flat_records(table, "prob", PROB_DIGITS),
        "logits": flat_records(table, "logit", VALUE_DIGITS),
        "entropy": rounded(report_data["final"]["entropy_bits"], VALUE_DIGITS),
        "vocab": vocab_of(r for row in table for r in row),
    }


def neighbour_data(report_data: dict) -> dict:
    table = report_data["neighbours"]
    return {
        "k": len(table[0]) if table else 0,
        "ids": flat_records(table, "id", None),
        "cosine": flat_records(table, "cosine", VALUE_DIGITS),
        "vocab": vocab_of(r for row in table for r in row),
    }


def layer_data(layer: int, pattern: np.ndarray, report_data: dict) -> dict:
    """One layer's file: its attention patterns (compact), top neurons and residual norms."""
    neurons = report_data["neurons"][str(layer)]
    norms = report_data["resid_norms"]
    return {
        "layer": layer,
        "attention": viewdata.encode_pattern(pattern),
        "neurons": {"k": len(neurons[0]) if neurons else 0, "ids": flat_records(neurons, "neuron", None),
                    "values": flat_records(neurons, "value", VALUE_DIGITS)},
        "norms": {hook: rounded(norms[f"blocks.{layer}.{hook}"], VALUE_DIGITS)
                  for hook in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")
                  if f"blocks.{layer}.{hook}" in norms},
    }


def neuron_data(record: dict, posts) -> dict:
    """The neuron pages' file: per layer its top neurons (report_data.json's `neuron_pages`) with
    their activation at every position (int8 codes, viewdata.signed_codes) from `posts(layer)`,
    the layer's hook_post [T, d_mlp]."""
    vocab: dict[str, str] = {}
    layers = []
    for entry in record["layers"]:
        post = posts(entry["layer"])
        neurons = []
        for n in entry["neurons"]:
            scale, codes = viewdata.signed_codes(post[:, n["neuron"]])
            vocab.update(vocab_of(n["promoted"] + n["suppressed"]))
            neurons.append({
                "id": n["neuron"], "max": rounded([n["max"]], VALUE_DIGITS)[0], "at": n["position"],
                "firing": rounded([n["firing_fraction"]], VALUE_DIGITS)[0], "scale": scale, "acts": codes,
                "up": [[r["id"], rounded([r["effect"]], VALUE_DIGITS)[0]] for r in n["promoted"]],
                "down": [[r["id"], rounded([r["effect"]], VALUE_DIGITS)[0]] for r in n["suppressed"]],
            })
        layers.append({"layer": entry["layer"], "hook": entry["hook"], "neurons": neurons})
    return {"layers": layers, "vocab": vocab}


def choices_data(report_data: dict) -> dict:
    """The choose view's file: report_data.json's `choices` (compact already) with readable tokens."""
    record = report_data["choices"]
    known = vocab_of(r for row in report_data["final"]["topk"] for r in row)
    if record.get("target"):
        known[str(record["target"]["id"])] = record["target"]["readable"]
    breakdown, at = record["breakdown"], record["attribution"]
    return {
        **{key: record[key] for key in ("candidates", "ids", "components", "rollout", "target")},
        "breakdown": {**breakdown, "raw": [rounded(r, PROB_DIGITS) for r in breakdown["raw"]],
                      "max_error": number(breakdown["max_error"])},  # numbers, never the files' "nan" strings
        "attribution": {**at, "scales": [[number(v) for v in row] for row in at["scales"]], "flops": number(at["flops"]),
                        "budget": number(at["budget"])},
        "vocab": {str(i): known.get(str(i), f"#{i}") for row in record["ids"] for i in row},
    }


def choices_view(record: dict | None, T: int) -> dict | None:
    """What the page says about the choices' budget (None: a report written before them)."""
    if not record:
        return None
    at = record["attribution"]
    positions = at["positions"]
    return {"candidates": record["candidates"], "covered": len(positions), "first": positions[0] if positions else None,
            "all": len(positions) == T, "tflop": number(at["flops"]) / 1e12, "budget_tflop": number(at["budget"]) / 1e12,
            "input": at["input"], "target": record.get("target"), "max_error": number(record["breakdown"]["max_error"])}


def write_data_files(folder: Path, trace: dict, report_data: dict) -> dict:
    """data/*.js; returns what the page needs to know about them (paths, attention encoding)."""
    data = folder / "data"
    data.mkdir(exist_ok=True)
    n_layer = trace["dims"]["n_layer"]
    thumbs, encoding = [], None
    path = folder / layout.ACTIVATIONS
    if not path.is_file():
        raise VisualizerError(f"{path}: missing (a report folder needs it to render)")
    with safe_open(str(path), framework="numpy") as f:
        for layer in range(n_layer):
            name = f"blocks.{layer}.attn.hook_pattern"
            if name not in f.keys():
                raise VisualizerError(f"{path}: has no tensor '{name}'")
            pattern = f.get_tensor(name).astype(np.float32)  # [head, query_pos, key_pos]
            entry = layer_data(layer, pattern, report_data)
            encoding = {k: v for k, v in entry["attention"].items() if k != "heads"}
            (data / f"layer-{layer}.js").write_text(viewdata.data_script("__vizLayers", layer, entry), encoding="utf-8")
            thumbs.append([viewdata.thumbnail(pattern[h]) for h in range(pattern.shape[0])])
        posts = [f"blocks.{l}.mlp.hook_post" for l in range(n_layer)]
        if report_data.get("neuron_pages") and set(posts) <= set(f.keys()):  # reports since the neuron pages
            neurons = neuron_data(report_data["neuron_pages"], lambda l: f.get_tensor(f"blocks.{l}.mlp.hook_post"))
            (data / "neurons.js").write_text(viewdata.data_script("__vizData", "neurons", neurons), encoding="utf-8")
    size = thumbs[0][0][0] if thumbs else 0
    files = {
        "thumbs": {"size": size, "layers": [[b for _, b in layer] for layer in thumbs]},
        "lens": lens_data(report_data),
        "final": final_data(report_data),
        "embeddings": neighbour_data(report_data),
    }
    if report_data.get("choices"):  # reports since the choose view
        files["choices"] = choices_data(report_data)
    for key, obj in files.items():
        (data / f"{key}.js").write_text(viewdata.data_script("__vizData", key, obj), encoding="utf-8")
    return {"encoding": encoding, "thumb_size": size}


# --- the page ------------------------------------------------------------------------------------

def encoding_text(encoding: dict | None, T: int) -> str:
    if not encoding:
        return ""
    if encoding["encoding"] == "uint8":
        return (f"Attention patterns are stored as 8-bit integers in 1/255 steps (each weight within 1/510 of the "
                f"model's value), {'the causal triangle only' if encoding['triangle'] else 'every entry'}.")
    return (f"This input has {T} positions, more than {viewdata.DENSE_MAX_T}: each attention row stores only its "
            f"{encoding['k']} largest weights (8-bit, 1/255 steps) plus the mass of all the other keys (\"rest\"). "
            f"The PNG figures show every entry.")


def card_rows(trace: dict) -> list[list[str]]:
    """The model card: the rows the adapter declared; for traces written before adapters declared
    them, every scalar of the card and the dims, flattened (`a.b` for nested entries)."""
    declared = (trace.get("presentation") or {}).get("card_rows")
    if declared:
        return declared
    rows = []

    def walk(prefix: str, obj) -> None:
        for key, value in obj.items():
            if isinstance(value, Mapping):
                walk(f"{prefix}{key}.", value)
            elif isinstance(value, (str, int, float, bool)) or value is None:
                rows.append([f"{prefix}{key}", site.format_number(value)])

    walk("", trace.get("model") or {})
    walk("", trace.get("dims") or {})
    return rows


def page_model(folder: Path, trace: dict, report_data: dict, figures: list[dict], files: dict) -> dict:
    dims, stats = trace["dims"], trace["tensors"]
    declared = trace.get("presentation") or {}
    notes, texts = declared.get("stream_notes") or [], group_texts(declared)
    n_layer, n_head = dims["n_layer"], dims["n_head"]
    checked = [check_figure(folder, f) for f in figures]
    known = {"embeddings", "final", *(f"layer.{l}" for l in range(n_layer))}
    by_section: dict[str, list[dict]] = {}
    for fig in checked:
        by_section.setdefault(fig["section"] if fig["section"] in known else "other", []).append(fig)
    top = sorted(n for n in stats if not n.startswith("blocks."))
    final_names = [n for n in top if any(word in n for word in FINAL_WORDS)]
    embeddings = section_groups(with_notes(EMBEDDING_GROUPS, notes, "embedding"), stats, by_section.get("embeddings", []),
                                {"neighbours"}, [n for n in top if n not in final_names], texts)
    layers = [
        {"index": l, "data": f"data/layer-{l}.js",
         **section_groups(with_notes(LAYER_GROUPS, notes, "attention"), stats, by_section.get(f"layer.{l}", []),
                          {"attention", "mlp", "resid_post", "lens"}, sorted(n for n in stats if n.startswith(f"blocks.{l}.")),
                          texts, l=l)}
        for l in range(n_layer)
    ]
    final = section_groups(with_notes(FINAL_GROUPS, notes, "final"), stats, by_section.get("final", []), {"logits", "dla"},
                           final_names, texts)
    T = report_data["positions"]
    last = report_data["final"]["topk"][-1]
    page = {
        "T": T, "n_layer": n_layer, "n_head": n_head, "thumb_size": files["thumb_size"],
        "tokens": trace["tokens_readable"], "ids": trace["token_ids"],
        "encoding": files["encoding"], "dense_max_t": viewdata.DENSE_MAX_T,
    }
    return {
        "trace": trace,
        "tokens": token_chips(trace),
        "embeddings": embeddings,
        "layers": layers,
        "final": final,
        "other_figures": by_section.get("other", []),
        "last_topk": [{**r, "bg": sequential(r["prob"]), "fg": ink(sequential(r["prob"]))} for r in last],
        "card_rows": card_rows(trace),
        "norm": declared.get("norm"),
        "final_notes": [n for n in notes if n["stage"] == "final"],
        "last_entropy": report_data["final"]["entropy_bits"][-1],
        "dla": dla_view(report_data["dla"], n_layer, n_head),
        "head_types": head_types_view(report_data.get("head_types")),
        "neuron_pages": report_data.get("neuron_pages"),
        "choices": choices_view(report_data.get("choices"), T),
        "encoding_text": encoding_text(files["encoding"], T),
        "page_json": page,
        "n_figures": len(checked),
    }


OPTIONAL_FILES = ("analysis", "attribution")  # analysis.json, attribution.json: written by runs since issue 6


def optional_files(folder: Path) -> dict:
    """name -> the folder's <name>.json, or None when the run did not write it (the page omits it)."""
    return {name: read_json(folder / f"{name}.json") if (folder / f"{name}.json").is_file() else None
            for name in OPTIONAL_FILES}


def render_folder(folder: Path, figures: list, index_href: str | None = None, figures_note: str | None = None) -> None:
    """Write index.html, assets/ and data/*.js into `folder` from its trace.json,
    report_data.json and activations.safetensors; `figures` (already drawn into folder) are
    placed in their sections; `index_href`: the link to the site index above it (none: no link,
    see site.site_index_href); `figures_note`: what the page says of figures left out, if any.
    Same files in, same bytes out."""
    folder = Path(folder)
    trace = read_json(folder / layout.TRACE)
    report_data = read_json(folder / layout.REPORT_DATA)
    files = write_data_files(folder, trace, report_data)
    model = page_model(folder, trace, report_data, list(figures), files)
    model.update(optional_files(folder))
    model["index_href"] = index_href
    model["figures_note"] = figures_note
    html = site.environment().get_template("report.html").render(**model, version=__version__)
    (folder / "index.html").write_text(html, encoding="utf-8")
    site.copy_assets(folder)
    (folder / ".nojekyll").write_text("", encoding="utf-8")
