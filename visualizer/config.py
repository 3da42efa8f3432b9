"""Settings for every command, merged in one place: command-line flag > process environment > `.env`
> defaults.

`.env` is read with python-dotenv from the current folder (or `--env-file`); keys: see
env.template. Each command's settings are a dataclass built here from its parsed flags (an
argparse Namespace in which None means "not given").

What this module does not do: parse arguments (cli/), load a model or touch torch at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from visualizer.errors import VisualizerError
from visualizer.store.traces import DEFAULT_ROOT

if TYPE_CHECKING:
    from visualizer.analysis.attribution import AttributionOptions
    from visualizer.analysis.interventions.record import PatchOptions
    from visualizer.generation.sampling import Settings as SamplingSettings
    from visualizer.store.traces import StoreOptions

DEFAULT_PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"


MAX_PROBE_BYTES = 256 * 1024  # far past any model's context; bounds what a page and trace.json hold
MAX_TOP_K = 1000
MAX_IG_STEPS = 1024
MAX_NEW_TOKENS = 100_000
MAX_SEED = 2**63 - 1
MAX_BATCH_SIZE = 4096
MAX_BUDGET = 10**7
MAX_ABLATION_PROBES = 10_000

ENV_KEYS = {
    "MODEL": "checkpoint",
    "NANOGPT_META_PATH": "meta",
    "PROBE_SENTENCE": "probe",
    "OUT": "out",
    "DEVICE": "device",
    "TRACE_STORE": "store",
}


@dataclass
class ModelSource:
    """Which model to open, on which device. checkpoint None: the embedded demo checkpoint."""

    checkpoint: Path | None = None
    meta: Path | None = None  # None: looked for beside the checkpoint, then data/<dataset>/
    device: str = "cpu"
    family: str | None = None  # None: detected from the checkpoint
    step: int | None = None  # nanochat: None = the newest step
    tokenizer: Path | None = None  # nanochat: None = beside the checkpoints


@dataclass
class Config:
    """The report command's settings."""

    model: ModelSource = field(default_factory=ModelSource)
    probes: list[str] = field(default_factory=list)
    chats: list[str] = field(default_factory=list)  # user messages rendered as chat turns
    out: Path | None = None  # None: visualizations/<model>/<probe-slug>/
    quiet: bool = False
    debug: bool = False
    top_k: int = 10
    figures: str = "auto"  # --figures: auto, all or none (figures/plan.py MODES)
    # the CLI stores every run; a Config built in code does not
    store: StoreOptions | None = None
    attribution: AttributionOptions | None = None  # None: the top next token at the last position
    protected: list[Path] = field(default_factory=list)  # folders no output may be inside or around (the store)


@dataclass
class GenerateConfig:
    """The generate command's settings."""

    model: ModelSource
    prompt: str
    chat: bool  # the prompt is a user message, rendered as the model's chat turn
    sampling: SamplingSettings
    max_new_tokens: int = 100
    snapshot_every: int = 25
    candidates: int = 10
    out: Path | None = None  # None: visualizations/<model>/generate-<prompt-slug>/
    quiet: bool = False
    protected: list[Path] = field(default_factory=list)  # folders no output may be inside or around (the store)


@dataclass
class PatchConfig:
    """The patch command's settings."""

    model: ModelSource
    clean: str | None  # the clean probe's text, or None with clean_trace
    corrupt: str | None  # None with corrupt_trace, or with neither: the ablation alone
    options: PatchOptions
    clean_trace: str | None = None  # a stored trace (id, prefix or folder) holding the clean probe
    corrupt_trace: str | None = None
    store: Path = Path(DEFAULT_ROOT)  # where the trace ids are
    model_from_traces: bool = False  # the model is the traces' (no --checkpoint flag given with a trace)
    knockouts: list[str] = field(default_factory=list)  # 'L.H:Q:K', checked against the probe once it is encoded
    ablation_data: list[str] = field(default_factory=list)  # probes whose positions the mean ablation averages
    out: Path | None = None  # None: visualizations/<model>/patch-<clean-slug>/
    quiet: bool = False
    protected: list[Path] = field(default_factory=list)  # folders no output may be inside or around (the store)


def read_env(env_file: Path | str | None) -> dict[str, str]:
    """`.env` values overlaid with the process environment, for the keys we know."""
    values: dict[str, str] = {}
    path = Path(env_file) if env_file else Path(".env")
    if env_file and not path.is_file():
        raise VisualizerError(f"--env-file {path}: not found")
    if path.is_file():
        try:
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        except UnicodeDecodeError as e:
            raise VisualizerError(f"{path}: not UTF-8 text (byte {e.start}); .env files are UTF-8") from None
        except OSError as e:
            raise VisualizerError(f"{path}: cannot read: {e.strerror or e}") from None
    for key in ENV_KEYS:
        if os.environ.get(key):
            values[key] = os.environ[key]
    return {k: v for k, v in values.items() if k in ENV_KEYS and v != ""}


