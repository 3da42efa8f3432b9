"""What each command does, stage by stage: load -> compute -> write -> store.

- report: load once, then for each probe capture (verified) -> analyse -> write the report folder
  atomically -> keep it in the trace store;
- render: a stored trace's folder -> its figures and page again, with no model;
- generate: load -> decode step by step -> the generation folder (with the prompt's report);
- patch: load -> capture both probes (texts, or stored traces) -> patching sweeps and ablation -> the
  "what if" folder with both runs' reports; render redraws it from its files.

Compute returns a `RunResult`; `write_run` alone turns one into a report folder.

What this module does not do: parse arguments (cli/), merge settings (config.py), know a model
family (model/), draw (figures/) or write HTML (site/).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import visualizer.analysis.attribution as attribution
import visualizer.analysis.summary as analysis
import visualizer.figures.plan as plots
import visualizer.site.common as site
import visualizer.site.report as render
import visualizer.store.traces as store
from visualizer.analysis.distributions import log_probs, token_table
from visualizer.analysis.report_data import build_report_data
from visualizer.analysis.stats import summarize
from visualizer.artefacts import layout
from visualizer.artefacts.folder import atomic_folder, check_site_root, check_target, update_site_root
from visualizer.artefacts.run_files import RunFiles, read_run_files, write_run_files
from visualizer.artefacts.trace import build_trace, write_activations_file
from visualizer.capture import Cache, capture
from visualizer.config import Config, GenerateConfig, ModelSource, PatchConfig
from visualizer.errors import VisualizerError, one_line
from visualizer.model.base import LoadedModel, slug
from visualizer.model.probe import Probe, prepare_probe
from visualizer.model.registry import demo_paths, load_model, resolve_family

VISUALIZATIONS = Path("visualizations")


def say(quiet: bool, message: str) -> None:
    if not quiet:
        print(one_line(message), flush=True)


def warn(message: str) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


def probe_slug(text: str) -> str:
    return f"{slug(text, 40)}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"


def probe_folder(probe: Probe) -> str:
    return probe_slug(("chat " if probe.chat else "") + probe.text)


# --- load -------------------------------------------------------------------------------------------


def checkpoint_paths(source: ModelSource) -> tuple[Path, Path | None]:
    """The checkpoint and meta to read: the embedded demo when no checkpoint is given."""
    if source.checkpoint is None:
        return demo_paths(source.family, source.meta)
    return source.checkpoint, source.meta


def open_model(source: ModelSource, quiet: bool) -> LoadedModel:
    checkpoint, meta = checkpoint_paths(source)
    family, why = resolve_family(checkpoint, source.family)
    say(quiet, f"family {family} ({why})")
    loaded = load_model(checkpoint, meta, source.device, family=family, step=source.step, tokenizer=source.tokenizer)
    say(quiet, f"loaded {loaded.family} model '{loaded.name}' ({loaded.card['n_params']:,} parameters, "
        f"{loaded.dims.n_layer} layers, {loaded.dims.n_head} heads, d_model {loaded.dims.d_model}; "
        f"tokenizer {loaded.tokenizer.describe()})")
    return loaded


# --- compute ----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """Everything one probe's report shows, computed from the model; written by `write_run`."""

    probe: Probe
    cache: Cache
    trace: dict
    report_data: dict
    analysis: dict
    attribution: dict
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time, for the benchmark


def trace_record(loaded: LoadedModel, probe: Probe, cache: Cache, top_k: int = 10) -> dict:
    """trace.json's record of a captured run: next-token table and tensor statistics computed here."""
    last = cache["logits"][-1:]  # [1, vocab]
    next_tokens = token_table(log_probs(last), last, loaded.tokenizer.token_str, top_k)[0]
    return build_trace(loaded, probe, cache, next_tokens, summarize(cache.tensors))


def analyse_run(loaded: LoadedModel, probe: Probe, cache: Cache, top_k: int = 10,
                attribution_options: attribution.AttributionOptions | None = None) -> RunResult:
    """Everything after capture: the trace record, the page's data, the analysis, the attribution."""
    seconds: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        seconds[name] = time.perf_counter() - start
        return value

    trace = timed("trace", lambda: trace_record(loaded, probe, cache, top_k))
    target = attribution.resolve_target(loaded, cache["logits"], attribution_options or attribution.AttributionOptions())
    report_data = timed("report data", lambda: build_report_data(loaded, cache, probe.ids, top_k, target))
    analysed = timed("analysis", lambda: analysis.analyze(cache.tensors, trace, report_data, loaded.tokenizer.token_str))
    attributed = timed("attribution", lambda: attribution.attribute(loaded, cache, probe.ids, attribution_options))
    return RunResult(probe=probe, cache=cache, trace=trace, report_data=report_data, analysis=analysed,
                     attribution=attributed, seconds=seconds)


