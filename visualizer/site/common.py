"""Page model -> jinja2 -> files. The only module that knows HTML.

Every report is a self-contained folder (its own copy of the assets); artefacts/folder.py writes it
atomically. `visualizations/index.html` lists every report under that root with relative links.

What this module does not do: compute anything from the model (analyze.py, capture.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jinja2
import markupsafe

from visualizer import __version__
from visualizer.artefacts.folder import write_text_atomically
from visualizer.artefacts.layout import REPORT_MARKER
from visualizer.model.tokenizer import readable

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = TEMPLATES / "static"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["readable"] = readable
    env.filters["num"] = format_number
    env.filters["pct"] = lambda p: f"{100 * p:.2f}%"
    env.filters["tojson_safe"] = lambda obj: markupsafe.Markup(json_for_script(obj))  # for <script type="application/json">
    return env


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


def list_reports(root: Path) -> list[dict]:
    """Every report folder below `root` (found by its trace.json), sorted by path."""
    reports = []
    for trace_path in sorted(root.rglob(REPORT_MARKER)):
        folder = trace_path.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # temporary folders of runs in progress
        try:
            trace = json.loads(trace_path.read_text(encoding="utf-8"))
            reports.append(
                {
                    "href": folder.relative_to(root).as_posix() + "/index.html",
                    "model": trace.get("model_name", "?"),
                    "probe": trace.get("probe", ""),
                    "n_tokens": len(trace.get("token_ids", [])),
                    "iter_num": (trace.get("model") or {}).get("iter_num"),
                    "passed": trace.get("verification_passed", False),
                }
            )
        except (OSError, ValueError, AttributeError):
            continue  # a damaged report does not break the listing
    return reports


def write_site_index(root: Path) -> Path:
    """visualizations/index.html: one row per report under root, relative links."""
    root.mkdir(parents=True, exist_ok=True)
    html = environment().get_template("site_index.html").render(reports=list_reports(root), version=__version__)
    copy_assets(root)
    write_text_atomically(root / "index.html", html)
    if not (root / ".nojekyll").exists():
        (root / ".nojekyll").write_text("", encoding="utf-8")
    return root / "index.html"
