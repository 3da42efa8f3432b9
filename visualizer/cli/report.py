"""The default command: `python -m visualizer [report] [options]` writes one report per probe.

What this module does not do: compute (pipeline.py) or merge settings (config.py).
"""

from __future__ import annotations

import argparse

from visualizer import __version__
from visualizer.cli.options import add_attribution_options, add_common_options, add_model_options, add_store_options

HELP = "write the report of a probe (the default command)"
DESCRIPTION = (
    "Open a trained GPT and write a static web report of what happens inside it for a probe. "
    "Settings come from flags, then the environment and .env (see env.template), then defaults; "
    "with none at all, the embedded demo model and a default probe are used."
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser)
    parser.add_argument(
        "--probe", action="append", metavar="TEXT",
        help="the text to run through the model (.env: PROBE_SENTENCE); repeat for several reports from one load",
    )
    parser.add_argument("--probe-file", action="append", metavar="PATH", help="read a probe from a UTF-8 file (keeps newlines)")
    parser.add_argument(
        "--chat", action="append", metavar="TEXT",
        help="a user message rendered as a chat turn awaiting the reply, in the model's own chat format "
        "(nanochat: <|bos|><|user_start|>TEXT<|user_end|><|assistant_start|>); repeatable, alongside or instead of --probe",
    )
    parser.add_argument(
        "--out", metavar="DIR",
        help="write the report into exactly DIR (.env: OUT); default: visualizations/<model>/<probe-slug>/ "
        "and visualizations/index.html",
    )
    parser.add_argument("--top-k", type=int, default=10, metavar="K", help="next-token candidates listed (default 10)")
    parser.add_argument("--figures", choices=("auto", "all", "none"), default="auto",
                        help="PNG figures: auto (default: all of them up to 256 positions; beyond, each layer's "
                             "attention grid, top neurons, norms and lens, not its raw activation matrices), all, "
                             "or none (fastest: the page's interactive views and tables still show the data)")
    add_store_options(parser)
    add_attribution_options(parser)
    add_common_options(parser)
    parser.add_argument("--version", action="version", version=f"visualizer {__version__}")


def run(args) -> int:
    from visualizer.config import report_config
    from visualizer.pipeline import run_report

    return run_report(report_config(args))
