"""One run of the plain command: load once, then for each probe capture -> trace -> page, atomically.

What this module does not do: parse arguments (cli.py), know a model family (families/), or write
HTML itself (site.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from safetensors.torch import load_file

import visualizer.analysis.summary as analysis
import visualizer.analysis.attribution as attribution
import visualizer.figures.plan as plots
import visualizer.site.report as render
import visualizer.site.common as site
import visualizer.store.traces as store
from visualizer.capture import capture
from visualizer.config import Config
from visualizer.errors import VisualizerError
from visualizer.model.base import LoadedModel, slug
from visualizer.model.registry import DEMO_CHECKPOINT, DEMO_META, load_model, resolve_family
from visualizer.analysis.report_data import build_report_data
from visualizer.artefacts.trace import Probe, build_trace, dumps, write_trace

VISUALIZATIONS = Path("visualizations")


def say(config: Config, message: str) -> None:
    if not config.quiet:
        print(message, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def probe_slug(text: str) -> str:
    return f"{slug(text, 40)}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"


def probe_folder(probe: Probe) -> str:
    return probe_slug(("chat " if probe.chat else "") + probe.text)


def prepare_probe(loaded: LoadedModel, text: str, chat: bool = False) -> Probe:
    """Encode a probe (or a chat message); keep its last n_ctx tokens (with a warning) when longer."""
    encoded = loaded.adapter.encode_chat(loaded, text) if chat else loaded.adapter.encode_probe(loaded, text)
    ids, warnings = list(encoded.ids), list(encoded.warnings)
    if not ids:
        raise VisualizerError("the probe encodes to no tokens")
    n_ctx = loaded.dims.n_ctx
    dropped = ids[:-n_ctx] if len(ids) > n_ctx else []
    if dropped:
        warnings.append(
            f"the probe has {len(ids)} tokens, more than the model's context of {n_ctx}: "
            f"kept the last {n_ctx}, dropped the first {len(dropped)}"
        )
    return Probe(text=text, ids=ids[-n_ctx:], dropped_ids=dropped, warnings=warnings, chat=chat)


def write_report(loaded: LoadedModel, probe: Probe, folder: Path, top_k: int,
                 attribution_options: attribution.AttributionOptions | None = None) -> dict:
    cache = capture(loaded, probe.ids)
    trace = build_trace(loaded, probe, cache, top_k)
    report_data = build_report_data(loaded, cache, probe.ids, top_k)
    analysed = analysis.analyze(cache.tensors, trace, report_data, loaded.tokenizer.token_str)
    attributed = attribution.attribute(loaded, cache, probe.ids, attribution_options)
    with site.atomic_folder(folder) as tmp:
        write_trace(tmp, trace, cache)
        (tmp / "report_data.json").write_text(dumps(report_data, compact=True), encoding="utf-8")
        (tmp / "analysis.json").write_text(dumps(analysed, compact=True), encoding="utf-8")
        (tmp / "attribution.json").write_text(dumps(attributed, compact=True), encoding="utf-8")
        render_pages(tmp, trace, cache.tensors, report_data)
    return trace


def render_pages(folder: Path, trace: dict, tensors: dict, report_data: dict) -> None:
    """Figures (parallel PNGs) then the page and its data files, from the run's data alone."""
    figures = plots.render_figures(folder, plots.plan_figures(trace, tensors, report_data), workers=plots.default_workers())
    render.render_folder(folder, figures)


def render_from_files(folder: Path) -> None:
    """Rebuild a report's figures and page from its files alone (trace.json, report_data.json,
    activations.safetensors, and analysis.json / attribution.json when present): no model and no
    forward pass. `render ID` ends here; the plain run draws the same from the tensors in memory."""
    trace = json.loads((folder / "trace.json").read_text(encoding="utf-8"))
    report_data = json.loads((folder / "report_data.json").read_text(encoding="utf-8"))
    tensors = {name: t.float() for name, t in load_file(str(folder / "activations.safetensors")).items()}
    render_pages(folder, trace, tensors, report_data)


def resolve_paths(config: Config) -> tuple[Path, Path | None]:
    if config.checkpoint is None:
        return DEMO_CHECKPOINT, config.meta or DEMO_META
    return config.checkpoint, config.meta


def run(config: Config) -> int:
    checkpoint, meta = resolve_paths(config)
    family, why = resolve_family(checkpoint, config.family)
    say(config, f"family {family} ({why})")
    loaded = load_model(checkpoint, meta, config.device, family=family, step=config.step, tokenizer=config.tokenizer)
    say(config, f"loaded {loaded.family} model '{loaded.name}' ({loaded.card['n_params']:,} parameters, "
        f"{loaded.dims.n_layer} layers, {loaded.dims.n_head} heads, d_model {loaded.dims.d_model}; "
        f"tokenizer {loaded.tokenizer.describe()})")
    probes = [prepare_probe(loaded, text) for text in config.probes]  # every probe checked before writing
    probes += [prepare_probe(loaded, text, chat=True) for text in config.chats]
    attribution.check_options(loaded, [len(p.ids) for p in probes], config.attribution)
    if config.store is not None:
        store.check_root(config.store.root)
    single = len(probes) == 1
    if config.out is not None:
        site_root = None if single else config.out
        folders = [config.out] if single else [config.out / probe_folder(p) for p in probes]
    else:
        site_root = VISUALIZATIONS
        folders = [VISUALIZATIONS / loaded.name / probe_folder(p) for p in probes]
    failed = False
    for probe, folder in zip(probes, folders):
        for message in probe.warnings:
            warn(message)
        trace = write_report(loaded, probe, folder, config.top_k, config.attribution)
        if config.store is not None:  # every run is kept in the trace store unless --no-store
            manifest = store.save(folder, checkpoint, config.store)
            say(config, f"trace: {manifest['id']} in {config.store.root}")
        if not trace["verification_passed"]:
            failed = True
            for name, check in trace["verification"].items():
                if not check["passed"]:
                    print(f"VERIFICATION FAILED: {name}: max abs error {check['max_abs_error']} > "
                          f"{check['tolerance']}", file=sys.stderr)
        best = trace["next_tokens"][0]
        say(config, f"{len(probe.ids)} tokens; verification {'passed' if trace['verification_passed'] else 'FAILED'}; "
            f"next token {best['readable']!r} ({best['prob']:.3f})")
        say(config, f"report: {folder / 'index.html'}")
    if site_root is not None:
        index = site.write_site_index(site_root)
        say(config, f"site index: {index}")
    return 3 if failed else 0
