"""Page model -> jinja2 -> files. The only module that knows HTML.

Every report is a self-contained folder (its own copy of the assets); artefacts/folder.py writes it
atomically. `visualizations/index.html` lists every report under that root with relative links.

What this module does not do: compute anything from the model (analyze.py, capture.py).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from urllib.parse import quote
from pathlib import Path

import jinja2
import markupsafe

import visualizer.figures.palette as palette
from visualizer import __version__
from visualizer.artefacts import layout
from visualizer.artefacts.folder import legacy_site_index, site_record
from visualizer.artefacts.layout import REPORT_MARKER
from visualizer.artefacts.numbers import stored
from visualizer.model.tokenizer import readable

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = TEMPLATES / "static"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one jinja2 environment (templates compiled once per process)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["readable"] = readable
    env.filters["plain"] = plain_text
    env.filters["num"] = format_number
    # numbers as the run's JSON files store them: "nan", "inf", "-inf" format as those floats do
    env.filters["pct"] = lambda p: f"{100 * stored(p):.2f}%"
    env.filters["format"] = lambda fmt, *args: fmt % tuple(stored(a) for a in args)
    env.filters["abs"] = lambda x: abs(stored(x))
    env.filters["tojson_safe"] = lambda obj: markupsafe.Markup(json_for_script(obj))  # for <script type="application/json">
    env.filters["cell_style"] = cell_style
    return env


def plain_text(text: str) -> str:
    """Text for a page's <title>: runs of whitespace as one space, other control characters dropped
    (no visible-space symbols: a title is read, not inspected)."""
    text = "".join(ch for ch in str(text) if ch.isspace() or ch.isprintable())
    return " ".join(text.split())


def cell_style(value: float | None, scale: str = "diverging", limit: float = 1.0) -> str:
    """Inline CSS (background and text colour) of a value on a palette scale: 'diverging' on
    -limit..+limit, 'sequential' on 0..limit. No value: no colour."""
    if value is None:
        return ""
    value, limit = stored(value), stored(limit)
    limit = limit if limit > 0 else 1.0
    background = palette.colour(scale, value, -limit if scale == "diverging" else 0.0, limit)
    return f"background: {palette.hex_of(background)}; color: {palette.hex_of(palette.ink_for(background))}"


def format_number(x, digits: int = 4) -> str:
    if isinstance(x, str):
        return x
    if x is None:
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def json_for_script(obj) -> str:
    """JSON that is safe inside <script>: no '</' can end the element, no '<!--' can open a comment."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace(
        "\u2028", "\\u2028"
    ).replace("\u2029", "\\u2029")


def copy_assets(folder: Path) -> None:
    shutil.copytree(STATIC, folder / "assets", dirs_exist_ok=True)


def render_page(folder: Path, template: str, page: dict) -> None:
    """Write folder/index.html from `template` and the page model, with the assets beside it."""
    html = environment().get_template(template).render(**page, version=__version__)
    (folder / "index.html").write_text(html, encoding="utf-8")
    copy_assets(folder)
    (folder / ".nojekyll").write_text("", encoding="utf-8")


def report_href(root: Path, folder: Path) -> str:
    """A relative link to folder/index.html: every path segment percent-encoded (a folder named
    'javascript:...' stays a path, never a scheme: ':' is encoded too)."""
    parts = folder.relative_to(root).parts
    return "/".join(quote(part, safe="") for part in parts) + "/index.html"


def is_site_root(folder: Path) -> bool:
    """Whether `folder` holds a site index the tool wrote: listed in its site owner file, or (sites
    written before that file) an index.html by visualizer in a folder that is no report, generation
    or comparison itself."""
    if "index.html" in site_record(folder):
        return True
    if any((folder / marker).exists() for marker in layout.KIND_MARKERS.values()):
        return False
    return (folder / "index.html").is_file() and legacy_site_index(folder / "index.html")


def site_index_href(folder: Path, site_root: Path | None = None) -> str | None:
    """The relative link from a report folder to the index of the site it sits under, or None.

    `site_root`: the root whose index the caller writes with this report (it may not exist yet);
    without one, the nearest ancestor of `folder` that already holds a site index. A report written
    anywhere else gets no link (it would point at a file that does not exist)."""
    folder = Path(os.path.abspath(folder))
    roots = [Path(os.path.abspath(site_root))] if site_root is not None else [p for p in folder.parents if is_site_root(p)][:1]
    if not roots or roots[0] not in folder.parents:
        return None
    return Path(os.path.relpath(roots[0] / "index.html", folder)).as_posix()


def report_row(root: Path, trace_path: Path) -> dict:
    """One row of the site index from a report's trace.json; ValueError when it is not one."""
    trace = json.loads(trace_path.read_text(encoding="utf-8"))
    if not isinstance(trace, dict):
        raise ValueError("not a JSON object")
    shown = trace.get("presentation") if isinstance(trace.get("presentation"), dict) else {}
    ids = trace.get("token_ids")
    step = shown.get("training_step")
    return {
        "href": report_href(root, trace_path.parent),
        "model": str(trace.get("model_name", "?")),
        "probe": str(trace.get("probe", "")),
        "n_tokens": len(ids) if isinstance(ids, list) else 0,
        "training_step": step if isinstance(step, (int, float)) and not isinstance(step, bool) else None,
        "passed": trace.get("verification_passed") is True,
    }


def list_reports(root: Path) -> tuple[list[dict], list[str]]:
    """Every report folder below `root` (found by its trace.json), sorted by path, and the
    trace.json files skipped as damaged (named, so the caller can say so)."""
    reports, skipped = [], []
    for trace_path in sorted(root.rglob(REPORT_MARKER)):
        folder = trace_path.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # temporary folders of runs in progress
        try:
            reports.append(report_row(root, trace_path))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            skipped.append(f"{trace_path}: {type(e).__name__}: {str(e)[:120]}")
    return reports, skipped


def asset_files() -> dict[str, bytes]:
    """assets/<name> -> bytes of every static asset (stylesheets, scripts, licences)."""
    return {f"assets/{p.relative_to(STATIC).as_posix()}": p.read_bytes() for p in sorted(STATIC.rglob("*")) if p.is_file()}


def site_index_names() -> list[str]:
    """The files a site root holds besides the reports (what site_index_files writes)."""
    return ["index.html", ".nojekyll", *asset_files()]


def site_index_files(root: Path) -> tuple[dict[str, bytes], list[str]]:
    """visualizations/index.html (one row per report under root, relative links), its assets and
    .nojekyll, as relative path -> bytes; and the damaged reports skipped."""
    reports, skipped = list_reports(root) if root.is_dir() else ([], [])
    html = environment().get_template("site_index.html").render(reports=reports, version=__version__)
    return {"index.html": html.encode("utf-8"), ".nojekyll": b"", **asset_files()}, skipped
