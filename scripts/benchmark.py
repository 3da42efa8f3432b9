"""Stage timings of one report run, in one process: load, plain forward, capture (+ verify), write.

    python scripts/benchmark.py                  # 6-layer, 6-head, 384-wide char model, 48 tokens
    python scripts/benchmark.py --large          # also 12 layers, 12 heads, 768 wide, 1024 tokens
    python scripts/benchmark.py --json out.json  # the same numbers, machine-readable

The models are random (seeded) nanoGPT checkpoints written by `tests/factories.make_checkpoint`
into a temporary folder, so the numbers measure the tool, not a particular training run. Every
stage is timed cold (its first call in this process) and warm (the median of `--repeats` more
calls). The targets from the project's issue are checked on warm medians:
  capture with verification <= 1.5 x the plain forward of the same model;
  load + capture + write < 2 s for the 6-layer model with a 48-token probe (2 threads).

To add a stage (generation, integrated gradients, ...): write `def stage_NAME(run: Run) -> None`
doing one unit of work on `run` (the loaded model, probe ids and cache are there), and add a
`Stage` to `STAGES`. Stages run in list order; a stage may rely on the ones before it.

What this script does not do: decide pass/fail for CI (the machine is shared; timings are noisy),
or keep any file it wrote.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before torch is imported: the import is part of a cold start

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from tests.support.nanogpt import char_vocab, make_checkpoint  # noqa: E402
import visualizer.analysis.summary as analysis  # noqa: E402
import visualizer.analysis.attribution as attribution  # noqa: E402
import visualizer.pipeline as report  # noqa: E402
import visualizer.capture as capture_module  # noqa: E402
from visualizer.artefacts.run_files import RunFiles  # noqa: E402
from visualizer.model.probe import prepare_probe  # noqa: E402
from visualizer.capture.attention import derive_attention  # noqa: E402
from visualizer.capture.hooks import hooked  # noqa: E402
from visualizer.capture.verify import verify  # noqa: E402
from visualizer.model.registry import load_model  # noqa: E402
from visualizer.analysis.report_data import build_report_data  # noqa: E402

T_IMPORTED = time.perf_counter()

SHAKESPEARE_CHARS = char_vocab("\n !$&',-.3:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz")
SMALL_PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"[:48]
CAPTURE_TARGET_RATIO = 1.5
SMALL_TOTAL_TARGET_S = 2.0
TOP_K = 10  # the command's default --top-k


@dataclass
class ModelSpec:
    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab: list[str]
    probe: str


def small_spec() -> ModelSpec:
    assert len(SHAKESPEARE_CHARS) == 65 and len(SMALL_PROBE) == 48
    return ModelSpec("6L-6H-384 char, 48 tokens", 6, 6, 384, 256, SHAKESPEARE_CHARS, SMALL_PROBE)


def large_spec(vocab_size: int, tokens: int) -> ModelSpec:
    # single characters (a char-level vocabulary) from the BMP, skipping surrogates
    codes = [c for c in range(0x100, 0x10000) if not 0xD800 <= c <= 0xDFFF][:vocab_size]
    vocab = [chr(c) for c in codes]
    rng = random.Random(0)
    probe = "".join(rng.choice(vocab) for _ in range(tokens))
    return ModelSpec(f"12L-12H-768 char vocab {vocab_size}, {tokens} tokens", 12, 12, 768, tokens, vocab, probe)


@dataclass
class Run:
    """What the stages share: the model's files, then whatever earlier stages produced."""

    spec: ModelSpec
    workdir: Path
    checkpoint: Path
    meta: Path
    loaded: object = None
    probe: object = None
    ids: torch.Tensor | None = None  # [T]
    cache: object = None
    writes: int = 0
    part_store: dict = field(default_factory=dict)  # capture's parts, stage by stage
    part_derived: dict = field(default_factory=dict)
    part_tensors: dict = field(default_factory=dict)
    trace: dict = field(default_factory=dict)  # write's parts, stage by stage
    report_data: dict = field(default_factory=dict)
    last_report: Path | None = None


# --- stages: each does one unit of work on `run` ------------------------------------------------