def compute_run(loaded: LoadedModel, probe: Probe, top_k: int = 10,
                attribution_options: attribution.AttributionOptions | None = None) -> RunResult:
    """Capture (verified) and analyse one probe."""
    start = time.perf_counter()
    cache = capture(loaded, probe.ids)
    captured = time.perf_counter() - start
    run = analyse_run(loaded, probe, cache, top_k, attribution_options)
    run.seconds = {"capture + verify": captured, **run.seconds}
    return run


# --- write ------------------------------------------------------------------------------------------


def render_pages(folder: Path, files: RunFiles, index_href: str | None = None, figures: str = "auto",
                 meanwhile: Callable[[], None] | None = None) -> None:
    """Figures (parallel PNGs, as many as the figure mode `figures` draws: plots.MODES) then the page
    and its data files, from the run's data alone; index_href: the page's link to its site index
    (site.site_index_href), None for none; meanwhile: work for this process while the figures are
    drawn (done before the page, which reads the folder's files)."""
    jobs = plots.plan_figures(files.trace, files.tensors, files.report_data, figures)
    drawn = plots.render_figures(folder, jobs, workers=plots.default_workers(), meanwhile=meanwhile)
    render.render_folder(folder, drawn, index_href, plots.figures_note(figures, len(files.trace["token_ids"])))


def write_run(folder: Path, run: RunResult, protected: list[Path] = (), site_root: Path | None = None,
              figures: str = "auto") -> None:
    """The report folder of one run, written atomically: data files, figures (figure mode
    `figures`), page. site_root: the site root whose index is written with it (else an existing one
    above the folder, if any)."""
    index_href = site.site_index_href(folder, site_root)
    with atomic_folder(folder, "report", protected) as tmp:
        files = write_run_files(tmp, run.trace, run.cache.tensors, run.report_data, run.analysis, run.attribution,
                                activations=False)  # written while the figures are drawn
        render_pages(tmp, files, index_href, figures,
                     meanwhile=lambda: write_activations_file(tmp / layout.ACTIVATIONS, run.cache.tensors))


def write_report(loaded: LoadedModel, probe: Probe, folder: Path, top_k: int = 10,
                 attribution_options: attribution.AttributionOptions | None = None, protected: list[Path] = (),
                 site_root: Path | None = None, figures: str = "auto") -> dict:
    """compute_run + write_run; returns the trace record."""
    run = compute_run(loaded, probe, top_k, attribution_options)
    write_run(folder, run, protected, site_root, figures)
    return run.trace


def render_from_files(folder: Path) -> None:
    """Rebuild a report's figures and page from its files alone (no model, no forward pass)."""
    render_pages(folder, read_run_files(folder, str(folder)), site.site_index_href(folder))


def report_verdict(verification: dict) -> bool:
    """Print each failed check of a verification (name -> check); True when every one passed."""
    for name, check in verification.items():
        if not check["passed"]:
            detail = f" ({check['detail']})" if check.get("detail") else ""
            print(f"VERIFICATION FAILED: {name}: max abs error {check['max_abs_error']} > {check['tolerance']}{detail}",
                  file=sys.stderr)
    return all(check["passed"] for check in verification.values())


# --- commands ---------------------------------------------------------------------------------------


