"""`python -m visualizer render ID --out DIR`: a stored trace's report again, without the model; or
`render PATCH_FOLDER --out DIR`: a patch folder's "what if" page and its runs' reports again, from
its patching.json and the reports' data files."""

from __future__ import annotations

import argparse
from pathlib import Path

from visualizer.cli.options import add_store_root_options

HELP = "rebuild a stored trace's report (or a patch folder's page) without the model"
DESCRIPTION = ("Rebuild a stored trace's full report from its files, or a patch folder's \"what if\" page and its "
               "runs' reports from patching.json and their files: no model, no forward pass.")


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_root_options(parser)
    parser.add_argument("id", metavar="ID",
                        help="trace id (or a unique prefix), or a path to a trace folder or to a patch folder (holding "
                             "patching.json)")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the report into exactly DIR")


def run(args) -> int:
    from visualizer.config import env_of, store_root
    from visualizer.pipeline import render_trace

    index = render_trace(store_root(args, env_of(args)), args.id, Path(args.out))
    print(f"report: {index}")
    return 0
