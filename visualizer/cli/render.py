"""`python -m visualizer render ID --out DIR`: a stored trace's report again, without the model."""

from __future__ import annotations

import argparse
from pathlib import Path

from visualizer.cli.options import add_store_root_options

HELP = "rebuild a stored trace's report without the model"
DESCRIPTION = "Rebuild a stored trace's full report from its files: no model, no forward pass."


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_root_options(parser)
    parser.add_argument("id", metavar="ID", help="trace id (or a unique prefix), or a path to a trace folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the report into exactly DIR")


def run(args) -> int:
    from visualizer.config import env_of, store_root
    from visualizer.pipeline import render_trace

    index = render_trace(store_root(args, env_of(args)), args.id, Path(args.out))
    print(f"report: {index}")
    return 0