def run_report(config: Config) -> int:
    """The report command: one folder per probe (and the site index when writing under a site root)."""
    if config.out is not None:  # a careless --out is refused before the model is loaded
        if len(config.probes) + len(config.chats) == 1:
            check_target(config.out, "report", config.protected)
        else:
            check_site_root(config.out, site.site_index_names())
    loaded = open_model(config.model, config.quiet)
    checkpoint, _ = checkpoint_paths(config.model)
    probes = [prepare_probe(loaded, text) for text in config.probes]  # every probe checked before writing
    probes += [prepare_probe(loaded, text, chat=True) for text in config.chats]
    attribution.check_options(loaded, [len(p.ids) for p in probes], config.attribution)
    single = len(probes) == 1
    if config.out is not None:
        site_root = None if single else config.out
        folders = [config.out] if single else [config.out / probe_folder(p) for p in probes]
    else:
        site_root = VISUALIZATIONS
        folders = [VISUALIZATIONS / loaded.name / probe_folder(p) for p in probes]
    # every target checked before the first is written: a careless --out costs nothing
    for folder in folders:
        check_target(folder, "report", config.protected)
    if site_root is not None:
        check_site_root(site_root, site.site_index_names())
    if config.store is not None:
        store.check_root(config.store.root)
    failed = False
    for probe, folder in zip(probes, folders):
        for message in probe.warnings:
            warn(message)
        trace = write_report(loaded, probe, folder, config.top_k, config.attribution, config.protected, site_root,
                             config.figures)
        if config.store is not None:  # every run is kept in the trace store unless --no-store
            manifest = store.save(folder, checkpoint, config.store)
            say(config.quiet, f"trace: {manifest['id']} in {config.store.root}")
        failed |= not report_verdict(trace["verification"])
        best = trace["next_tokens"][0] if trace["next_tokens"] else None  # none when the logits are not finite
        say(config.quiet, f"{len(probe.ids)} tokens; verification {'passed' if trace['verification_passed'] else 'FAILED'}; "
            + (f"next token {best['readable']!r} ({best['prob']:.3f})" if best else "no next token (the logits are not finite)"))
        say(config.quiet, f"report: {folder / 'index.html'}")
    if site_root is not None:
        files, skipped = site.site_index_files(site_root)
        for line in skipped:
            warn(f"site index: skipped a damaged report ({line})")
        index = update_site_root(site_root, files)
        say(config.quiet, f"site index: {index / 'index.html'}")
    return 3 if failed else 0


def render_trace(root: Path, ref: str, out: Path) -> Path:
    """`render ID`: a stored trace's report, rebuilt from its files into `out` (a patch folder's
    page and reports when `ref` is a folder holding patching.json)."""
    if (Path(ref) / layout.PATCHING).is_file() and not (Path(ref) / layout.TRACE).is_file():
        return render_patch(Path(ref), Path(out), [root])
    stored = store.open_trace(root, ref)
    if Path(out).resolve() == stored.folder.resolve():
        raise VisualizerError(f"--out {out}: that is the trace itself; choose another folder")
    check_renderable(stored)
    with atomic_folder(Path(out), "report", [root]) as tmp:
        rebuild_report(stored.folder, tmp, f"trace {stored.name}", site.site_index_href(Path(out)))
    return Path(out) / "index.html"


def rebuild_report(source: Path, tmp: Path, label: str, index_href: str | None) -> None:
    """A report's data files copied from `source` into `tmp`, then its figures and page drawn from
    them alone (an analysis missing from a stored trace is computed again from its files)."""
    from visualizer.artefacts.trace import dumps

    for name in layout.DATA_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp / name)
    files = read_run_files(tmp, label)
    if files.analysis is None:  # a trace stored without one: analysed again from its files
        analysed = analysis.analyze(files.tensors, files.trace, files.report_data)
        (tmp / layout.ANALYSIS).write_text(dumps(analysed, compact=True), encoding="utf-8")
    render_pages(tmp, files, index_href)


def render_patch(folder: Path, out: Path, protected: list[Path] = ()) -> Path:
    """`render DIR` of a patch folder: its page and its runs' reports again, from patching.json and
    the reports' data files alone (no model, no forward pass): the same bytes as the folder the
    patch command wrote."""
    from visualizer.site.patching import read_patching, render_patching

    folder, out = Path(folder), Path(out)
    if out.resolve() == folder.resolve():
        raise VisualizerError(f"--out {out}: that is the patch folder itself; choose another folder")
    record = read_patching(folder / layout.PATCHING)
    with atomic_folder(out, "patch", protected) as tmp:
        for run in layout.PATCH_RUNS:
            if (folder / run / layout.TRACE).is_file():
                with atomic_folder(tmp / run, "report") as sub:
                    rebuild_report(folder / run, sub, str(folder / run), site.site_index_href(out / run))
        shutil.copyfile(folder / layout.PATCHING, tmp / layout.PATCHING)
        render_patching(tmp, record)
    return out / "index.html"


def check_renderable(stored: store.StoredTrace) -> None:
    """The report page needs report_data.json and every layer's attention pattern."""
    kept = (stored.manifest or {}).get("kept", {})
    if kept and not kept.get("all_groups") and "attn" not in kept["groups"]:
        raise VisualizerError(f"trace {stored.name}: stored with --keep {','.join(kept['groups'])}, without the attention "
                              "patterns the report page draws; it cannot be rendered (traces show and compare still work)")
    if not (stored.folder / layout.REPORT_DATA).is_file():
        raise VisualizerError(f"trace {stored.name}: {layout.REPORT_DATA}: missing (the report page needs it)")