def env_of(args) -> dict[str, str]:
    return read_env(getattr(args, "env_file", None))


def read_probe_file(path: Path, flag: str = "--probe-file") -> str:
    """A probe from a UTF-8 file, exactly as written (CR and CRLF kept), at most MAX_PROBE_BYTES."""
    where = f"{flag} {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_PROBE_BYTES + 1)
    except FileNotFoundError:
        raise VisualizerError(f"{where}: not found") from None
    except IsADirectoryError:
        raise VisualizerError(f"{where}: is a folder, not a file") from None
    except OSError as e:
        raise VisualizerError(f"{where}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_PROBE_BYTES:
        raise VisualizerError(f"{where}: longer than {MAX_PROBE_BYTES:,} bytes; a probe is cut to the model's context anyway")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VisualizerError(f"{where}: not UTF-8 text (byte {e.start})") from None


def check_probe_size(text: str, what: str) -> str:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PROBE_BYTES:
        raise VisualizerError(f"{what}: longer than {MAX_PROBE_BYTES:,} bytes; a probe is cut to the model's context anyway")
    return text


def in_range(flag: str, value: int | None, least: int, most: int, why: str = "") -> None:
    if value is not None and not least <= value <= most:
        raise VisualizerError(f"{flag} {value}: must be between {least} and {most:,}{why}")


def model_source(args, env: dict[str, str]) -> ModelSource:
    """The model flags over MODEL / NANOGPT_META_PATH / DEVICE; checkpoint None is the demo."""
    step = getattr(args, "step", None)
    if step is not None and step < 0:
        raise VisualizerError(f"--step {step}: must be 0 or more")
    checkpoint = getattr(args, "checkpoint", None) or env.get("MODEL")
    # a meta path from .env belongs to the .env's model: a --checkpoint flag looks for its own
    meta = getattr(args, "meta", None) or (None if getattr(args, "checkpoint", None) else env.get("NANOGPT_META_PATH"))
    tokenizer = getattr(args, "tokenizer", None)
    return ModelSource(
        checkpoint=Path(checkpoint) if checkpoint else None,
        meta=Path(meta) if meta else None,
        device=getattr(args, "device", None) or env.get("DEVICE", "cpu"),
        family=getattr(args, "family", None),
        step=step,
        tokenizer=Path(tokenizer) if tokenizer else None,
    )


def out_folder(args, env: dict[str, str]) -> Path | None:
    out = getattr(args, "out", None) or env.get("OUT")
    return Path(out) if out else None


def store_root(args, env: dict[str, str]) -> Path:
    """--store, else TRACE_STORE (environment, then .env), else traces/."""
    return Path(getattr(args, "store", None) or env.get("TRACE_STORE") or DEFAULT_ROOT)


def store_options(args, env: dict[str, str]) -> StoreOptions | None:
    """StoreOptions from a storing command's flags; None with --no-store."""
    from visualizer.store.traces import StoreOptions, parse_keep

    if getattr(args, "no_store", True):
        return None
    tags = tuple(dict.fromkeys(t.strip() for t in (args.tag or []) if t.strip()))
    return StoreOptions(root=store_root(args, env), tags=tags, category=args.category or None,
                        dtype=args.store_dtype, keep=parse_keep(args.keep))


def nonempty(texts: list[str], what: str) -> list[str]:
    for i, text in enumerate(texts):
        if text == "" or text.isspace():
            raise VisualizerError(f"{what} {i + 1} is empty" if len(texts) > 1 else f"the {what} is empty")
    return texts


def report_config(args) -> Config:
    """The report command's flags over env/.env over defaults."""
    from visualizer.analysis.attribution import options_from_args as attribution_options  # imports torch

    env = env_of(args)
    probes = list(args.probe or [])
    for probe_file in args.probe_file or []:
        probes.append(read_probe_file(Path(probe_file)))
    chats = list(args.chat or [])
    if not probes and not chats:
        probes = [env.get("PROBE_SENTENCE", DEFAULT_PROBE)]
    nonempty(probes, "probe")
    nonempty(chats, "--chat message")
    for text in probes:
        check_probe_size(text, "--probe")
    for text in chats:
        check_probe_size(text, "--chat")
    in_range("--top-k", args.top_k, 1, MAX_TOP_K)
    in_range("--ig-steps", args.ig_steps, 0, MAX_IG_STEPS, " (0 turns integrated gradients off)")
    return Config(
        model=model_source(args, env),
        probes=probes,
        chats=chats,
        out=out_folder(args, env),
        quiet=bool(args.quiet),
        debug=bool(args.debug),
        top_k=args.top_k,
        figures=args.figures,
        store=store_options(args, env),
        attribution=attribution_options(args),
        protected=[store_root(args, env)],
    )


def generate_config(args) -> GenerateConfig:
    """The generate command's flags over env/.env (PROBE_SENTENCE is the default prompt) over defaults."""
    import visualizer.generation.sampling as sampling

    env = env_of(args)
    given = [flag for flag, value in (("--prompt", args.prompt), ("--prompt-file", args.prompt_file),
                                      ("--chat", args.chat)) if value is not None]
    if len(given) > 1:
        raise VisualizerError(f"give one of --prompt, --prompt-file and --chat, not {' and '.join(given)}")
    if args.prompt_file is not None:
        prompt = read_probe_file(Path(args.prompt_file), "--prompt-file")
    elif args.chat is not None:
        prompt = args.chat
    else:
        prompt = args.prompt if args.prompt is not None else env.get("PROBE_SENTENCE", DEFAULT_PROBE)
    nonempty([prompt], "--chat message" if args.chat is not None else "prompt")
    check_probe_size(prompt, "the prompt")
    for flag, value, least in (("--max-new-tokens", args.max_new_tokens, 1), ("--snapshot-every", args.snapshot_every, 0),
                               ("--candidates", args.candidates, 1)):
        if value < least:
            raise VisualizerError(f"{flag} {value}: must be at least {least}")
    in_range("--max-new-tokens", args.max_new_tokens, 1, MAX_NEW_TOKENS)
    in_range("--candidates", args.candidates, 1, MAX_TOP_K)
    in_range("--top-k", args.top_k, 1, 10**7)
    in_range("--seed", args.seed, 0, MAX_SEED)
    settings = sampling.Settings(
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
        no_repeat_ngram_size=args.no_repeat_ngram_size, stop=tuple(args.stop),
        seed=sampling.DEFAULT_SEED if args.seed is None else args.seed,
    ).check()
    return GenerateConfig(
        model=model_source(args, env),
        prompt=prompt,
        chat=args.chat is not None,
        sampling=settings,
        max_new_tokens=args.max_new_tokens,
        snapshot_every=args.snapshot_every,
        candidates=args.candidates,
        out=out_folder(args, env),
        quiet=bool(args.quiet),
        protected=[store_root(args, env)],
    )


def read_ablation_data(path: Path) -> list[str]:
    """--ablation-data: one probe per line (UTF-8), blank lines skipped; at least one."""
    lines = [line for line in read_probe_file(path, "--ablation-data").splitlines() if line.strip()]
    if not lines:
        raise VisualizerError(f"--ablation-data {path}: holds no probe (one probe per line)")
    if len(lines) > MAX_ABLATION_PROBES:
        raise VisualizerError(f"--ablation-data {path}: {len(lines):,} probes, more than {MAX_ABLATION_PROBES:,}")
    return lines


def patch_config(args) -> PatchConfig:
    """The patch command's flags over env/.env over defaults."""
    from visualizer.analysis.interventions.record import PatchOptions  # imports torch

    if args.clean is None and args.clean_trace is None:
        raise VisualizerError("the following arguments are required: --clean (or --clean-trace ID)")
    env = env_of(args)
    for text, flag in ((args.clean, "--clean"), (args.corrupt, "--corrupt")):
        if text is not None:
            nonempty([text], f"{flag} probe")
            check_probe_size(text, flag)
    if args.wrong is not None and args.corrupt is None and args.corrupt_trace is None:
        raise VisualizerError(f"--wrong {args.wrong}: the wrong token is scored against a corrupt run; give --corrupt "
                              "or --corrupt-trace (without one, only the ablation runs, scored on the answer's logit)")
    traces = args.clean_trace is not None or args.corrupt_trace is not None
    model = model_source(args, env)
    if traces and not args.checkpoint:  # the traces name their model; MODEL and its meta from .env do not apply
        model = replace(model, checkpoint=None, meta=Path(args.meta) if args.meta else None)
    in_range("--batch-size", args.batch_size, 1, MAX_BATCH_SIZE)
    in_range("--budget", args.budget, 0, MAX_BUDGET)
    options = PatchOptions(answer=args.answer, wrong=args.wrong, batch_rows=args.batch_size,
                           **({} if args.budget is None else {"budget": args.budget}))
    return PatchConfig(
        model=model,
        clean=args.clean,
        corrupt=args.corrupt,
        options=options,
        clean_trace=args.clean_trace,
        corrupt_trace=args.corrupt_trace,
        store=store_root(args, env),
        model_from_traces=traces and not args.checkpoint,
        knockouts=list(args.knockout or []),
        ablation_data=read_ablation_data(Path(args.ablation_data)) if args.ablation_data else [],
        out=out_folder(args, env),
        quiet=bool(args.quiet),
        protected=[store_root(args, env)],
    )
