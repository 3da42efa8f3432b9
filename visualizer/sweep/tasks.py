"""The worker task of a sweep: one checkpoint step x a batch of probes -> staged data files and
small statistics.

A worker loads each checkpoint once (a small cache keyed by the weights file's sha256) with the
normal loader, captures and verifies each probe as the report does (pipeline.compute_run), writes
the run's data files (artefacts/run_files.py) into a local temporary folder and uploads them under
the sweep's staging prefix. It returns per-probe statistics and file records; the driver assigns
ids and writes manifests.

What this module does not do: draw figures or write pages (they fork processes, which daemonic Dask
workers cannot), assign trace ids, or fold statistics across probes (driver.py).
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from visualizer.analysis.head_types import mask_score, token_targets
from visualizer.model.checkpoint import file_sha256

CACHE_SIZE = 2  # models kept per worker; tasks arrive step by step, so one step's batches share a load
_MODELS: OrderedDict = OrderedDict()
LOADS: Counter = Counter()  # weights sha256 -> times loaded in this process (read back by the tests)
KILL_ONCE_VARIABLE = "VISUALIZER_SWEEP_KILL_ONCE"  # test hook (maybe_die)


@dataclass(frozen=True)
class Task:
    """One unit of work (small: it travels to the worker)."""

    sequence: int  # position in the plan: the driver commits in this order
    step: int
    checkpoint: str
    load_step: int | None
    weights: str
    family: str | None
    tokenizer: str | None
    meta: str | None
    probes: tuple[tuple[int, str], ...]  # (index in --probes, text)
    store_url: str | None  # None: --summary-only (nothing written)
    staging: str | None  # the sweep's staging prefix inside the store
    top_k: int = 10


def worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"in-process:{os.getpid()}"


def loaded_model(task: Task):
    """The task's model from this worker's cache, loaded (and counted) on first use."""
    from visualizer.model.registry import load_model

    key = file_sha256(Path(task.weights))
    if key not in _MODELS:
        _MODELS[key] = load_model(Path(task.checkpoint), Path(task.meta) if task.meta else None, "cpu",
                                  family=task.family, step=task.load_step,
                                  tokenizer=Path(task.tokenizer) if task.tokenizer else None)
        LOADS[key] += 1
        while len(_MODELS) > CACHE_SIZE:
            _MODELS.popitem(last=False)
    _MODELS.move_to_end(key)
    return key, _MODELS[key]


def induction_scores(pattern: torch.Tensor, ids: list[int]) -> list[float | None]:
    """pattern [head, q, k] -> per head: mean attention from a token to the token that followed an
    earlier occurrence of it (analysis/head_types.py's induction score); None when no token repeats."""
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    return mask_score(pattern, token_targets(ids)["induction"], causal)[0]


def probe_statistics(run, n_layer: int) -> dict:
    """Small per-probe figures: loss, per layer x head entropy / previous-token / induction, residual norms."""
    heads = (run.analysis.get("attention") or {}).get("heads", [])
    grid = lambda key: [[h[key] for h in heads if h["layer"] == layer] for layer in range(n_layer)]  # noqa: E731
    tensors = run.cache.tensors
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layer)]
    return {
        "loss": (run.analysis.get("logits") or {}).get("mean_loss_nats"),
        "entropy": grid("entropy_bits") if heads else None,
        "prev_token": grid("prev_mass") if heads else None,
        "induction": [induction_scores(tensors[f"blocks.{layer}.attn.hook_pattern"], run.probe.ids)
                      for layer in range(n_layer)],
        "resid_norm": [float(tensors[n].double().norm(dim=-1).mean()) for n in names],  # mean L2 over positions
    }


def maybe_die(staged: str, fs) -> None:
    """Test hook: when $VISUALIZER_SWEEP_KILL_ONCE names a folder holding `armed`, the first task to
    take it (an atomic rename) leaves half a trace in staging and is SIGKILLed."""
    folder = os.environ.get(KILL_ONCE_VARIABLE)
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, "armed"), os.path.join(folder, "fired"))
    except OSError:
        return
    fs.pipe_file(f"{staged}/trace.json", b'{"half": ')
    os.kill(os.getpid(), signal.SIGKILL)


def run_task(task: Task) -> dict:
    """Run a task; returns {'sequence', 'worker', 'loads', 'results': [per probe]}."""
    from visualizer.artefacts.run_files import write_run_files
    from visualizer.model.probe import prepare_probe
    from visualizer.pipeline import compute_run
    from visualizer.store.traces import stage_files, store_filesystem

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic in every worker and in-process: byte-identical files
    try:
        key, loaded = loaded_model(task)
        fs, _ = store_filesystem(task.store_url) if task.store_url else (None, None)
        results = []
        for index, text in task.probes:
            probe = prepare_probe(loaded, text)
            run = compute_run(loaded, probe, task.top_k)
            record = {"step": task.step, "index": index, "probe": text, "sha256": key,
                      "stats": probe_statistics(run, loaded.dims.n_layer),
                      "verified": bool(run.trace.get("verification_passed")), "staged": None}
            if fs is not None:
                staged = f"{task.staging}/{task.step}/{index}"
                maybe_die(staged, fs)
                with tempfile.TemporaryDirectory(prefix="visualizer-sweep-") as tmp:
                    write_run_files(Path(tmp), run.trace, run.cache.tensors, run.report_data, run.analysis,
                                    run.attribution)
                    record["files"] = stage_files(fs, staged, Path(tmp))
                record.update(staged=staged, trace=manifest_fields(run), tensors=len(run.cache.tensors))
            results.append(record)
        return {"sequence": task.sequence, "worker": worker_name(), "pid": os.getpid(), "loads": dict(LOADS),
                "results": results}
    finally:
        torch.set_num_threads(threads)


def manifest_fields(run) -> dict:
    """What the driver needs of trace.json and analysis.json to write the manifest (not the tensors)."""
    keep = ("model_name", "family", "model", "dims", "probe", "tokens", "token_ids", "next_tokens", "verification_passed")
    return {"trace": {k: run.trace.get(k) for k in keep}, "analysis": {"logits": run.analysis.get("logits") and {
        "mean_loss_nats": run.analysis["logits"].get("mean_loss_nats"),
        "entropy_bits": (run.analysis["logits"].get("entropy_bits") or [None])[-1:]},
        "attention": {"heads": [{"label": h.get("label")} for h in (run.analysis.get("attention") or {}).get("heads", [])]}}}
