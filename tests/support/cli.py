"""Shared test helpers: run the CLI in-process, locate the shared fixtures."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from visualizer.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
NANOGPT_FIXTURE = SHARED / "fixtures" / "nanogpt-shakespeare-char"


# report flags for tests that are not about attribution, the store or the PNG figures
FAST = ("--no-store", "--quiet", "--ig-steps", "0", "--figures", "none")


def need_fixture(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only on the developers' machines)")
    return path


def run_cli(*argv: str) -> tuple[int, str, str]:
    """main(argv) in this process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse --help / --version / usage errors
            code = e.code if isinstance(e.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def artifacts_dir() -> Path:
    """Where page tests leave screenshots and timings to look at: $VISUALIZER_TEST_ARTIFACTS, else a
    folder in the system's temporary directory (never the repository)."""
    import os
    import tempfile

    folder = Path(os.environ.get("VISUALIZER_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "visualizer-test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
