"""A sweep's driver: the cluster, the submission of tasks, committing staged traces, folding statistics.

Engine: Dask distributed. By default a LocalCluster on 127.0.0.1 (no dashboard, one process per
worker, one thread each, as many workers as cores and memory allow); an existing scheduler only
with --scheduler; in-process (no Dask) for the sequential reference the tests compare against.
At most a few tasks per worker are in flight, results are committed in plan order (so ids and
statistics do not depend on which worker finished first) and folded into running means and
variances, then dropped: the driver's memory does not grow with the number of probes.

What this module does not do: load models or capture (tasks.py), or write the page (site/sweep.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from visualizer.errors import VisualizerError
from visualizer.store.options import StoreOptions
from visualizer.sweep.fold import Running
from visualizer.sweep.plan import Checkpoint, batches, count_probes
from visualizer.sweep.tasks import Task, run_task

METRICS = ("loss", "entropy", "prev_token", "induction", "resid_norm")
LINKED = 20  # traces per step the page links to (the rest: `traces list`)
RETRIES = 2


@dataclass(frozen=True)
class Sweep:
    checkpoints: tuple[Checkpoint, ...]
    probes: Path
    store: str | None  # store URL or path; None with --summary-only
    family: str | None = None
    tokenizer: str | None = None
    meta: str | None = None
    batch: int | None = None  # probes per task (default: from the counts)
    top_k: int = 10


def default_workers(checkpoints, tasks: int) -> int:
    """As many workers as cores, but each must fit its models (a model costs about 4x its file:
    weights, captured activations, analysis) in half of the available memory; at least 1."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    biggest = max(Path(c.weights).stat().st_size for c in checkpoints)
    per_worker = 4 * biggest + 400 * 2**20  # + the interpreter, torch and the worker itself
    by_memory = psutil.virtual_memory().available // 2 // per_worker
    return max(1, min(cores, by_memory, tasks))


