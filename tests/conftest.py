"""Make `import visualizer` (and `import tests.factories`) work however pytest is launched."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    import visualizer  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO_ROOT))
