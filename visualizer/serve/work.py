"""What the app's jobs compute, each with the CLI's own functions, on the model thread only.

- generate: `generation/decode.generate` with an `on_step` callback that sends each token (text,
  id, probability) as an event and stops at the next step once cancelled;
- visualize: `pipeline.compute_run` + `write_run` into the app's site folder, `store.save` into the
  trace store, then the folder is renamed to the trace id: the page shown is the CLI's report;
- compare: `store/compare.py` `compare` + `write_site` for two stored traces.

What this module does not do: queue or schedule (jobs.py), validate requests (app.py), or write a
byte of a page itself.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel
from visualizer.serve.jobs import KEEP_FINISHED, Job

COMPARISONS = "compare"  # <site>/compare/<a>_<b>/; reports go to <site>/<model>/<trace id>/ as the CLI's layout


@dataclass
class Context:
    """What every job reads: the loaded model, its checkpoint path, the store and the site folder."""

    loaded: LoadedModel
    checkpoint: Path
    store: Path
    site: Path
    top_k: int = 10
    generations: dict[str, dict] = field(default_factory=dict)  # generate job id -> its sequence so far
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def model_folder(self) -> str:
        """The reports' folder under the site, named after the model as `report` names it."""
        return model_folder(self.loaded.name)

    def sequence_of(self, job_id: str) -> dict | None:
        """A generation's prompt and tokens so far (a copy): Visualize reads it at request time."""
        with self.lock:
            record = self.generations.get(job_id)
            return None if record is None else {**record, "ids": list(record["ids"])}


def model_folder(name: str) -> str:
    from visualizer.model.base import slug

    return slug(name)


def report_url(model: str, trace_id: str) -> str:
    return f"/site/{model_folder(model)}/{trace_id}/index.html"


def token_event(loaded: LoadedModel, step) -> dict:
    """One generated token for the page: its text (raw, the page shows it as text), id, probability."""
    import torch

    from visualizer.model.tokenizer import readable

    probs = torch.softmax(step.logits.double(), -1)  # [vocab]: the model's own distribution
    text = loaded.tokenizer.token_str(step.token)
    return {"index": step.index, "id": step.token, "text": text, "readable": readable(text),
            "prob": float(probs[step.token])}


def generate(ctx: Context, job: Job, text: str, chat: bool, max_new_tokens: int, settings) -> dict:
    from visualizer.generation.decode import continuation_text, generate as decode
    from visualizer.model.probe import prepare_probe

    loaded = ctx.loaded
    probe = prepare_probe(loaded, text, chat=chat)
    for message in probe.warnings:
        job.emit("warning", {"message": message})
    record = {"text": text, "chat": chat, "prompt_ids": list(probe.ids), "ids": []}
    with ctx.lock:
        ctx.generations[job.id] = record
        for old in list(ctx.generations)[:-KEEP_FINISHED]:  # as many as the worker remembers jobs
            del ctx.generations[old]

    def on_step(step) -> None:
        job.check_cancel()  # raised inside decode: the step in progress is dropped
        with ctx.lock:
            record["ids"].append(step.token)
        job.emit("token", token_event(loaded, step))

    gen = decode(loaded, probe.ids, max_new_tokens, settings, on_step=on_step, verify_last=False)
    return {"tokens": len(gen.steps), "stop_reason": gen.stop_reason,
            "continuation": continuation_text(loaded.tokenizer, gen.prompt_ids, gen.ids)}


def generation_probe(ctx: Context, sequence: dict):
    """The probe of a generation so far: prompt text + continuation, the very ids it ran on."""
    from visualizer.generation.decode import continuation_text
    from visualizer.model.probe import Probe

    ids = sequence["prompt_ids"] + sequence["ids"]
    n_ctx = ctx.loaded.dims.n_ctx
    text = sequence["text"] + continuation_text(ctx.loaded.tokenizer, sequence["prompt_ids"], sequence["ids"])
    warnings = [f"kept the last {n_ctx} of {len(ids)} tokens (the model's context)"] if len(ids) > n_ctx else []
    return Probe(text=text, ids=ids[-n_ctx:], dropped_ids=ids[:-n_ctx] if len(ids) > n_ctx else [],
                 warnings=warnings, chat=sequence["chat"])


def visualize(ctx: Context, job: Job, text: str | None, chat: bool, sequence: dict | None, tags: tuple[str, ...]) -> dict:
    import visualizer.store.traces as store
    from visualizer.model.probe import prepare_probe
    from visualizer.pipeline import compute_run, write_run

    probe = generation_probe(ctx, sequence) if sequence is not None else prepare_probe(ctx.loaded, text, chat=chat)
    for message in probe.warnings:
        job.emit("warning", {"message": message})
    job.emit("progress", {"stage": f"capture and analysis of {len(probe.ids)} tokens"})
    run = compute_run(ctx.loaded, probe, ctx.top_k)
    job.check_cancel()
    job.emit("progress", {"stage": "figures and page"})
    reports = ctx.site / ctx.model_folder
    staging = reports / f".new-{job.id}"
    write_run(staging, run, [ctx.store])
    manifest = store.save(staging, ctx.checkpoint, store.StoreOptions(root=ctx.store, tags=tags))
    final = reports / manifest["id"]
    if final.exists():
        raise VisualizerError(f"{final}: already exists; the new report stays in {staging}")
    os.rename(staging, final)
    index_site(ctx.site)
    return {"trace": manifest["id"], "url": report_url(ctx.loaded.name, manifest["id"]),
            "tokens": len(probe.ids), "verification_passed": run.trace["verification_passed"]}


def index_site(site: Path) -> None:
    """The site's index.html (every report below it), as `report` writes it for several probes:
    the reports' "all reports" link lands there."""
    import visualizer.site.common as pages
    from visualizer.artefacts.folder import update_site_root

    files, _ = pages.site_index_files(site)
    update_site_root(site, files, flag="--site")


def compare(ctx: Context, job: Job, a: str, b: str) -> dict:
    import visualizer.store.compare as comparison
    import visualizer.store.traces as store

    side_a = comparison.Side(store.open_trace(ctx.store, a))
    side_b = comparison.Side(store.open_trace(ctx.store, b))
    job.check_cancel()
    result = comparison.compare(side_a, side_b)
    name = f"{a}_{b}"
    comparison.write_site(ctx.site / COMPARISONS / name, side_a, side_b, result, [ctx.store])
    nt = result["next_token"]
    return {"url": f"/site/{COMPARISONS}/{name}/index.html", "positions": result["positions"], "mode": result["mode"],
            "mean_kl_bits": nt["mean_kl_bits"] if nt else None}
