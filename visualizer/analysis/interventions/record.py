"""One patching run, end to end, as `patching.json`'s record: capture both probes (verified),
choose the metric, run every sweep on the corrupt probe and the ablation on the clean one.

What this module does not do: parse flags (config.py), write files (the pipeline) or HTML
(site/patching.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from visualizer.analysis.interventions.ablation import Knockout, run_ablation
from visualizer.analysis.interventions.engine import Engine
from visualizer.analysis.interventions.metric import Metric, choose_metric
from visualizer.analysis.interventions.sweeps import DEFAULT_BUDGET, KINDS, SWEEPS, Sources, cells, run_sweep, worst
from visualizer.artefacts.trace import model_header
from visualizer.capture import Cache, capture
from visualizer.model.base import LoadedModel
from visualizer.model.probe import Probe
from visualizer.model.tokenizer import readable

PATCHING_FORMAT = 1
METRIC_TEXT = (
    "logit difference = logit(answer) - logit(wrong) at the last position; normalised = "
    "(patched - corrupt) / (clean - corrupt), so 1 is the clean run's value and 0 the corrupt run's"
)


@dataclass(frozen=True)
class PatchOptions:
    answer: str | None = None  # token text (exactly one token) or '#ID'; None: the clean run's top token
    wrong: str | None = None  # None: the corrupt run's top token
    budget: int = DEFAULT_BUDGET  # most patched runs head_out_by_pos may take
    batch_rows: int | None = None  # patched runs per forward; None: engine.default_batch_rows


def planned_runs(loaded: LoadedModel, T: int, options: PatchOptions, knockouts: int) -> int:
    """How many patched runs a patching run makes (the progress bar's total)."""
    dims = loaded.dims
    total = 0
    for name, kind in KINDS.items():
        count = len(cells(kind, dims.n_layer, dims.n_head, T))
        if name != "head_out_by_pos" or count <= options.budget:
            total += count + 2 * dims.n_layer  # the cells and the two identities per layer
    return total + 2 * dims.n_layer * (dims.n_head + 1) + knockouts + dims.n_layer


def token_entry(loaded: LoadedModel, token_id: int, chosen: str) -> dict:
    text = loaded.tokenizer.token_str(token_id)
    return {"id": token_id, "token": text, "readable": readable(text), "chosen": chosen}


def probe_entry(loaded: LoadedModel, probe: Probe, cache: Cache) -> dict:
    tokens = [loaded.tokenizer.token_str(i) for i in probe.ids]
    return {"text": probe.text, "ids": list(probe.ids), "tokens": tokens, "tokens_readable": [readable(t) for t in tokens],
            "dropped_tokens": len(probe.dropped_ids), "warnings": list(probe.warnings),
            "verification": cache.verification, "verification_passed": cache.passed}


def metric_entry(loaded: LoadedModel, metric: Metric, chosen: dict, T: int) -> dict:
    return {"answer": token_entry(loaded, metric.answer, chosen["answer"]),
            "wrong": token_entry(loaded, metric.wrong, chosen["wrong"]),
            "position": T - 1, "clean_logit_diff": metric.clean, "corrupt_logit_diff": metric.corrupt, "text": METRIC_TEXT}


def all_checks(record: dict) -> dict[str, dict]:
    """Every check of the record, flat: 'clean capture: ...', '<sweep>: ...', 'ablation: ...'
    (the record's `verification`)."""
    checks = {}
    for run in ("clean", "corrupt"):
        checks.update({f"{run} capture: {k}": v for k, v in record[run]["verification"].items()})
    for name, sweep in record["sweeps"].items():
        checks.update({f"{name}: {k}": v for k, v in sweep.get("verification", {}).items()})
    checks.update({f"ablation: {k}": v for k, v in record["ablation"]["verification"].items()})
    data = record["ablation"].get("data_verification")
    if data is not None:
        checks["ablation data captures"] = data
    return checks


def compute_patching(loaded: LoadedModel, clean: Probe, corrupt: Probe, options: PatchOptions = PatchOptions(),
                     data: list[Probe] = (), knockouts: list[Knockout] = (),
                     on_rows: Callable[[int], None] | None = None) -> dict:
    """The whole record. `clean` and `corrupt` have the same number of tokens (the caller checks)."""
    clean_cache, corrupt_cache = capture(loaded, clean.ids), capture(loaded, corrupt.ids)
    metric, chosen = choose_metric(loaded, clean_cache["logits"][-1], corrupt_cache["logits"][-1], options.answer, options.wrong)
    T = len(clean.ids)
    engine = Engine(loaded, corrupt.ids, corrupt_cache, options.batch_rows, on_rows)
    sources = Sources(loaded, clean_cache, corrupt_cache)
    sweeps = {name: run_sweep(engine, sources, metric, name, options.budget) for name in SWEEPS}
    data_caches = [capture(loaded, probe.ids) for probe in data]
    ablation = run_ablation(Engine(loaded, clean.ids, clean_cache, options.batch_rows, on_rows), loaded, clean_cache,
                            clean.ids, metric.answer, data_caches, list(knockouts))
    if data_caches:  # the worst check of every data probe's capture
        ablation["data_verification"] = worst([c for cache in data_caches for c in cache.verification.values()])
    record = {
        **model_header(loaded, PATCHING_FORMAT),
        "kind": "patch",
        "clean": probe_entry(loaded, clean, clean_cache),
        "corrupt": probe_entry(loaded, corrupt, corrupt_cache),
        "metric": metric_entry(loaded, metric, chosen, T),
        "budget": options.budget,
        "batch_rows": engine.batch_rows,
        "sweeps": sweeps,
        "ablation": ablation,
        "runs": engine.runs + ablation["runs"],
        "forwards": engine.forwards + ablation["forwards"],
    }
    record["verification"] = all_checks(record)
    record["verification_passed"] = all(check["passed"] for check in record["verification"].values())
    return record
