"""`python -m visualizer`: argument parsing lives in cli.py; this file only starts it."""

import sys

from .cli import main

sys.exit(main())
