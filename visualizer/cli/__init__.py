"""Command line: `python -m visualizer [COMMAND] [options]`; the report is the default command.

Every command is one module of this package with `HELP`, `configure(parser)` and `run(args)`,
listed once in COMMANDS and attached with argparse's `add_subparsers`. Errors the user can fix
print one line `error: ...` on stderr and exit 2 (`--debug` shows the traceback). A failed
verification writes the report, shouts on stderr and exits 3.

What this package does not do: compute anything (pipeline.py and the stage packages do).
"""

from __future__ import annotations

import importlib
import sys

from visualizer.cli.options import Parser, run_guarded
from visualizer.memory import tune_allocator

DEFAULT_COMMAND = "report"
# command -> module under visualizer.cli (each has HELP, configure(parser), run(args))
COMMANDS = {
    "report": "report",
    "generate": "generate",
    "traces": "traces",
    "render": "render",
    "compare": "compare",
    "serve": "serve",
    "sweep": "sweep",
    "patch": "patch",
}


def command_module(name: str):
    return importlib.import_module(f"visualizer.cli.{COMMANDS[name]}")


def build_parser() -> Parser:
    """The whole command tree. The report's parser carries the plain program name, so its usage and
    errors read `python -m visualizer ...` as the default command is used."""
    modules = {name: command_module(name) for name in COMMANDS}
    others = "".join(f"\n  {name:10} {modules[name].HELP}" for name in sorted(COMMANDS) if name != DEFAULT_COMMAND)
    top = Parser(prog="python -m visualizer", description=modules[DEFAULT_COMMAND].DESCRIPTION)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in modules.items():
        default = name == DEFAULT_COMMAND
        parser = sub.add_parser(
            name,
            help=module.HELP,
            prog="python -m visualizer" if default else f"python -m visualizer {name}",
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=("commands (python -m visualizer COMMAND --help):" + others) if default else None,
            formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
        )
        module.configure(parser)
        parser.set_defaults(run=module.run)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        argv = [DEFAULT_COMMAND, *argv]
    args = build_parser().parse_args(argv)
    tune_allocator()  # chunk-sized temporaries reused, not faulted in afresh (memory.py)
    return run_guarded(lambda: args.run(args), getattr(args, "debug", False))
