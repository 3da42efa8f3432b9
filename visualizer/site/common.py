"""Page model -> jinja2 -> files. The only module that knows HTML.

Every report is a self-contained folder (its own copy of the assets), written into a temporary
folder beside its target and renamed into place, so a failed run never leaves half a report and an
earlier report survives it. `visualizations/index.html` lists every report under that root with
relative links.

What this module does not do: compute anything from the model (analyze.py, capture.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import jinja2
import markupsafe

import visualizer.figures.palette as palette
from visualizer import __version__
from visualizer.errors import VisualizerError
from visualizer.model.tokenizer import readable

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = TEMPLATES / "static"
REPORT_MARKER = "trace.json"  # a folder holding this is a report we may replace


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
    env.filters["cell_style"] = cell_style
    return env


def cell_style(value: float | None, scale: str = "diverging", limit: float = 1.0) -> str:
    """Inline CSS (background and text colour) of a value on a palette scale: 'diverging' on
    -limit..+limit, 'sequential' on 0..limit. No value: no colour."""
    if value is None:
        return ""
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


def check_target(target: Path, marker: str = REPORT_MARKER) -> None:
    """Refuse to replace something that is not ours (a home folder given as --out, a file): an
    existing folder is replaced only when empty or holding `marker` (trace.json for reports)."""
    if target.exists():
        if not target.is_dir():
            raise VisualizerError(f"--out {target}: exists and is not a folder")
        if any(target.iterdir()) and not (target / marker).is_file():
            raise VisualizerError(f"--out {target}: folder is not empty and holds no earlier report; choose another")


@contextlib.contextmanager
def atomic_folder(target: Path, marker: str = REPORT_MARKER):
    """Yield a temporary folder beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    check_target(target, marker)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as e:
        raise VisualizerError(f"--out {target}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp/mkstemp make private files; a site is public
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rename(target, old / "report")
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
                    "training_step": (trace.get("presentation") or {}).get("training_step"),
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