def stage_load(run: Run) -> None:
    run.loaded = load_model(run.checkpoint, run.meta, "cpu")


def stage_probe(run: Run) -> None:
    run.probe = prepare_probe(run.loaded, run.spec.probe)
    run.ids = torch.tensor(run.probe.ids, dtype=torch.long)
    assert len(run.probe.ids) == len(run.spec.probe), "one token per character expected"


@torch.inference_mode()
def stage_plain_forward(run: Run) -> None:
    run.loaded.adapter.plain_forward(run.loaded, run.ids)


def stage_capture(run: Run) -> None:
    run.cache = capture_module.capture(run.loaded, run.probe.ids)
    if not run.cache.passed:
        raise SystemExit(f"verification failed: {run.cache.failures()}")


# The parts of capture(), each timed on its own, using capture.py's own functions in its order.
# They explain the capture figure; the headline figure above is capture() itself.


@torch.inference_mode()
def stage_part_hooked_forward(run: Run) -> None:
    loaded = run.loaded
    run.part_store.clear()
    with hooked(loaded.model, loaded.adapter.hook_specs(loaded.dims), run.part_store):
        loaded.adapter.plain_forward(loaded, run.ids)


@torch.inference_mode()
def stage_part_derive_attention(run: Run) -> None:
    store = dict(run.part_store)  # derive_attention adds keys; keep the hooked forward's store intact
    derive_attention(run.loaded, store)
    run.part_derived = store


@torch.inference_mode()
def stage_part_to_cpu(run: Run) -> None:
    run.part_tensors = {n: t.detach().to("cpu", torch.float32).contiguous() for n, t in run.part_derived.items()}


@torch.inference_mode()
def stage_part_verify(run: Run) -> None:
    """Verification = one unhooked forward + the identities; the forward is what proves the hooks inert."""
    plain_logits = run.loaded.adapter.plain_forward(run.loaded, run.ids)
    verify(run.loaded, run.part_tensors, plain_logits.to("cpu", torch.float32))


@torch.inference_mode()
def stage_part_verify_identities(run: Run) -> None:
    plain_logits = run.part_tensors["logits"]
    verify(run.loaded, run.part_tensors, plain_logits)


def stage_write(run: Run) -> None:
    """Everything a run does after capture (trace, report data, analysis, attribution, files,
    figures and page): pipeline.analyse_run on the cache already made, then pipeline.write_run."""
    run.writes += 1
    folder = run.workdir / f"report-{run.writes}"
    result = report.analyse_run(run.loaded, run.probe, run.cache, TOP_K)
    report.write_run(folder, result)
    run.trace, run.report_data = result.trace, result.report_data
    run.last_report = folder


# The parts of the write, each through the public function analyse_run calls. They explain the
# write figure; whatever it does besides them (writing the files) is the remainder.


def stage_part_trace(run: Run) -> None:
    run.trace = report.trace_record(run.loaded, run.probe, run.cache, TOP_K)


def stage_part_report_data(run: Run) -> None:
    run.report_data = build_report_data(run.loaded, run.cache, run.probe.ids, TOP_K)


def stage_part_analysis(run: Run) -> None:
    analysis.analyze(run.cache.tensors, run.trace, run.report_data, run.loaded.tokenizer.token_str)


def stage_part_attribution(run: Run) -> None:
    attribution.attribute(run.loaded, run.cache, run.probe.ids, None)


def stage_part_pages(run: Run) -> None:
    """Figures and page of the last written report, drawn again in place (as `render` does)."""
    report.render_pages(run.last_report, RunFiles(run.trace, run.cache.tensors, run.report_data, None, None))


def stage_report(run: Run) -> None:
    """report.write_report as the command runs it: capture, verify, analyse, write."""
    run.writes += 1
    report.write_report(run.loaded, run.probe, run.workdir / f"report-{run.writes}", TOP_K)


