"""Compare two traces: two checkpoints (same tokenizer and shape) on one probe, or two probes on one
checkpoint. Per layer, the cosine distance of the residual streams; per head, the Jensen-Shannon
divergence of the attention rows; per position, the KL divergence of the next-token distributions;
and a side-by-side head view. A trace compared with itself gives exactly zero everywhere.

Positions are aligned by index. Different probes are compared over the first min(T_a, T_b)
positions only; because attention is causal, those rows and keys are exactly what each model
computed on its own first positions. The page says which positions hold different tokens.

Distances (all exactly 0 for identical inputs):
- residual: 1 - cos(a, b) computed as |a/|a| - b/|b||^2 / 2, per position;
- attention: JSD(p_a, p_b) in bits per query row, averaged over query positions 1..n-1;
- next token: KL(p_a || p_b) in bits (a is the first trace given).

What this module does not do: load a model or run a forward pass (it reads trace files only).
"""

from __future__ import annotations

from pathlib import Path

import torch

import visualizer.site.common as site
from visualizer.analysis.distributions import js_bits, kl_bits, log_probs
from visualizer.artefacts.attention_codec import encode_square
from visualizer.errors import VisualizerError
from visualizer.store.traces import StoredTrace
from visualizer.artefacts.folder import atomic_folder
from visualizer.artefacts.layout import COMPARE
from visualizer.artefacts.run_files import read_run_files
from visualizer.artefacts.trace import dumps

FORMAT = 1
HEAD_VIEW_POSITIONS = 256  # head views hold at most the first this many positions (the page says so)


class Side:
    """One trace's files, read once: trace.json, activations, and report_data.json if present."""

    def __init__(self, stored: StoredTrace):
        owner = f"trace {stored.name}"
        self.stored = stored
        files = read_run_files(stored.folder, owner, need_report_data=False, need_patterns=False)
        self.trace, self.tensors, self.report_data = files.trace, files.tensors, files.report_data

    def top1(self, n: int) -> list[str]:
        """Readable top next token at each of the first n positions."""
        if self.report_data:
            return [row[0]["readable"] if row else "–" for row in self.report_data["final"]["topk"][:n]]  # none: not finite logits
        return [f"#{int(i)}" for i in self.tensors["logits"][:n].argmax(-1).tolist()]

    def describe(self) -> dict:
        m = self.stored.manifest or {}
        card = self.trace.get("model", {})
        return {
            "ref": self.stored.name,
            "id": m.get("id"),
            "model": self.trace.get("model_name"),
            "checkpoint_sha256": card.get("checkpoint_sha256"),
            "iter_num": card.get("iter_num"),
            "card_rows": (self.trace.get("presentation") or {}).get("card_rows") or [],  # the page's card
            "probe": self.trace.get("probe"),
            "tokens": self.trace.get("tokens_readable"),
            "positions": len(self.trace.get("token_ids", [])),
            "created": m.get("created"),
        }


SHAPE_KEYS = ("n_layer", "n_head", "d_model")


def check_comparable(a: Side, b: Side) -> list[str]:
    """Refuse traces whose outputs do not share a vocabulary; return the shape keys that differ
    (then only the outputs are compared: layers and heads have no one-to-one correspondence)."""
    va, vb = a.trace["dims"]["vocab_size"], b.trace["dims"]["vocab_size"]
    if va != vb:
        raise VisualizerError(f"compare {a.stored.name} {b.stored.name}: vocab_size differs ({va} vs {vb}); "
                              "compare traces over one vocabulary")
    ta, tb = a.trace["model"].get("tokenizer"), b.trace["model"].get("tokenizer")
    if ta != tb:
        raise VisualizerError(f"compare {a.stored.name} {b.stored.name}: the tokenizers differ ({ta} vs {tb})")
    return [key for key in SHAPE_KEYS if a.trace["dims"][key] != b.trace["dims"][key]]


def cosine_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[n, d] x [n, d] -> [n]: 1 - cos, as half the squared distance of the unit vectors."""
    ux = x.double() / x.double().norm(dim=-1, keepdim=True).clamp_min(1e-300)
    uy = y.double() / y.double().norm(dim=-1, keepdim=True).clamp_min(1e-300)
    return (ux - uy).square().sum(-1) / 2


def _have(tensors: dict, names: list[str]) -> bool:
    return all(n in tensors for n in names)


def residual_distances(xa: dict, xb: dict, n_layer: int, n: int) -> list[dict] | None:
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layer)]
    if not (_have(xa, names) and _have(xb, names)):
        return None
    rows = []
    for i, name in enumerate(names):
        d = cosine_distance(xa[name][:n], xb[name][:n])  # [n]
        rows.append({"hook": name, "after_layer": i - 1 if i else None, "distance": d.tolist(),
                     "mean_distance": float(d.mean()), "mean_cosine": float(1 - d.mean())})
    return rows


def attention_divergence(xa: dict, xb: dict, n_layer: int, n: int) -> list[list[float]] | None:
    """[layer][head] mean JSD over query rows 1..n-1 (row 0 has one key: always 0)."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(n_layer)]
    if not (_have(xa, names) and _have(xb, names)):
        return None
    out = []
    for name in names:
        pa, pb = xa[name][:, :n, :n], xb[name][:, :n, :n]  # [H, n, n]
        jsd = js_bits(pa, pb)  # [H, n]
        out.append((jsd[:, 1:].mean(-1) if n > 1 else jsd[:, :1].mean(-1)).tolist())
    return out