def batch_size(n_probes: int, workers: int) -> int:
    return max(1, min(32, -(-n_probes // (4 * workers))))


def make_tasks(sweep: Sweep, staging: str | None, size: int) -> Iterator[Task]:
    sequence = 0
    for c in sweep.checkpoints:
        for batch in batches(sweep.probes, size):
            yield Task(sequence=sequence, step=c.step, checkpoint=c.path, load_step=c.load_step, weights=c.weights,
                       family=sweep.family, tokenizer=sweep.tokenizer, meta=sweep.meta, probes=batch,
                       store_url=sweep.store, staging=staging, top_k=sweep.top_k)
            sequence += 1


class Folder:
    """Commits each task's staged traces (plan order) and folds its statistics per step."""

    def __init__(self, sweep: Sweep, fs, root: str | None):
        self.sweep, self.fs, self.root = sweep, fs, root
        self.steps: dict[int, dict] = {}
        self.workers: dict[str, dict] = {}
        self.pending: dict[int, dict] = {}
        self.next = 0

    def add(self, result: dict) -> None:
        self.pending[result["sequence"]] = result
        while self.next in self.pending:
            self._fold(self.pending.pop(self.next))
            self.next += 1

    def _fold(self, result: dict) -> None:
        from visualizer.store.traces import build_manifest, commit_staged, now_utc

        self.workers.setdefault(result["worker"], {})["loads"] = result["loads"]
        self.workers[result["worker"]]["tasks"] = self.workers[result["worker"]].get("tasks", 0) + 1
        for record in result["results"]:
            step = self.steps.setdefault(record["step"], {
                "step": record["step"], "sha256": record["sha256"], "probes": 0, "verified": 0, "traces": [],
                "running": {m: Running() for m in METRICS}})
            step["probes"] += 1
            step["verified"] += record["verified"]
            for metric in METRICS:
                step["running"][metric].add(record["stats"][metric])
            trace_id = None
            if record["staged"] is not None:
                checkpoint = next(c for c in self.sweep.checkpoints if c.step == record["step"])
                manifest = build_manifest(record["trace"]["trace"], record["trace"]["analysis"], record["files"],
                                          str(Path(checkpoint.weights).resolve()), StoreOptions(tags=("sweep",)),
                                          record["tensors"], now_utc(), {"step": record["step"]})
                trace_id = commit_staged(self.fs, self.root, record["staged"], manifest)["id"]
            if len(step["traces"]) < LINKED:
                step["traces"].append({"index": record["index"], "probe": record["probe"][:200], "id": trace_id})

    def summary(self) -> dict:
        steps = []
        for n in sorted(self.steps):
            s = dict(self.steps[n])
            s["stats"] = {m: r.result() for m, r in s.pop("running").items()}
            steps.append(s)
        return {"steps": steps, "workers": self.workers, "store": self.sweep.store}


def run_sweep(sweep: Sweep, workers: int | None = None, scheduler: str | None = None, client=None,
              in_process: bool = False, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Run every (step, probe); returns the folded summary (see Folder.summary)."""
    from visualizer.store.traces import remove_dead_staging, store_filesystem, staging_prefix, is_local

    n_probes = count_probes(sweep.probes)
    fs = root = staging = None
    if sweep.store is not None:
        fs, root = store_filesystem(sweep.store)
        try:
            fs.makedirs(root, exist_ok=True)
        except OSError as e:
            raise VisualizerError(f"--store {sweep.store}: cannot create it ({e.strerror or e})") from None
        if is_local(fs):
            remove_dead_staging(Path(root))
        staging = staging_prefix(fs, root, uuid.uuid4().hex[:8])
    folder = Folder(sweep, fs, root)
    try:
        if in_process:
            for task in make_tasks(sweep, staging, sweep.batch or n_probes):
                folder.add(run_task(task))
        elif client is not None:
            submit_all(client, sweep, staging, n_probes, folder, progress)
        else:
            with cluster_client(sweep, n_probes, workers, scheduler) as own:
                submit_all(own, sweep, staging, n_probes, folder, progress)
    finally:
        if staging is not None and fs.exists(staging):
            fs.rm(staging, recursive=True)
    summary = folder.summary()
    summary["probes"] = n_probes
    return summary


def cluster_client(sweep: Sweep, n_probes: int, workers: int | None, scheduler: str | None):
    """A Client on --scheduler, or on a new LocalCluster listening on loopback only."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise VisualizerError(f"--scheduler {scheduler}: cannot connect ({e})") from None
    n = workers or default_workers(sweep.checkpoints, len(sweep.checkpoints) * n_probes)
    cluster = LocalCluster(host="127.0.0.1", dashboard_address=None, processes=True, threads_per_worker=1,
                           n_workers=n, silence_logs=logging.ERROR)
    client = Client(cluster)
    return _Closing(client, cluster)


class _Closing:
    """Closes the client, then the cluster it was given (workers and nannies end with it)."""

    def __init__(self, client, cluster):
        self.client, self.cluster = client, cluster

    def __enter__(self):
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        self.cluster.close()


def submit_all(client, sweep: Sweep, staging: str | None, n_probes: int, folder: Folder,
               progress: Callable[[str], None]) -> None:
    """Submit tasks with a bounded window (a few per worker), feeding results to `folder`."""
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    size = sweep.batch or batch_size(n_probes, n_workers)
    tasks = make_tasks(sweep, staging, size)
    window = as_completed()
    for task in tasks:
        window.add(client.submit(run_task, task, retries=RETRIES, pure=False))
        if window.count() >= 2 * n_workers:
            break
    done = 0
    for future in window:
        folder.add(future.result())
        done += 1
        progress(f"task {done} done ({future.result()['worker']})")
        future.release()
        task = next(tasks, None)
        if task is not None:
            window.add(client.submit(run_task, task, retries=RETRIES, pure=False))
