"""`python -m visualizer compare A B --out DIR`: two traces side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from visualizer.cli.options import add_store_root_options

HELP = "compare two traces (checkpoints or probes)"
DESCRIPTION = ("Compare two traces (two checkpoints on one probe, or two probes on one checkpoint): residual "
               "cosine, attention Jensen-Shannon, next-token KL, side-by-side heads.")


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_root_options(parser)
    parser.add_argument("a", metavar="A", help="trace id (or unique prefix), or a path to a trace or report folder")
    parser.add_argument("b", metavar="B", help="the other trace")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the comparison page into exactly DIR")


def run(args) -> int:
    import visualizer.store.compare as compare
    import visualizer.store.traces as store
    from visualizer.config import env_of, store_root

    root = store_root(args, env_of(args))
    a = compare.Side(store.open_trace(root, args.a))
    b = compare.Side(store.open_trace(root, args.b))
    result = compare.compare(a, b)
    compare.write_site(Path(args.out), a, b, result, [root])
    nt = result["next_token"]
    summary = f"mean next-token KL {nt['mean_kl_bits']:.4g} bits; " if nt else ""
    print(f"compared {result['positions']} positions ({result['mode']}); {summary}page: {Path(args.out) / 'index.html'}")
    return 0