def stage_cli_cold(run: Run) -> None:
    """A whole `python -m visualizer` in a new process: imports, load, capture, write, trace store."""
    run.writes += 1
    out = run.workdir / f"cli-{run.writes}"
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "NANOGPT_META_PATH", "PROBE_SENTENCE", "OUT", "DEVICE")}
    empty_env = run.workdir / "empty.env"
    empty_env.touch()
    subprocess.run(
        [sys.executable, "-m", "visualizer", "--quiet", "--env-file", str(empty_env), "--checkpoint", str(run.checkpoint),
         "--meta", str(run.meta), "--probe", run.spec.probe, "--out", str(out), "--store", str(run.workdir / "traces")],
        cwd=REPO_ROOT, env=env, check=True,
    )


@dataclass
class Stage:
    name: str
    fn: Callable[[Run], None]
    repeats: bool = True  # False: time the first (cold) call only
    large: bool = True  # False: skipped for --large models (too slow to repeat there)


STAGES: list[Stage] = [
    Stage("load", stage_load),
    Stage("probe (encode)", stage_probe),
    # capture before the plain forward: its cold figure then pays the first forward's one-time set-up,
    # as it does in a real run
    Stage("capture + verify", stage_capture),
    Stage("plain forward", stage_plain_forward),
    Stage("  hooked forward", stage_part_hooked_forward),
    Stage("  derive attention", stage_part_derive_attention),
    Stage("  copy to float32 CPU", stage_part_to_cpu),
    Stage("  verify (forward + identities)", stage_part_verify),
    Stage("    identities only", stage_part_verify_identities),
    Stage("write (all after capture)", stage_write),
    Stage("  trace (trace_record)", stage_part_trace),
    Stage("  report data (build_report_data)", stage_part_report_data),
    Stage("  analysis (analysis.analyze)", stage_part_analysis),
    Stage("  attribution (attribute)", stage_part_attribution),
    Stage("  figures + page (render_pages)", stage_part_pages),
    Stage("report (capture + write)", stage_report),
    Stage("cli, new process", stage_cli_cold, repeats=False, large=False),
]


# --- running and printing ----------------------------------------------------------------------


@dataclass
class Timing:
    cold: float
    warm: list[float] = field(default_factory=list)
    peak_mib: float | None = None  # peak resident memory during the first (cold) call

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else self.cold


def timed(fn: Callable[[Run], None], run: Run) -> float:
    start = time.perf_counter()
    fn(run)
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_stage_peak() -> bool:
    """Start a new peak-memory window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def stage_peak_mib() -> float | None:
    """VmHWM: the peak resident memory since the last reset_stage_peak (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def timed_with_peak(fn: Callable[[Run], None], run: Run) -> tuple[float, float | None]:
    """(seconds, peak resident MiB during the call, or None where it cannot be measured)."""
    measurable = reset_stage_peak()
    seconds = timed(fn, run)
    return seconds, stage_peak_mib() if measurable else None


def bench_model(spec: ModelSpec, repeats: int, is_large: bool, root: Path, stages: list[Stage] = STAGES) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="model-", dir=root))
    t0 = time.perf_counter()
    checkpoint, meta = make_checkpoint(
        workdir / "model", n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd,
        block_size=spec.block_size, vocab=spec.vocab, dataset="bench", seed=0,
    )
    build_s = time.perf_counter() - t0
    run = Run(spec=spec, workdir=workdir, checkpoint=checkpoint, meta=meta)
    timings: dict[str, Timing] = {}
    for stage in stages:
        if is_large and not stage.large:
            continue
        cold, peak = timed_with_peak(stage.fn, run)
        timing = Timing(cold=cold, peak_mib=peak)
        if stage.repeats:
            timing.warm = [timed(stage.fn, run) for _ in range(repeats)]
        timings[stage.name] = timing
        if is_large:  # long stages: show progress
            print(f"  ... {stage.name.strip()}: {timing.cold:.2f} s cold", file=sys.stderr, flush=True)
    n_params = run.loaded.card["n_params"]
    sizes = site_sizes(run.last_report) if run.last_report and (run.last_report / "index.html").is_file() else {}
    return {
        **sizes,
        "model": spec.name,
        "n_params": n_params,
        "tokens": len(run.probe.ids),
        "checkpoint_mib": checkpoint.stat().st_size / 2**20,
        "checkpoint_build_s": build_s,
        "stages": {name: {"cold_s": t.cold, "median_s": t.median, "runs_s": t.warm, "peak_mib": t.peak_mib}
                   for name, t in timings.items()},
        **summary(timings),
        "peak_rss_mib": peak_rss_mib(),
    }


