"""Benchmark of `sweep` on Dask distributed: N short probes on the embedded demo model (one
checkpoint), with 1 and then 2 local workers (one process and one thread each), into a temporary
trace store. Prints each run's wall time (the cluster's start apart), the speed-up ratio, and the
driver's peak memory (Python allocations, tracemalloc) for a tenth of the probes and for all of
them: the driver folds statistics as results arrive and keeps a bounded window of tasks (of one
batch size, BATCH, in every run), so its peak must not grow with the number of probes. Run from the repo root:

    python scripts/bench_sweep.py [--probes 1000] [--summary-only]

Each probe runs what the report runs (capture + verification, report data, analysis, attribution);
on a shared 2-core machine the numbers vary with the load average, printed beside them.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from visualizer.model.registry import DEMO_CHECKPOINT  # noqa: E402
from visualizer.sweep.driver import Sweep, run_sweep  # noqa: E402
from visualizer.sweep.plan import plan_checkpoints  # noqa: E402

WORDS = ("but soft what light through yonder window breaks it is the east and juliet is sun arise fair "
         "kill envious moon who already sick pale with grief").split()


BATCH = 8  # probes per task


def write_probes(path: Path, n: int) -> Path:
    rng = random.Random(0)
    lines = [("ROMEO: " if i % 2 else "JULIET: ") + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 6)))
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def held_by_visualizer() -> int:
    """Bytes the driver's own code (files under visualizer/) holds now, by tracemalloc: the folded
    statistics and the window of results. The process's peak also counts Dask's scheduler, which runs
    in the driver's process with a LocalCluster and keeps bounded per-task logs."""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/visualizer/*")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def timed_sweep(probes: Path, workers: int, store: str | None) -> tuple[float, float, int, dict]:
    """(cluster start s, sweep s, driver tracemalloc peak bytes, summary); summary["held"]: bytes the
    visualizer code still holds after the sweep (held_by_visualizer)."""
    from distributed import Client, LocalCluster

    sweep = Sweep(checkpoints=tuple(plan_checkpoints([str(DEMO_CHECKPOINT)], "all")), probes=probes, store=store,
                  batch=BATCH)  # one batch size for every run, so the driver's peaks compare
    start = time.perf_counter()
    with LocalCluster(host="127.0.0.1", dashboard_address=None, processes=True, threads_per_worker=1,
                      n_workers=workers, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.submit(sum, [1]).result()  # workers up
        started = time.perf_counter() - start
        tracemalloc.start()
        start = time.perf_counter()
        summary = run_sweep(sweep, client=client)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        summary["held"] = held_by_visualizer()
        tracemalloc.stop()
    return started, seconds, peak, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--summary-only", action="store_true", help="store nothing (statistics only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        print(f"{args.probes} probes on the demo model; load average {os.getloadavg()[0]:.2f}")
        runs = {}
        for workers in (1, 2):
            store = None if args.summary_only else str(tmp / f"store-{workers}")
            started, seconds, peak, summary = timed_sweep(write_probes(tmp / "probes.txt", args.probes), workers, store)
            runs[workers] = seconds
            print(f"{workers} worker(s): cluster start {started:.1f} s, sweep {seconds:.1f} s "
                  f"({seconds / args.probes * 1000:.0f} ms/probe), driver peak {peak / 2**20:.2f} MiB "
                  f"(held by visualizer code after it: {summary['held'] / 2**10:.1f} KiB), "
                  f"tasks per worker {[w['tasks'] for w in summary['workers'].values()]}; "
                  f"load average {os.getloadavg()[0]:.2f}")
        print(f"speed-up 2 workers / 1 worker: {runs[1] / runs[2]:.2f}x")
        small = max(1, args.probes // 10)
        _, _, peak_small, summary_small = timed_sweep(write_probes(tmp / "small.txt", small), 2,
                                                      None if args.summary_only else str(tmp / "store-small"))
        print(f"driver peak with {small} probes: {peak_small / 2**20:.2f} MiB, held by visualizer code "
              f"{summary_small['held'] / 2**10:.1f} KiB (with {args.probes}: see the 2-worker line)")


if __name__ == "__main__":
    main()
