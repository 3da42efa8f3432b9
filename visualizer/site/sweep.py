"""The sweep page: per-step curves (probe loss, head entropy, previous-token and induction scores,
residual norms), a layer x head grid scrubbed through the steps, links to each step's traces.

Offline like the report (site/common.py environment and assets, the one palette); written with
artefacts/folder.py atomic_folder as a "sweep" folder: index.html, sweep.json, data/sweep.js,
assets/. Reports and comparisons are not rendered here: the page links to where `render ID` and
`compare A B` write them, and says so.

What this module does not do: compute statistics (sweep/driver.py) or read the store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import visualizer.figures.palette as palette
import visualizer.site.common as site
from visualizer.artefacts.folder import atomic_folder
from visualizer.artefacts.layout import SWEEP as SWEEP_JSON
from visualizer.artefacts.trace import dumps

SCRIPT = site.TEMPLATES / "sweep" / "sweep.js"
CURVES = (("loss", "probe loss (nats)"), ("entropy", "head entropy (bits), mean over heads"),
          ("prev_token", "previous-token score, mean over heads"), ("induction", "induction score, mean over heads"),
          ("resid_norm", "residual norm (mean L2 over positions)"))
WIDTH, HEIGHT, PAD = 520, 180, 36


def _mean(values) -> float | None:
    flat = [v for v in (values if isinstance(values, list) else [values]) if v is not None]
    return sum(flat) / len(flat) if flat else None


def series(summary: dict, metric: str) -> list[tuple[str, list[float | None]]]:
    """(label, value per step): one line for the loss, one per layer (mean over heads) otherwise,
    one per stream point for the residual norms."""
    means = [(s["stats"][metric] or {}).get("mean") for s in summary["steps"]]
    if metric == "loss":
        return [("mean", means)]
    width = max((len(m) for m in means if m), default=0)
    name = "after layer" if metric == "resid_norm" else "layer"
    lines = []
    for i in range(width):
        label = "embeddings" if metric == "resid_norm" and i == 0 else f"{name} {i - 1 if metric == 'resid_norm' else i}"
        lines.append((label, [_mean(m[i]) if m else None for m in means]))
    return lines


def curve(summary: dict, metric: str) -> dict:
    """An SVG chart's geometry: polylines in page pixels, axis ends, legend colours from the palette."""
    steps = [s["step"] for s in summary["steps"]]
    lines = series(summary, metric)
    values = [v for _, vs in lines for v in vs if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    x0, x1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1

    def xy(step, v):
        return (round(PAD + (step - x0) / (x1 - x0) * (WIDTH - 2 * PAD), 1),
                round(HEIGHT - PAD / 2 - (v - lo) / (hi - lo) * (HEIGHT - PAD), 1))

    drawn = []
    for i, (label, vs) in enumerate(lines):
        rgb = palette.colour("sequential", 0.35 + 0.65 * (i + 1) / len(lines), 0.0, 1.0)
        points = [xy(s, v) for s, v in zip(steps, vs) if v is not None]
        drawn.append({"label": label, "colour": palette.hex_of(rgb),
                      "points": " ".join(f"{x},{y}" for x, y in points), "dots": points})
    return {"lines": drawn, "lo": lo, "hi": hi, "x0": x0, "x1": x1, "width": WIDTH, "height": HEIGHT, "pad": PAD}


def page_model(summary: dict, store: str | None) -> dict:
    steps = summary["steps"]
    pairs = [(a, b) for a, b in zip(steps, steps[1:])]
    return {
        "summary": summary,
        "store": store,
        "curves": [{"metric": m, "title": t, **curve(summary, m)} for m, t in CURVES],
        "pairs": [{"a": a["step"], "b": b["step"],
                   "ids": [(x["id"], y["id"]) for x, y in zip(a["traces"], b["traces"]) if x["id"] and y["id"]][:1]}
                  for a, b in pairs],
    }


def grid_data(summary: dict) -> dict:
    """What the scrubbed grid reads: per metric, per step, the layer x head means."""
    return {"steps": [s["step"] for s in summary["steps"]],
            "metrics": {m: [(s["stats"][m] or {}).get("mean") for s in summary["steps"]]
                        for m in ("entropy", "prev_token", "induction")}}


def write_sweep_page(out: Path, summary: dict, store: str | None, protected: list[Path] = ()) -> Path:
    """out/index.html, sweep.json (every folded figure), data/sweep.js, assets/."""
    with atomic_folder(Path(out), "sweep", protected) as tmp:
        (tmp / SWEEP_JSON).write_text(dumps(summary, compact=True), encoding="utf-8")
        (tmp / "data").mkdir()
        (tmp / "data" / "sweep.js").write_text(f"window.__sweep = {site.json_for_script(grid_data(summary))};\n",
                                               encoding="utf-8")
        site.render_page(tmp, "sweep.html", page_model(summary, store))
        shutil.copyfile(SCRIPT, tmp / "assets" / "sweep.js")
    return Path(out) / "index.html"