def recording_bytes_per_step(loaded: LoadedModel) -> int:
    """Peak memory one generated token's record costs (measured on the demo: about 250 bytes per
    recorded attention weight once written out, plus the per-layer logit-lens rows as float32)."""
    d = loaded.dims
    return 250 * d.n_layer * d.n_head * d.n_ctx + 4 * d.vocab_size * (d.n_layer + 3) + 50_000


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def check_generation_memory(loaded: LoadedModel, max_new_tokens: int) -> None:
    """Refuse up front a generation whose recording would not fit in half of this machine's memory."""
    per_step = recording_bytes_per_step(loaded)
    budget = physical_memory() // 2
    if max_new_tokens * per_step > budget:
        raise VisualizerError(
            f"--max-new-tokens {max_new_tokens}: recording every step would need about "
            f"{max_new_tokens * per_step / 2**30:.1f} GiB, more than half of this machine's {2 * budget / 2**30:.0f} GiB; "
            f"ask for at most {max(1, budget // per_step):,}")


def run_generate(config: GenerateConfig) -> int:
    """The generate command: continue the prompt, then write the generation view and the prompt's report."""
    from visualizer.artefacts.trace import dumps
    from visualizer.figures.generation import write_snapshots
    from visualizer.generation.decode import generate
    from visualizer.generation.record import build_record
    from visualizer.site.generation import render_generation

    loaded = open_model(config.model, quiet=True)
    check_generation_memory(loaded, config.max_new_tokens)
    probe = prepare_probe(loaded, config.prompt, chat=config.chat)
    out = config.out or VISUALIZATIONS / loaded.name / f"generate-{probe_folder(probe)}"
    check_target(out, "generation", config.protected)  # refuse a foreign folder before spending time generating
    for message in probe.warnings:
        warn(message)
    say(config.quiet, f"loaded {loaded.family} model '{loaded.name}'; generating up to {config.max_new_tokens} tokens "
        f"after {len(probe.ids)} prompt tokens")
    progress = None
    if not config.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(total=config.max_new_tokens, unit="tok", file=sys.stderr, leave=False)
    try:
        gen = generate(loaded, probe.ids, config.max_new_tokens, config.sampling,
                       on_step=(lambda step: progress.update(1)) if progress else None)
    finally:
        if progress is not None:
            progress.close()
    record = build_record(loaded, probe, gen, config.sampling, config.max_new_tokens, config.candidates)
    with atomic_folder(out, "generation", config.protected) as tmp:
        prompt_trace = write_report(loaded, probe, tmp / "prompt", config.candidates)
        (tmp / layout.GENERATION).write_text(dumps(record), encoding="utf-8")
        (tmp / "output.txt").write_text(record["output"], encoding="utf-8")
        render_generation(tmp, record, write_snapshots(tmp, record, config.snapshot_every))
    failed = not report_verdict({**record["verification"], **prompt_trace["verification"]})
    if gen.slides:
        bos = getattr(loaded.tokenizer, "bos_id", None)
        dropped = " (the prompt's first token, BOS, is cropped away with it)" if bos is not None and probe.ids[0] == bos else ""
        say(config.quiet, f"the context reached block_size {loaded.dims.n_ctx} at step {gen.slides[0]}: cropped to the "
            f"last {loaded.dims.n_ctx} tokens from then on{dropped}, cache rebuilt at {len(gen.slides)} steps")
    stop = {"max_new_tokens": "max tokens", "stop_string": f"stop string {gen.stop_string!r}",
            "no_allowed_token": "every token banned"}[gen.stop_reason]
    say(config.quiet, f"{len(gen.steps)} tokens generated (stopped: {stop}); verification {'FAILED' if failed else 'passed'}")
    say(config.quiet, f"generation: {out / 'index.html'}")
    return 3 if failed else 0


