"""The command line's building blocks: a parser whose usage mistakes are one `error:` line, the error
contract every command runs under, and the option groups commands share.

What this module does not do: merge settings (config.py does: flags > environment > .env >
defaults), or import torch (listing traces must start fast).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from visualizer.errors import VisualizerError, one_line
from visualizer.model.families import FAMILIES


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `error:` line (exit 2) like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run_guarded(function, debug: bool) -> int:
    """Run a command: a VisualizerError is one `error:` line and exit 2; a bug of ours is one line
    and exit 1 (`--debug` adds the traceback to either). Warnings libraries print on the way are
    not ours to show: they are silenced unless --debug."""
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore")
            return function()
    except VisualizerError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException as e:  # a bug of ours, or a native library's panic: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"error: internal error {type(e).__name__}: {one_line(e)[:500]} (run with --debug for a traceback)",
              file=sys.stderr)
        return 1


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--env-file, --quiet, --debug: every command that runs the model has them."""
    parser.add_argument("--env-file", default=None, metavar="PATH", help="read settings from this file instead of ./.env")
    parser.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def add_model_options(parser: argparse.ArgumentParser, default_note: str = "default: the embedded demo") -> None:
    """Which model to open and where: the same flags for every command that loads one."""
    parser.add_argument(
        "--checkpoint", metavar="PATH",
        help="nanoGPT ckpt.pt, nanochat model_NNNNNN.pt or a folder of them, or a local Hugging Face model folder "
        f"(.env: MODEL); {default_note}",
    )
    parser.add_argument(
        "--meta", metavar="PATH",
        help="nanoGPT meta.pkl with the vocabulary (.env: NANOGPT_META_PATH); default: beside the checkpoint, "
        "then data/<dataset>/meta.pkl, then GPT-2 BPE if its files are on this machine",
    )
    parser.add_argument(
        "--family", choices=FAMILIES,
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
    parser.add_argument("--device", default=None, help="cpu (default) or cuda[:N] when a GPU is present; .env: DEVICE")


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """The trace store's flags for a command that stores its run."""
    from visualizer.store.traces import DTYPES, GROUPS

    g = parser.add_argument_group("trace store (every run is kept as a trace; see `traces --help`)")
    g.add_argument("--store", metavar="DIR", help="trace store root (.env: TRACE_STORE; default traces/)")
    g.add_argument("--no-store", action="store_true", help="do not keep this run in the trace store")
    g.add_argument("--tag", action="append", metavar="T", help="tag the stored trace; repeat for several")
    g.add_argument("--category", metavar="NAME", help="one category for the stored trace (e.g. early, late)")
    g.add_argument("--store-dtype", choices=DTYPES, default="float32",
                   help="dtype of the stored activations (default float32, as captured; float16 halves the size)")
    g.add_argument("--keep", action="append", metavar="GROUP",
                   help=f"store only these tensor groups ({', '.join(GROUPS)}); repeat or comma-separate; "
                        "default all. The report folder always holds every tensor")


def add_attribution_options(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument_group("attribution (which input tokens drove a prediction)")
    a.add_argument("--target", metavar="TOKEN",
                   help="the token to explain: its text (exactly one token) or its id; default: the top next token")
    a.add_argument("--target-position", type=int, default=-1, metavar="P",
                   help="the position whose prediction is explained (default -1, the last; negative counts from the end)")
    a.add_argument("--ig-steps", type=int, default=None, metavar="N",
                   help="integrated-gradients quadrature nodes (default 64; 0 turns it off; an explicit N also "
                        "runs models the default would skip as too costly)")


def add_store_root_options(parser: argparse.ArgumentParser) -> None:
    """For the commands that read the store: where it is, and the error flags."""
    parser.add_argument("--store", metavar="DIR", help="trace store root (.env: TRACE_STORE; default traces/)")
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file instead of ./.env")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
