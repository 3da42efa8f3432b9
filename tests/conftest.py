"""Make `import visualizer` (and `import tests.support.nanogpt`) work however pytest is launched."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    import visualizer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO_ROOT))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_trace_store(tmp_path_factory, monkeypatch):
    """Every run stores its trace (issue 6): in tests, into a temporary store, never ./traces/."""
    monkeypatch.setenv("TRACE_STORE", str(tmp_path_factory.mktemp("trace-store")))