def site_sizes(folder: Path) -> dict:
    """The report's index.html and its whole folder but activations.safetensors (the published site)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {
        "index_html_mib": (folder / "index.html").stat().st_size / 2**20,
        "site_mib_without_activations": sum(p.stat().st_size for p in files if p.name != "activations.safetensors") / 2**20,
        "activations_mib": (folder / "activations.safetensors").stat().st_size / 2**20,
    }


CAPTURE_PARTS_BUT_VERIFY_FORWARD = ("  hooked forward", "  derive attention", "  copy to float32 CPU", "    identities only")
LOAD_CAPTURE_WRITE = ("load", "capture + verify", "write (all after capture)")
WRITE_PARTS = ("  trace (trace_record)", "  report data (build_report_data)", "  analysis (analysis.analyze)",
               "  attribution (attribute)", "  figures + page (render_pages)")


def summary(timings: dict[str, Timing]) -> dict:
    """The figures the targets speak of, each only when the stages it needs were run."""
    med = {name: t.median for name, t in timings.items()}
    cold = {name: t.cold for name, t in timings.items()}
    out = {}
    if "capture + verify" in med and "plain forward" in med:
        out["capture_over_plain_forward"] = med["capture + verify"] / med["plain forward"]
    if all(n in med for n in CAPTURE_PARTS_BUT_VERIFY_FORWARD) and "plain forward" in med:
        # what capture costs besides its verification forward: hooks, derivation, copies, identities
        out["capture_without_verification_forward_over_plain_forward"] = (
            sum(med[n] for n in CAPTURE_PARTS_BUT_VERIFY_FORWARD) / med["plain forward"]
        )
    if all(n in med for n in LOAD_CAPTURE_WRITE):
        out["load_capture_write_s"] = sum(med[n] for n in LOAD_CAPTURE_WRITE)
        out["load_capture_write_cold_s"] = sum(cold[n] for n in LOAD_CAPTURE_WRITE)
    if all(n in med for n in WRITE_PARTS) and LOAD_CAPTURE_WRITE[2] in med:
        # not timed on its own: what write_report spends besides its parts (writing the files)
        out["write_remainder_s"] = med[LOAD_CAPTURE_WRITE[2]] - sum(med[n] for n in WRITE_PARTS)
    return out


def print_model(result: dict, repeats: int) -> None:
    print(f"\n{result['model']}: {result['n_params']:,} parameters, {result['tokens']} tokens, "
          f"checkpoint {result['checkpoint_mib']:.1f} MiB (built in {result['checkpoint_build_s']:.1f} s)")
    print(f"  {'stage':34} {'cold (1st)':>11} {'median':>10} {'peak RSS':>10}  (of {repeats} more)")
    for name, t in result["stages"].items():
        median = f"{t['median_s'] * 1000:9.1f}ms" if t["runs_s"] else f"{'-':>11}"
        peak = f"{t['peak_mib']:7.0f}MiB" if t.get("peak_mib") is not None else f"{'-':>10}"
        print(f"  {name:34} {t['cold_s'] * 1000:9.1f}ms {median} {peak}")
    ratio = result.get("capture_over_plain_forward")
    if ratio is not None:
        print(f"  capture + verify / plain forward: {ratio:.2f}x (target <= {CAPTURE_TARGET_RATIO}x: "
              f"{'met' if ratio <= CAPTURE_TARGET_RATIO else 'NOT met'})")
    without = result.get("capture_without_verification_forward_over_plain_forward")
    if without is not None:
        print(f"    of which the verification's own unhooked forward is one plain forward; without it "
              f"(hooked forward + derive + copy + identities): {without:.2f}x")
    if "write_remainder_s" in result:
        print(f"  write minus its timed parts (the files): {result['write_remainder_s'] * 1000:.1f}ms")
    if "load_capture_write_s" in result:
        print(f"  load + capture + write: {result['load_capture_write_s']:.3f} s median, "
              f"{result['load_capture_write_cold_s']:.3f} s cold")
    print(f"  peak RSS of this process so far: {result['peak_rss_mib']:.0f} MiB")
    if "index_html_mib" in result:
        print(f"  report: index.html {result['index_html_mib']:.2f} MiB (target < 2 MB); site without "
              f"activations.safetensors {result['site_mib_without_activations']:.1f} MiB (target < 64 MB); "
              f"activations {result['activations_mib']:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm repeats per stage (median shown); default 5")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, the target machine's cores)")
    parser.add_argument("--large", action="store_true", help="also the 12-layer 12-head 768-wide model, 1024 tokens")
    parser.add_argument("--large-vocab", type=int, default=50304, help="vocabulary of the large model (default 50304)")
    parser.add_argument("--large-repeats", type=int, default=1, help="warm repeats for the large model (default 1)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME",
                        help="leave out the stages whose name contains NAME (repeatable), e.g. --skip write --skip report")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--suite", action="store_true",
                        help="then, in this run, the other issues' targets: generation (200 tokens), trace store "
                        "(integrated gradients, render ID, traces list over 1,000), page open in Chromium "
                        "(6x6x384 and, with --large, 12x12x768 at 1024 tokens)")
    parser.add_argument("--hf", action="store_true", help="with --suite: also the TinyLlama-shaped model (minutes, ~8 GB)")
    args = parser.parse_args(argv)
    # a `kill` still removes the temporary folder (the large model's files take a few GB)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"load average {load_before[0]:.2f} (other work on the machine slows every figure)")
    print(f"imports (python start -> torch + visualizer imported): {T_IMPORTED - T_START:.2f} s")
    results = {"torch": torch.__version__, "threads": args.threads, "import_s": T_IMPORTED - T_START,
               "load_average_before": load_before[0], "models": []}
    with tempfile.TemporaryDirectory(prefix="visualizer-bench-") as root:
        specs = [(small_spec(), args.repeats, False)]
        if args.large:
            specs.append((large_spec(args.large_vocab, 1024), args.large_repeats, True))
        for spec, repeats, is_large in specs:
            stages = [s for s in STAGES if not any(skip in s.name for skip in args.skip)]
            result = bench_model(spec, repeats, is_large, Path(root), stages)
            print_model(result, repeats)
            results["models"].append(result)
    small = results["models"][0]
    if "load_capture_write_s" in small:
        verdict = "met" if small["load_capture_write_s"] < SMALL_TOTAL_TARGET_S else "NOT met"
        print(f"\ntarget: load + capture + write < {SMALL_TOTAL_TARGET_S} s for the 6-layer model: {verdict} "
              f"({small['load_capture_write_s']:.3f} s median)")
    if args.suite:
        results["suite"] = run_suite(args)
    results["load_average_after"] = os.getloadavg()[0]
    print(f"load average after: {results['load_average_after']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def run_suite(args) -> dict:
    """The sibling benchmark scripts, each in its own process (a cold start, as a user has), in order."""
    here = Path(__file__).resolve().parent
    runs = [("generation: 200 new tokens, 6x6x384", [here / "bench_generate.py"]),
            ("trace store: integrated gradients, render ID, traces list", [here / "bench_store.py"])]
    with tempfile.TemporaryDirectory(prefix="visualizer-bench-site-") as out:
        runs.append(("page open in Chromium, 6x6x384, 48 tokens",
                     [here / "bench_site.py", "--out", f"{out}/small", "--tokens", "48", "--layers", "6",
                      "--heads", "6", "--width", "384"]))
        if args.large:
            runs.append(("page open in Chromium, 12x12x768, 1024 tokens", [here / "bench_site.py", "--out", f"{out}/large"]))
        if args.hf:
            runs.append(("TinyLlama-shaped model, 256 tokens", [here / "bench_hf.py"]))
        walls = {}
        for title, command in runs:
            print(f"\n=== {title}", flush=True)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *map(str, command)], cwd=here.parent)
            walls[title] = {"wall_s": time.perf_counter() - start, "exit": done.returncode}
    return walls


if __name__ == "__main__":
    sys.exit(main())
