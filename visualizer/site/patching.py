"""The "what if" page: `patching.json`'s record -> `index.html` (templates/patching.html).

Rendering needs only the record, never the model: `render_patching(folder, record)` writes the page
and its assets, and `render_patching_file(path)` re-renders a folder from its stored patching.json
(the `render` command re-renders a whole patch folder elsewhere: pipeline.render_patch). Rows and
head cells link to the layer and head views of the runs' reports in clean/ and corrupt/.
Heatmaps are HTML tables coloured with the palette's diverging scale (the same colours as the PNGs
and assets/palette.js), centred on 0 (the corrupt run) and reaching its ends at ±limit, limit =
max(1, the sweep's largest |value|), so 1 (the clean run) is the same red in every map that stays
within [-1, 1]. Everything shown is escaped by jinja2; the page runs no script of its own.

What this module does not do: compute anything (analysis/interventions/).
"""

from __future__ import annotations

import json
from pathlib import Path

import visualizer.site.common as site
from visualizer.artefacts import layout
from visualizer.errors import VisualizerError

LEGEND_POINTS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # multiples of the limit shown in a legend
SWEEP_ORDER = ("resid_pre", "attn_out", "mlp_out", "head_out", "head_out_by_pos", "pattern")  # as the page lists them


def limit_of(values) -> float:
    """max(1, largest |value|) over a nested list of numbers."""
    flat = list(flatten(values))
    return max([1.0] + [abs(v) for v in flat])


def flatten(values):
    for v in values:
        if isinstance(v, list):
            yield from flatten(v)
        else:
            yield v


def cell(value: float, limit: float) -> dict:
    text = f"{value:.2f}"
    return {"value": value, "text": "0.00" if text == "-0.00" else text, "style": site.cell_style(value, "diverging", limit)}


def legend(limit: float) -> list[dict]:
    return [{"label": f"{p * limit:+.2g}", "style": site.cell_style(p * limit, "diverging", limit)} for p in LEGEND_POINTS]


def position_labels(record: dict) -> list[dict]:
    """One column label per position: the clean token, and the corrupt one where they differ (no
    corrupt probe: the clean tokens alone)."""
    other = record["corrupt"] or record["clean"]
    clean, corrupt = record["clean"]["tokens_readable"], other["tokens_readable"]
    ids_c, ids_k = record["clean"]["ids"], other["ids"]
    return [{"pos": i, "clean": a, "corrupt": b, "differs": x != y} for i, (a, b, x, y) in enumerate(zip(clean, corrupt, ids_c, ids_k))]


def grid_view(name: str, sweep: dict) -> dict:
    """A sweep as rows of coloured cells: layer x position or layer x head; layer x head x position
    as one head x position grid per layer."""
    view = {"name": name, "axes": sweep["axes"], "hook": sweep["hook"], "text": sweep["text"],
            "skipped": sweep.get("skipped"), "runs": sweep.get("runs"), "forwards": sweep.get("forwards"),
            "verification": dict(sorted(sweep.get("verification", {}).items()))}
    if "values" not in sweep:
        return view
    limit = limit_of(sweep["values"])
    view["limit"], view["legend"] = limit, legend(limit)
    if len(sweep["axes"]) == 2:
        view["rows"] = [[cell(v, limit) for v in row] for row in sweep["values"]]
    else:
        view["layers"] = [[[cell(v, limit) for v in per_head] for per_head in layer] for layer in sweep["values"]]
    return view


def ablation_view(ablation: dict) -> dict:
    """The ablation rows sorted by |effect on the target logit| (largest first), coloured by effect."""
    rows = sorted(ablation["rows"], key=lambda r: (-abs(r["delta_target_logit"]), r["layer"], r["head"] if r["head"] is not None else -1,
                                                    r["kind"]))
    limit = max([1e-9] + [abs(r["delta_target_logit"]) for r in ablation["rows"] + ablation["knockouts"]])
    loss_limit = max([1e-9] + [abs(r["delta_loss"]) for r in ablation["rows"] + ablation["knockouts"] if r["delta_loss"] is not None])

    def styled(r: dict) -> dict:
        return {**r, "target_style": site.cell_style(r["delta_target_logit"], "diverging", limit),
                "loss_style": site.cell_style(r["delta_loss"], "diverging", loss_limit) if r["delta_loss"] is not None else ""}

    return {**ablation, "sorted_rows": [styled(r) for r in rows], "styled_knockouts": [styled(r) for r in ablation["knockouts"]]}


def badness(check: dict) -> float:
    """Error over tolerance; a non-finite error (written as a string in JSON) is the worst."""
    error = check["max_abs_error"]
    return error / check["tolerance"] if isinstance(error, (int, float)) and check["tolerance"] else float("inf")


def capture_rows(record: dict) -> list[dict]:
    """Per run, the worst identity of its capture (by error over tolerance) and how many were checked."""
    rows = []
    for run in (r for r in layout.PATCH_RUNS if record[r] is not None):
        checks = record[run]["verification"]
        name = max(checks, key=lambda n: badness(checks[n]))
        rows.append({"run": run, "name": name, "check": checks[name], "count": len(checks),
                     "passed": record[run]["verification_passed"]})
    return rows


def page_model(record: dict) -> dict:
    sweeps = record["sweeps"]
    return {
        "record": record,
        "metric": record["metric"],
        "positions": position_labels(record),
        "position_sweeps": [grid_view(n, sweeps[n]) for n in ("resid_pre", "attn_out", "mlp_out") if n in sweeps],
        "head_sweeps": [grid_view(n, sweeps[n]) for n in ("head_out", "pattern") if n in sweeps],
        "by_pos": grid_view("head_out_by_pos", sweeps["head_out_by_pos"]) if "head_out_by_pos" in sweeps else None,
        "all_sweeps": [grid_view(n, sweeps[n]) for n in SWEEP_ORDER if n in sweeps],
        "ablation": ablation_view(record["ablation"]),
        "captures": capture_rows(record),
    }


def render_patching(folder: Path, record: dict) -> None:
    """Write folder/index.html (the "what if" page) and its assets from the record alone (as read
    back from patching.json: the pipeline renders what it wrote, so a re-render gives the same bytes).
    The maps link to the layer and head views of the runs' reports already in the folder (clean/,
    corrupt/); a folder without them gets no links."""
    hrefs = {f"{run}_href": f"{run}/index.html" if (Path(folder) / run / "index.html").is_file() else None
             for run in layout.PATCH_RUNS}
    site.render_page(Path(folder), "patching.html", {**page_model(record), **hrefs})


def read_patching(path: Path) -> dict:
    """A stored patching.json's record, or one line saying why it is not one."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VisualizerError(f"{path}: not a readable patching record ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or record.get("kind") != "patch":
        raise VisualizerError(f"{path}: not a patching record (no \"kind\": \"patch\")")
    return record


def render_patching_file(folder: Path) -> None:
    """Re-render a patch folder's page in place from its stored patching.json."""
    render_patching(Path(folder), read_patching(Path(folder) / layout.PATCHING))