def next_token_divergence(a: Side, b: Side, n: int) -> dict | None:
    if "logits" not in a.tensors or "logits" not in b.tensors:
        return None
    # KL(p_a || p_b) from the logits in float64 (stored activations may be float16-widened)
    kl = kl_bits(log_probs(a.tensors["logits"][:n].double()), log_probs(b.tensors["logits"][:n].double()))  # [n]
    ia, ib = a.tensors["logits"][:n].argmax(-1), b.tensors["logits"][:n].argmax(-1)
    return {"kl_bits": kl.tolist(), "mean_kl_bits": float(kl.mean()), "top1_a": a.top1(n), "top1_b": b.top1(n),
            "top1_agreement": float((ia == ib).double().mean())}


def compare(a: Side, b: Side) -> dict:
    """compare.json: every figure above, plus what was compared and why only that."""
    shapes = check_comparable(a, b)
    ids_a, ids_b = a.trace["token_ids"], b.trace["token_ids"]
    n = min(len(ids_a), len(ids_b))
    same = ids_a == ids_b
    differing = [i for i in range(n) if ids_a[i] != ids_b[i]]
    n_layer = a.trace["dims"]["n_layer"]
    notes = []
    if not same:
        notes.append(f"different probes: positions 0..{n - 1} compared (the shorter probe's length); "
                     "attention is causal, so these rows are exactly what each model computed there")
        notes.append(f"{len(differing)} of those {n} positions hold different tokens: there, the KL, residual and "
                     "attention numbers measure different inputs as much as different computations; only the "
                     "positions before the first differing token compare like with like")
    if shapes:
        notes.append("different shapes (" + ", ".join(f"{k} {a.trace['dims'][k]} vs {b.trace['dims'][k]}" for k in shapes)
                     + "): only the outputs are compared, position by position (next-token KL and top-1); residual "
                     "streams and attention heads have no one-to-one correspondence between the two models")
    result = {
        "format": FORMAT,
        "a": a.describe(),
        "b": b.describe(),
        "mode": "same probe" if same else "different probes",
        "positions": n,
        "differing_positions": differing,
        "residual": None if shapes else residual_distances(a.tensors, b.tensors, n_layer, n),
        "attention_jsd": None if shapes else attention_divergence(a.tensors, b.tensors, n_layer, n),
        "next_token": next_token_divergence(a, b, n),
    }
    for key, group in (("residual", "resid"), ("attention_jsd", "attn"), ("next_token", "logits")):
        if result[key] is None and not (shapes and key != "next_token"):
            notes.append(f"{key}: not compared (a trace does not hold the '{group}' tensors)")
    result["notes"] = notes
    return result


# ------------------------------------------------------------------------------------------ page


def write_site(out: Path, a: Side, b: Side, result: dict, protected: list[Path] = ()) -> None:
    """DIR/index.html, compare.json, assets/, and data/compare-layer-{l}.js (loaded when picked)."""
    n_layer, n_head = a.trace["dims"]["n_layer"], a.trace["dims"]["n_head"]
    m = min(result["positions"], HEAD_VIEW_POSITIONS)
    have_patterns = result["attention_jsd"] is not None
    with atomic_folder(out, "compare", protected) as tmp:
        (tmp / COMPARE).write_text(dumps(result, compact=True), encoding="utf-8")
        if have_patterns:
            (tmp / "data").mkdir()
            for layer in range(n_layer):
                name = f"blocks.{layer}.attn.hook_pattern"
                payload = {"a": encode_square(a.tensors[name], m), "b": encode_square(b.tensors[name], m)}
                (tmp / "data" / f"compare-layer-{layer}.js").write_text(
                    "window.__compareLayers = window.__compareLayers || {};\n"
                    f"window.__compareLayers[{layer}] = {site.json_for_script(payload)};\n", encoding="utf-8")
        view = {"layers": n_layer, "heads": n_head, "positions": m,
                "tokens_a": result["a"]["tokens"][:m], "tokens_b": result["b"]["tokens"][:m]} if have_patterns else None
        site.render_page(tmp, "compare.html", {"c": result, "view": view, "head_view_limit": HEAD_VIEW_POSITIONS})
