"""Write a folder the tool owns, atomically: built in a temporary folder beside its target and
renamed into place, so a failed run never leaves half a folder and an earlier one survives it.
A target that exists is replaced only when it is empty or holds the marker of what we wrote.

What this module does not do: decide what goes in the folder (pipeline.py, site/).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from visualizer.artefacts.layout import REPORT_MARKER
from visualizer.errors import VisualizerError


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
