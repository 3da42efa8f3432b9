"""`python -m visualizer sweep`: every probe at every training step, on a Dask cluster, into the trace store,
with a sweep page of per-step statistics.

What this module does not do: run anything (sweep/driver.py) or write HTML (site/sweep.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visualizer.model.families import FAMILIES

HELP = "run probes across training checkpoints on a Dask cluster; a sweep page of per-step statistics"
DESCRIPTION = (
    "Every (checkpoint step, probe) is captured, verified and kept as a trace (its step in the manifest), on a "
    "Dask distributed cluster: a local one on 127.0.0.1 by default, an existing scheduler with --scheduler. "
    "Statistics are folded per step (running means and variances) into a static sweep page."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", action="append", required=True, metavar="PATH",
                        help="a folder of training checkpoints (nanochat: every model_NNNNNN.pt is a step), or a "
                             "checkpoint file of any family; repeat for several files (their steps are 0, 1, ...)")
    parser.add_argument("--steps", default="all", metavar="all|A:B:S|N,M",
                        help="which steps (default all): A to B every S-th, or a list")
    parser.add_argument("--probes", required=True, metavar="FILE",
                        help='one probe per line, or .jsonl with {"text": ...} per line')
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=int, metavar="N",
                        help="local workers (default: by cores and model memory); one process, one thread each")
    engine.add_argument("--scheduler", metavar="ADDRESS", help="use this running Dask scheduler (tcp://host:port)")
    parser.add_argument("--store", metavar="URL",
                        help="trace store: a folder, file://, memory://, s3://, gs:// (with its fsspec package) "
                             "(.env: TRACE_STORE; default traces/)")
    parser.add_argument("--summary-only", action="store_true", help="keep statistics only: no trace is stored")
    parser.add_argument("--out", metavar="DIR", default="visualizations/sweep",
                        help="the sweep page's folder (default visualizations/sweep)")
    parser.add_argument("--family", choices=FAMILIES, help="the checkpoints' model family (default: detected)")
    parser.add_argument("--tokenizer", metavar="DIR", help="nanochat: the folder holding tokenizer.pkl")
    parser.add_argument("--meta", metavar="PATH", help="nanoGPT meta.pkl with the vocabulary")
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file instead of ./.env")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def run(args) -> int:
    from visualizer.config import env_of, store_root
    from visualizer.errors import VisualizerError
    from visualizer.site.sweep import write_sweep_page
    from visualizer.artefacts.folder import check_target
    from visualizer.model.registry import resolve_family
    from visualizer.sweep.driver import Sweep, run_sweep
    from visualizer.sweep.plan import count_probes, plan_checkpoints

    if args.workers is not None and args.workers < 1:
        raise VisualizerError(f"--workers {args.workers}: expected at least 1")
    store = None if args.summary_only else str(args.store or store_root(args, env_of(args)))
    from visualizer.store.traces import is_local, store_filesystem

    fs, root = store_filesystem(store) if store else (None, None)
    protected = [Path(root)] if fs is not None and is_local(fs) else []  # no page inside or around a local store
    check_target(Path(args.out), "sweep", protected)  # refuse a foreign folder before the work
    checkpoints = tuple(plan_checkpoints(args.checkpoint, args.steps))
    for checkpoint in checkpoints:  # a bad --family or checkpoint is one line here, not a retried task
        resolve_family(Path(checkpoint.path), args.family)
    count_probes(Path(args.probes))
    sweep = Sweep(checkpoints=checkpoints, probes=Path(args.probes),
                  store=store, family=args.family, tokenizer=args.tokenizer, meta=args.meta)
    say = (lambda _: None) if args.quiet else (lambda line: print(line, flush=True))
    summary = run_sweep(sweep, workers=args.workers, scheduler=args.scheduler, progress=say)
    index = write_sweep_page(Path(args.out), summary, store, protected)
    traces = sum(s["probes"] for s in summary["steps"]) if store else 0
    say(f"{len(summary['steps'])} steps x {summary['probes']} probes on {len(summary['workers'])} workers; "
        f"{traces} traces in {store or '(none: --summary-only)'}")
    say(f"sweep: {index}")
    failed = any(s["verified"] < s["probes"] for s in summary["steps"])
    return 3 if failed else 0
