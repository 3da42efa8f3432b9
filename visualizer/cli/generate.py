"""`python -m visualizer generate ...`: continue a prompt with the model and write the generation view.

Writes into exactly DIR (built in a temporary folder beside it, renamed into place): index.html (the
generation view), generation.json, output.txt (prompt + continuation), snapshots/*.png (attention
every --snapshot-every steps) and prompt/ (the prompt's full report). Model options and settings are
the report's (config.py merges flags > environment > .env > defaults; PROBE_SENTENCE is the default
prompt); the error contract is the plain command's (one `error:` line, exit 2).

What this module does not do: generate, sample or lay out HTML (pipeline.py and generation/ do).
"""

from __future__ import annotations

import argparse

from visualizer.cli.options import add_common_options, add_model_options

HELP = "continue a prompt token by token and write the generation view (see generate --help)"
DESCRIPTION = (
    "Continue a prompt with the model, recording every step (candidates before and after the sampling "
    "controls, attention rows, logit lens), and write a static page to watch it. Defaults leave the "
    "model's distribution untouched; --temperature 0 alone is greedy decoding."
)


def configure(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--prompt", metavar="TEXT", help="the text to continue (.env: PROBE_SENTENCE; default: a Shakespeare line)")
    p.add_argument("--prompt-file", metavar="PATH", help="read the prompt from a UTF-8 file (keeps newlines)")
    p.add_argument("--chat", metavar="TEXT",
                   help="a user message, rendered as a chat turn in the model's own chat format; the reply is generated")
    p.add_argument("--max-new-tokens", type=int, default=100, metavar="N", help="tokens to generate at most (default 100)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help="divide the logits by T; 0 = greedy argmax (default 1)")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only from the K most likely tokens (default off)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="sample only from the most likely tokens whose mass reaches P (default off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="CTRL penalty for tokens already in the sequence: positive logits / R, negative * R (default 1: off)")
    p.add_argument("--no-repeat-ngram-size", type=int, default=0, metavar="N",
                   help="never repeat an n-gram of this size (default 0: off)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop once the continuation contains TEXT (repeatable; the stop text is kept)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="seed of the sampler (default 1337: runs are reproducible)")
    p.add_argument("--snapshot-every", type=int, default=25, metavar="N", help="attention PNG every N steps (default 25; 0 = none)")
    p.add_argument("--candidates", type=int, default=10, metavar="K", help="candidates recorded per step (default 10)")
    p.add_argument("--out", metavar="DIR", help="write into exactly DIR (.env: OUT); default: visualizations/<model>/generate-<prompt-slug>/")
    add_common_options(p)


def run(args) -> int:
    from visualizer.config import generate_config
    from visualizer.pipeline import run_generate

    return run_generate(generate_config(args))
