"""Read a text or JSON file, or fail with one line naming the file and the problem.

Torch-free on purpose: the trace store lists manifests with it, and `traces list` must start fast.
What this module does not do: write files (trace.py's `dumps` fixes the byte format).
"""

from __future__ import annotations

import json
from pathlib import Path

from visualizer.errors import VisualizerError


def read_text(path: Path, where: str) -> str:
    """UTF-8 text of `path`; a VisualizerError '<where>: <problem>' otherwise."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VisualizerError(f"{where}: not found") from None
    except UnicodeDecodeError as e:
        raise VisualizerError(f"{where}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise VisualizerError(f"{where}: cannot read: {e.strerror or e}") from None


def read_json(path: Path, owner: str = ""):
    """The parsed JSON at `path`; a VisualizerError '<owner>: <file name>: <problem>' otherwise."""
    where = f"{owner}: {Path(path).name}" if owner else str(path)
    try:
        return json.loads(read_text(path, where))
    except ValueError as e:
        raise VisualizerError(f"{where}: not valid JSON ({e})") from None