def progress_bar(quiet: bool, total: int, unit: str):
    """A tqdm bar on stderr when it is a terminal and the run is not quiet; else None."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False)


def patch_probes(config: PatchConfig) -> tuple[LoadedModel, dict[str, Probe], dict[str, str]]:
    """The model and the probes of a patch run ('clean', and 'corrupt' unless ablation only): texts
    encoded by the model; stored traces read as they were run (their token ids), from one model, which
    is loaded from their manifest unless --checkpoint is given and must have their weights' sha256.
    Also run -> the id of the trace it came from."""
    from visualizer.store.probes import check_fits, check_loaded_model, check_one_model, read_stored_probe

    refs = {"clean": config.clean_trace, "corrupt": config.corrupt_trace}
    stored = {run: read_stored_probe(config.store, ref, f"--{run}-trace") for run, ref in refs.items() if ref is not None}
    check_one_model(list(stored.values()))  # before a model is loaded
    source = config.model
    if config.model_from_traces:
        first = next(iter(stored.values()))
        source = replace(source, checkpoint=Path(first.checkpoint), family=source.family or first.family,
                         step=first.step if source.step is None else source.step)
        say(config.quiet, f"model of trace {first.trace}: {first.checkpoint} (family {source.family}, as stored)")
    loaded = open_model(source, config.quiet)
    probes = {}
    for run, text in (("clean", config.clean), ("corrupt", config.corrupt)):
        if run in stored:
            found = stored[run]
            check_loaded_model(found, loaded.card.get("checkpoint_sha256"), checkpoint_paths(source)[0])
            check_fits(found, loaded.dims.vocab_size, loaded.dims.n_ctx)
            probes[run] = Probe(text=found.text, ids=list(found.ids), chat=found.chat)
        elif text is not None:
            probes[run] = prepare_probe(loaded, text)
    return loaded, probes, {run: found.trace for run, found in stored.items()}


def run_patch(config: PatchConfig) -> int:
    """The patch command: both probes captured (and reported), every sweep and the ablation run, the
    folder written: the "what if" page, patching.json and each run's report in its subfolder."""
    from visualizer.analysis.interventions.ablation import parse_knockout
    from visualizer.analysis.interventions.record import compute_patching, planned_runs
    from visualizer.artefacts.trace import dumps
    from visualizer.site.patching import render_patching

    loaded, probes, traces = patch_probes(config)
    clean, corrupt = probes["clean"], probes.get("corrupt")

    def named(run: str) -> str:
        return f"--{run}-trace {traces[run]}" if run in traces else f"--{run}"

    if corrupt is not None and len(clean.ids) != len(corrupt.ids):
        raise VisualizerError(f"{named('clean')} has {len(clean.ids)} tokens and {named('corrupt')} has {len(corrupt.ids)}: "
                              "patching writes one run's activations into the other, position by position, so both must "
                              "have the same number of tokens")
    T = len(clean.ids)
    knockouts = [parse_knockout(text, loaded, T) for text in config.knockouts]
    data = [prepare_probe(loaded, text) for text in config.ablation_data]
    out = config.out or VISUALIZATIONS / loaded.name / f"patch-{probe_slug(clean.text)}"
    check_target(out, "patch", config.protected)  # refuse a foreign folder before the sweeps run
    for run, probe in probes.items():
        for message in probe.warnings:
            warn(f"{named(run)}: {message}")
    # each run captured (verified) and analysed once: its report, and the patching's activations
    runs = {run: compute_run(loaded, probe) for run, probe in probes.items()}
    total = planned_runs(loaded, T, config.options, len(knockouts), sweeps=corrupt is not None)
    say(config.quiet, f"{'patching' if corrupt is not None else 'ablation only (no corrupt probe), on'} {T} positions: "
        f"about {total:,} patched runs")
    progress = progress_bar(config.quiet, total, "run")
    try:
        record = compute_patching(loaded, clean, corrupt, config.options, data, knockouts,
                                  on_rows=progress.update if progress else None,
                                  caches={run: result.cache for run, result in runs.items()}, traces=traces)
    finally:
        if progress is not None:
            progress.close()
    text = dumps(record)
    with atomic_folder(out, "patch", config.protected) as tmp:
        for run, result in runs.items():
            write_run(tmp / run, result)
        (tmp / layout.PATCHING).write_text(text, encoding="utf-8")
        render_patching(tmp, json.loads(text))  # the page from the file's contents, as a re-render reads them
    failed = not report_verdict(record["verification"])
    metric = record["metric"]
    done = (f"{record['runs']:,} patched runs in {record['forwards']:,} forwards; "
            f"verification {'FAILED' if failed else 'passed'}")
    answer = metric["answer"]["readable"]
    if corrupt is None:
        say(config.quiet, f"answer {answer!r}: logit {record['ablation']['baseline']['target_logit']:.4g}; {done}")
    else:
        say(config.quiet, f"answer {answer!r} vs wrong {metric['wrong']['readable']!r}: logit difference clean "
            f"{metric['clean_logit_diff']:.4g}, corrupt {metric['corrupt_logit_diff']:.4g}; {done}")
    skipped = [name for name, sweep in record["sweeps"].items() if "skipped" in sweep]
    for name in skipped:
        say(config.quiet, f"{name} skipped: {record['sweeps'][name]['skipped']}")
    say(config.quiet, f"patching: {out / 'index.html'}")
    return 3 if failed else 0
