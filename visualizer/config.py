"""Run settings from command-line flags, the environment, `.env` and defaults, in that order.

`.env` (read with python-dotenv from the current folder, or `--env-file`) never overrides a flag;
a variable set in the process environment wins over the same key in `.env`. Keys: see env.template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from visualizer.errors import VisualizerError
from visualizer.readfile import read_text
from visualizer.store.traces import options_from_args as store_options

if TYPE_CHECKING:
    from visualizer.analysis.attribution import AttributionOptions
    from visualizer.store.traces import StoreOptions

DEFAULT_PROBE = "ROMEO:\nBut soft, what light through yonder window breaks?"

ENV_KEYS = {
    "MODEL": "checkpoint",
    "NANOGPT_META_PATH": "meta",
    "PROBE_SENTENCE": "probe",
    "OUT": "out",
    "DEVICE": "device",
    "TRACE_STORE": "store",
}


@dataclass
class Config:
    checkpoint: Path | None = None  # None: the embedded demo checkpoint
    meta: Path | None = None  # None: looked for beside the checkpoint, then data/<dataset>/
    probes: list[str] = field(default_factory=list)
    out: Path | None = None  # None: visualizations/<model>/<probe-slug>/
    device: str = "cpu"
    quiet: bool = False
    debug: bool = False
    top_k: int = 10
    # model families (nanochat, ...): None means detect / newest / beside the checkpoint
    family: str | None = None
    step: int | None = None
    tokenizer: Path | None = None
    chats: list[str] = field(default_factory=list)  # user messages rendered as chat turns
    # trace store and attribution (issue 6); the CLI stores every run, a Config built in code does not
    store: StoreOptions | None = None
    attribution: AttributionOptions | None = None  # None: the top next token at the last position


def read_env(env_file: Path | None) -> dict[str, str]:
    """`.env` values overlaid with the process environment, for the keys we know."""
    values: dict[str, str] = {}
    path = env_file if env_file is not None else Path(".env")
    if env_file is not None and not path.is_file():
        raise VisualizerError(f"--env-file {path}: not found")
    if path.is_file():
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    for key in ENV_KEYS:
        if os.environ.get(key):
            values[key] = os.environ[key]
    return {k: v for k, v in values.items() if k in ENV_KEYS and v != ""}


def read_probe_file(path: Path) -> str:
    return read_text(path, f"--probe-file {path}")


def build_config(args) -> Config:
    """Merge parsed flags (argparse Namespace; None = not given) over env/.env over defaults."""
    from visualizer.analysis.attribution import options_from_args as attribution_options  # imports torch: only for a run

    env = read_env(Path(args.env_file) if getattr(args, "env_file", None) else None)
    probes = list(args.probe or [])
    for probe_file in getattr(args, "probe_file", None) or []:
        probes.append(read_probe_file(Path(probe_file)))
    chats = list(getattr(args, "chat", None) or [])
    if not probes and not chats:
        probes = [env.get("PROBE_SENTENCE", DEFAULT_PROBE)]
    for i, probe in enumerate(probes):
        if probe == "" or probe.isspace():
            raise VisualizerError(f"probe {i + 1} is empty" if len(probes) > 1 else "the probe is empty")
    for i, chat in enumerate(chats):
        if chat == "" or chat.isspace():
            raise VisualizerError(f"--chat message {i + 1} is empty")
    step = getattr(args, "step", None)
    if step is not None and step < 0:
        raise VisualizerError(f"--step {step}: must be 0 or more")
    checkpoint = args.checkpoint or env.get("MODEL")
    # a meta path from .env belongs to the .env's model: a --checkpoint flag looks for its own
    meta = args.meta or (None if args.checkpoint else env.get("NANOGPT_META_PATH"))
    out = args.out or env.get("OUT")
    return Config(
        checkpoint=Path(checkpoint) if checkpoint else None,
        meta=Path(meta) if meta else None,
        probes=probes,
        out=Path(out) if out else None,
        device=args.device or env.get("DEVICE", "cpu"),
        quiet=bool(args.quiet),
        debug=bool(args.debug),
        top_k=args.top_k,
        family=getattr(args, "family", None),
        step=step,
        tokenizer=Path(args.tokenizer) if getattr(args, "tokenizer", None) else None,
        chats=chats,
        store=store_options(args, env),
        attribution=attribution_options(args),
    )
