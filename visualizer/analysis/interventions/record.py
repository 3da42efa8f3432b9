"""One patching run, end to end, as `patching.json`'s record: capture both probes (verified),
choose the metric, run every sweep on the corrupt probe and the ablation on the clean one (with no
corrupt probe: the ablation alone, on the one probe given).

What this module does not do: parse flags (config.py), write files (the pipeline) or HTML
(site/patching.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from visualizer.analysis.interventions.ablation import Knockout, run_ablation
from visualizer.analysis.interventions.engine import Engine
from visualizer.analysis.interventions.metric import Metric, choose_answer, choose_metric
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
TARGET_TEXT = "the answer's logit at the last position of the probe (no corrupt probe: ablation only)"


@dataclass(frozen=True)
class PatchOptions:
    answer: str | None = None  # token text (exactly one token) or '#ID'; None: the clean run's top token
    wrong: str | None = None  # None: the corrupt run's top token
    budget: int = DEFAULT_BUDGET  # most patched runs head_out_by_pos may take
    batch_rows: int | None = None  # patched runs per forward; None: engine.default_batch_rows


def planned_runs(loaded: LoadedModel, T: int, options: PatchOptions, knockouts: int, sweeps: bool = True) -> int:
    """How many patched runs a patching run makes (the progress bar's total); sweeps False: the
    ablation alone (no corrupt probe)."""
    dims = loaded.dims
    total = 0
    for name, kind in KINDS.items() if sweeps else ():
        count = len(cells(kind, dims.n_layer, dims.n_head, T))
        if name != "head_out_by_pos" or count <= options.budget:
            total += count + 2 * dims.n_layer  # the cells and the two identities per layer
    return total + 2 * dims.n_layer * (dims.n_head + 1) + knockouts + dims.n_layer


def token_entry(loaded: LoadedModel, token_id: int, chosen: str) -> dict:
    text = loaded.tokenizer.token_str(token_id)
    return {"id": token_id, "token": text, "readable": readable(text), "chosen": chosen}


def probe_entry(loaded: LoadedModel, probe: Probe, cache: Cache, trace: str | None = None) -> dict:
    """A run's probe as run; `trace`: the id of the stored trace it was read from (None: its text)."""
    tokens = [loaded.tokenizer.token_str(i) for i in probe.ids]
    return {"text": probe.text, "chat": probe.chat, "trace": trace, "ids": list(probe.ids), "tokens": tokens,
            "tokens_readable": [readable(t) for t in tokens], "dropped_tokens": len(probe.dropped_ids),
            "warnings": list(probe.warnings),
            "verification": cache.verification, "verification_passed": cache.passed}


def metric_entry(loaded: LoadedModel, metric: Metric, chosen: dict, T: int) -> dict:
    return {"answer": token_entry(loaded, metric.answer, chosen["answer"]),
            "wrong": token_entry(loaded, metric.wrong, chosen["wrong"]),
            "position": T - 1, "clean_logit_diff": metric.clean, "corrupt_logit_diff": metric.corrupt, "text": METRIC_TEXT}


def target_entry(loaded: LoadedModel, answer: int, chosen: str, T: int) -> dict:
    """The ablation-only run's 'metric': the answer's logit at the last position, nothing to normalise."""
    return {"answer": token_entry(loaded, answer, chosen), "wrong": None, "position": T - 1,
            "clean_logit_diff": None, "corrupt_logit_diff": None, "text": TARGET_TEXT}


def all_checks(record: dict) -> dict[str, dict]:
    """Every check of the record, flat: 'clean capture: ...', '<sweep>: ...', 'ablation: ...'
    (the record's `verification`)."""
    checks = {}
    for run in ("clean", "corrupt") if record["corrupt"] is not None else ("clean",):
        checks.update({f"{run} capture: {k}": v for k, v in record[run]["verification"].items()})
    for name, sweep in record["sweeps"].items():
        checks.update({f"{name}: {k}": v for k, v in sweep.get("verification", {}).items()})
    checks.update({f"ablation: {k}": v for k, v in record["ablation"]["verification"].items()})
    data = record["ablation"].get("data_verification")
    if data is not None:
        checks["ablation data captures"] = data
    return checks


def compute_patching(loaded: LoadedModel, clean: Probe, corrupt: Probe | None, options: PatchOptions = PatchOptions(),
                     data: list[Probe] = (), knockouts: list[Knockout] = (),
                     on_rows: Callable[[int], None] | None = None, caches: dict[str, Cache] | None = None,
                     traces: dict[str, str] | None = None) -> dict:
    """The whole record. `clean` and `corrupt` have the same number of tokens (the caller checks);
    without `corrupt`, the ablation alone (no sweep, the answer's logit as the target). caches:
    run -> its verified capture, when the caller made it ('clean', 'corrupt'); traces: run -> the
    stored trace it was read from."""
    caches = dict(caches or {})
    for run, probe in (("clean", clean), ("corrupt", corrupt)):
        if probe is not None and run not in caches:
            caches[run] = capture(loaded, probe.ids)
    clean_cache, corrupt_cache = caches["clean"], caches.get("corrupt")
    T = len(clean.ids)
    sweeps, engine = {}, None
    if corrupt is None:
        answer, how = choose_answer(loaded, clean_cache["logits"][-1], options.answer)
        metric = target_entry(loaded, answer, how, T)
    else:
        chosen_metric, chosen = choose_metric(loaded, clean_cache["logits"][-1], corrupt_cache["logits"][-1],
                                              options.answer, options.wrong)
        answer, metric = chosen_metric.answer, metric_entry(loaded, chosen_metric, chosen, T)
        engine = Engine(loaded, corrupt.ids, corrupt_cache, options.batch_rows, on_rows)
        sources = Sources(loaded, clean_cache, corrupt_cache)
        sweeps = {name: run_sweep(engine, sources, chosen_metric, name, options.budget) for name in SWEEPS}
    data_caches = [capture(loaded, probe.ids) for probe in data]
    ablation_engine = Engine(loaded, clean.ids, clean_cache, options.batch_rows, on_rows)
    ablation = run_ablation(ablation_engine, loaded, clean_cache, clean.ids, answer, data_caches, list(knockouts))
    if data_caches:  # the worst check of every data probe's capture
        ablation["data_verification"] = worst([c for cache in data_caches for c in cache.verification.values()])
    traces = traces or {}
    record = {
        **model_header(loaded, PATCHING_FORMAT),
        "kind": "patch",
        "clean": probe_entry(loaded, clean, clean_cache, traces.get("clean")),
        "corrupt": None if corrupt is None else probe_entry(loaded, corrupt, corrupt_cache, traces.get("corrupt")),
        "metric": metric,
        "budget": options.budget,
        "batch_rows": (engine or ablation_engine).batch_rows,
        "sweeps": sweeps,
        "ablation": ablation,
        "runs": (engine.runs if engine else 0) + ablation["runs"],
        "forwards": (engine.forwards if engine else 0) + ablation["forwards"],
    }
    record["verification"] = all_checks(record)
    record["verification_passed"] = all(check["passed"] for check in record["verification"].values())
    return record
