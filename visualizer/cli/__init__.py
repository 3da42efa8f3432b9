"""Command line: `python -m visualizer [options]` writes reports; subcommands come first when used.

Errors the user can fix print one line `error: ...` on stderr and exit 2 (`--debug` shows the
traceback). A failed verification writes the report, shouts on stderr and exits 3.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from visualizer import __version__
from visualizer.errors import VisualizerError

DESCRIPTION = (
    "Open a trained GPT and write a static web report of what happens inside it for a probe. "
    "Settings come from flags, then the environment and .env (see env.template), then defaults; "
    "with none at all, the embedded demo model and a default probe are used."
)

class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line (exit 2) like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


# name -> (one-line help, function(argv) -> exit code); later subcommands register here
SUBCOMMANDS: dict[str, tuple[str, object]] = {}


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu (default) or cuda[:N] when a GPU is present; .env: DEVICE")
    parser.add_argument("--env-file", default=None, metavar="PATH", help="read settings from this file instead of ./.env")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def add_family_options(parser: argparse.ArgumentParser) -> None:
    """Options for choosing the model family and for nanochat checkpoints."""
    parser.add_argument(
        "--family", choices=("nanogpt", "nanochat", "hf"),
        help="the checkpoint's model family; default: detected from --checkpoint (nanoGPT ckpt.pt, nanochat "
        "model_NNNNNN.pt with meta_NNNNNN.json or a folder of them, a Hugging Face folder with config.json) "
        "and printed",
    )
    parser.add_argument("--step", type=int, metavar="N", help="nanochat: read model_N.pt (default: the newest step)")
    parser.add_argument(
        "--tokenizer", metavar="DIR",
        help="nanochat: the folder holding tokenizer.pkl (default: tokenizer/ beside <kind>_checkpoints/, "
        "then $NANOCHAT_BASE_DIR/tokenizer)",
    )
    parser.add_argument(
        "--chat", action="append", metavar="TEXT",
        help="nanochat: a user message rendered as a chat turn awaiting the reply "
        "(<|bos|><|user_start|>TEXT<|user_end|><|assistant_start|>); repeatable, alongside or instead of --probe",
    )


def report_parser() -> argparse.ArgumentParser:
    subcommands = "".join(f"\n  {name:10} {help_}" for name, (help_, _) in sorted(SUBCOMMANDS.items()))
    parser = Parser(
        prog="python -m visualizer",
        description=DESCRIPTION,
        epilog=("subcommands (python -m visualizer SUBCOMMAND --help):" + subcommands) if subcommands else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--checkpoint", metavar="PATH",
        help="nanoGPT ckpt.pt, nanochat model_NNNNNN.pt or a folder of them, or a local Hugging Face model folder "
        "(.env: MODEL); default: the embedded demo",
    )
    parser.add_argument(
        "--meta", metavar="PATH",
        help="nanoGPT meta.pkl with the vocabulary (.env: NANOGPT_META_PATH); default: beside the checkpoint, "
        "then data/<dataset>/meta.pkl, then GPT-2 BPE if its files are on this machine",
    )
    parser.add_argument(
        "--probe", action="append", metavar="TEXT",
        help="the text to run through the model (.env: PROBE_SENTENCE); repeat for several reports from one load",
    )
    parser.add_argument("--probe-file", action="append", metavar="PATH", help="read a probe from a UTF-8 file (keeps newlines)")
    parser.add_argument(
        "--out", metavar="DIR",
        help="write the report into exactly DIR (.env: OUT); default: visualizations/<model>/<probe-slug>/ "
        "and visualizations/index.html",
    )
    parser.add_argument("--top-k", type=int, default=10, metavar="K", help="next-token candidates listed (default 10)")
    add_family_options(parser)
    store_cli.add_report_options(parser)
    add_common_options(parser)
    parser.add_argument("--version", action="version", version=f"visualizer {__version__}")
    return parser


def run_guarded(function, debug: bool) -> int:
    try:
        return function()
    except VisualizerError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"error: internal error {type(e).__name__}: {e} (run with --debug for a traceback)", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]][1](argv[1:])
    args = report_parser().parse_args(argv)

    def go() -> int:
        from visualizer.config import build_config
        from visualizer.pipeline import run

        return run(build_config(args))

    return run_guarded(go, args.debug)
import visualizer.cli.generate as generate_cli  # noqa: E402,F401  (registers the `generate` subcommand)
import visualizer.cli.traces as store_cli  # noqa: E402,F401  (registers traces, render, compare)
