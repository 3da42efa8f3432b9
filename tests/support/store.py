"""Shared setup for the store, compare and attribution tests: tiny checkpoints and stored runs made
through the real command line (in-process, so the suite stays fast)."""

from __future__ import annotations

from pathlib import Path

import visualizer.cli as cli

from tests.support.nanogpt import make_checkpoint

PROBE = "But soft, what light"


def checkpoint(folder: Path, seed: int = 0, **shape) -> Path:
    shape = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64, **shape}
    ckpt, _meta = make_checkpoint(folder, seed=seed, **shape)
    return ckpt


def run(ckpt: Path, out: Path, store: Path, *extra: str, probe: str = PROBE) -> int:
    """The plain report run with the trace store at `store`; returns the exit code."""
    return cli.main(["--checkpoint", str(ckpt), "--probe", probe, "--out", str(out), "--store", str(store),
                     "--quiet", *extra])


def only_trace(store: Path) -> Path:
    folders = [p for p in store.iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1, folders
    return folders[0]
