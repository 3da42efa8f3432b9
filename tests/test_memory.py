"""memory.py: row chunks cover every row once, in order; the environment switch keeps a user's value."""

import os
import subprocess
import sys
from pathlib import Path

from visualizer.memory import row_chunks


def test_row_chunks_cover_every_row_once_in_order():
    for rows, row_bytes, budget in [(1024, 50257 * 4, 32 << 20), (7, 10, 25), (5, 1000, 1), (0, 4, 8)]:
        chunks = row_chunks(rows, row_bytes, budget)
        covered = [i for c in chunks for i in range(c.start, c.stop)]
        assert covered == list(range(rows))
        assert all(c.stop - c.start <= max(1, budget // row_bytes) for c in chunks)


def _huge_pages_setting(env: dict) -> str:
    code = "import os; from visualizer.memory import enable_huge_pages; enable_huge_pages(); print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return done.stdout.strip()


def test_huge_pages_switched_on_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    assert _huge_pages_setting(env) == "1"
    assert _huge_pages_setting({**env, "THP_MEM_ALLOC_ENABLE": "0"}) == "0"
