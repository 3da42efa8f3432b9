"""`python -m visualizer`: argument parsing lives in cli/; this file only starts it."""

import sys

from .memory import enable_huge_pages

enable_huge_pages()  # before torch is imported (memory.py)

from .cli import main  # noqa: E402

sys.exit(main())
