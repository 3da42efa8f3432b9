"""Make `import visualizer` (and `import tests.support.nanogpt`) work however pytest is launched;
keep every test's writes out of the repository; session-wide tiny models."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    import visualizer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO_ROOT))


import pytest  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # the suite runs in one worker process per core (pytest-xdist): one torch thread each, or the
    # workers' thread pools fight over the same cores
    import torch

    torch.set_num_threads(1)

# what running Python and pytest may leave in the tree: everything else a test writes is a bug
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".venv", ".git"}


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime in ns) of every file under root, but caches and the venv."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_PARTS]
        for name in filenames:
            path = Path(dirpath) / name
            stat = path.lstat()
            listing[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return listing


@pytest.fixture(scope="session", autouse=True)
def _repository_untouched():
    """No test writes into the repository tree (outputs go to tmp_path)."""
    before = tree_listing(REPO_ROOT)
    yield
    after = tree_listing(REPO_ROOT)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    assert not changed, f"tests changed files in the repository: {changed[:10]}"


@pytest.fixture(autouse=True)
def _private_trace_store(tmp_path_factory, monkeypatch):
    """Every run stores its trace (issue 6): in tests, into a temporary store, never ./traces/."""
    monkeypatch.setenv("TRACE_STORE", str(tmp_path_factory.mktemp("trace-store")))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(ckpt.pt, meta.pkl) of one small random nanoGPT model for the whole session: 2 layers, 2 heads,
    32 wide, a 64-token context, a character vocabulary. Tests that change files make their own."""
    from tests.support.nanogpt import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("tiny-model"), n_layer=2, n_head=2, n_embd=32, block_size=64)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_checkpoint):
    """That model loaded once (read-only: tests must not change its weights)."""
    from visualizer.model.registry import load_model

    return load_model(*tiny_checkpoint)
