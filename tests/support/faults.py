"""Fault-injection helpers: checksum listings of a folder, and the tool run as a separate process
(so it can be killed, or run twice at once)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tests.support.cli import REPO_ROOT


def checksums(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 (or '->target' for a symbolic link, '<dir>' for an empty folder) of
    everything below folder, but the top-level names in `skip` (what the tool was asked to write)."""
    folder = Path(folder)
    listing = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        rel_dir = base.relative_to(folder)
        if rel_dir.parts and rel_dir.parts[0] in skip:
            continue
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if rel.split("/")[0] in skip:
                continue
            listing[rel] = f"->{os.readlink(path)}" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
        if not filenames and not dirnames and rel_dir.parts:
            listing[rel_dir.as_posix() + "/"] = "<dir>"
    return listing


def run_tool(*args, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m visualizer ARGS` in a new process (the repository on PYTHONPATH)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT")}
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "visualizer", *map(str, args)], cwd=cwd or REPO_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def start_tool(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT")}
    full_env["PYTHONPATH"] = str(REPO_ROOT)
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "visualizer", *map(str, args)], cwd=cwd or REPO_ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error_line(stderr: str) -> str:
    """The single `error:` line of a failed run (asserts there is exactly one line, and no traceback)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]
