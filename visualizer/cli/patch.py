"""`python -m visualizer patch --clean TEXT --corrupt TEXT ...` (or `--clean-trace ID --corrupt-trace
ID`, two stored traces of one model): activation patching and ablation.

Writes into exactly DIR (built in a temporary folder beside it, renamed into place): index.html
(the "what if" page), patching.json (every sweep, the ablation table, the verification) and the
reports of both runs in clean/ and corrupt/ (the page's maps link to their layer and head views). Model
options are the report's (config.py merges flags > environment > .env > defaults); the error
contract is the plain command's (one `error:` line, exit 2; a failed verification exits 3).

What this module does not do: patch, run or lay out anything (pipeline.py and analysis/interventions/ do).
"""

from __future__ import annotations

import argparse

from visualizer.cli.options import add_common_options, add_model_options

HELP = "activation patching and ablation: what if one run had another run's activations (see patch --help)"
DESCRIPTION = (
    "Run a clean and a corrupt probe of the same length, then write each activation of the clean run into the "
    "corrupt run, one at a time (residual stream, attention and MLP outputs per layer and position, each head's "
    "output and pattern), and measure how much of the clean run's logit difference answer - wrong at the last "
    "position comes back (1 = the clean run's, 0 = the corrupt run's). Also zero and mean ablation of every "
    "head and MLP, and knock-outs of single attention edges, on the clean probe. The probes may come from two stored "
    "traces of one model (--clean-trace, --corrupt-trace); with no corrupt probe only the ablation runs."
)


def configure(p: argparse.ArgumentParser) -> None:
    add_model_options(p, "default: the stored traces' model with --clean-trace/--corrupt-trace, else the embedded demo")
    clean = p.add_mutually_exclusive_group()  # one of them is required (config.patch_config says so)
    clean.add_argument("--clean", metavar="TEXT", help="the probe whose behaviour is restored")
    clean.add_argument("--clean-trace", metavar="ID",
                       help="the clean probe from a stored trace (id, unique prefix or trace folder): its tokens as run, "
                            "and its model unless --checkpoint is given")
    corrupt = p.add_mutually_exclusive_group()
    corrupt.add_argument("--corrupt", metavar="TEXT",
                         help="the same probe with the detail that changes the answer (same number of tokens); "
                              "without a corrupt probe, only the ablation runs, on the clean probe")
    corrupt.add_argument("--corrupt-trace", metavar="ID", help="the corrupt probe from a stored trace of the same model")
    p.add_argument("--store", metavar="DIR", help="trace store the --*-trace ids are in (.env: TRACE_STORE; default traces/)")
    p.add_argument("--answer", metavar="TOKEN",
                   help="the right token: its text (exactly one token) or #ID; default: the clean run's top next token")
    p.add_argument("--wrong", metavar="TOKEN",
                   help="the wrong token: its text (exactly one token) or #ID; default: the corrupt run's top next token")
    p.add_argument("--ablation-data", metavar="FILE",
                   help="UTF-8 text, one probe per line: mean ablation uses the mean over every position of these "
                        "(default: over the clean probe's positions)")
    p.add_argument("--knockout", action="append", default=[], metavar="L.H:Q:K",
                   help="knock out the attention of query position Q to key position K in head H of layer L on the "
                        "clean probe (repeatable; negative positions count from the end)")
    p.add_argument("--budget", type=int, default=None, metavar="N",
                   help="most patched runs the per-(layer, head, position) sweep may take (default 4096; above it "
                        "that sweep is skipped and the page says so)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="patched runs per forward (default: 4096 tokens' worth, at most 256)")
    p.add_argument("--out", metavar="DIR",
                   help="write into exactly DIR (.env: OUT); default: visualizations/<model>/patch-<clean-slug>/")
    add_common_options(p)


def run(args) -> int:
    from visualizer.config import patch_config
    from visualizer.pipeline import run_patch

    return run_patch(patch_config(args))
