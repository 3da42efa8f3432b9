"""`python -m visualizer traces list|show|summary|rm`: the trace store from the terminal.

Every subcommand follows the CLI's error contract: a bad input is one `error:` line and exit 2.
A damaged trace does not stop `traces list` or `traces summary`: it is named on stderr and the
rest are listed.

What this module does not do: compute anything itself (store/ does), or import torch (listing
stays fast).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import visualizer.store.traces as store
from visualizer.cli.options import Parser, add_store_root_options
from visualizer.errors import one_line
from visualizer.config import env_of, store_root
from visualizer.model.tokenizer import readable


def root_of(args) -> Path:
    return store_root(args, env_of(args))


def warn(message: str) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


def short(text: str, width: int) -> str:
    """One line, at most `width` characters: newlines, tabs, control characters as symbols."""
    text = one_line("".join(ch if ch == " " else readable(ch) for ch in text or ""))
    return text if len(text) <= width else text[: width - 1] + "…"


def safe(value) -> str:
    """Any value from a manifest as printable text: nothing in a stored trace can send the terminal
    an escape sequence or break a line."""
    return one_line("" if value is None else str(value))


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ------------------------------------------------------------------------------------------ traces


def list_rows(manifests: list[dict]) -> list[str]:
    header = f"{'ID':13} {'CREATED':20} {'MODEL':20} {'ITER':>7} {'TOK':>5} {'NEXT':8} {'LOSS':>6} {'TAGS':16} PROBE"
    rows = [header]
    for m in manifests:
        s = m["summary"]
        loss = s.get("probe_loss_nats")
        tags = ",".join(m["tags"] + ([f"[{m['category']}]"] if m["category"] else []))
        rows.append(
            f"{m['id']:13} {m['created']:20} {short(m['model']['name'], 20):20} "
            f"{m['model'].get('iter_num') if m['model'].get('iter_num') is not None else '-':>7} "
            f"{len(m['token_ids']):>5} {short(s.get('next_token') or '', 8):8} "
            f"{f'{loss:.3f}' if isinstance(loss, (int, float)) else '-':>6} {short(tags, 16):16} {short(m['probe'], 48)}"
        )
    return rows


def traces_list(args) -> int:
    root = root_of(args)
    found = store.scan(root)
    for line in found.damaged:
        warn(f"{line} (skipped)")
    shown = [m for m in found.manifests if store.matches(m, args.tag, args.model)]
    if args.json:
        print(json.dumps(shown, sort_keys=True, ensure_ascii=True, indent=1))
        return 0
    if shown:
        print("\n".join(list_rows(shown)))
    print(f"{len(shown)} of {len(found.manifests)} traces in {root}" + (f", {len(found.damaged)} damaged" if found.damaged else ""))
    return 0


def traces_show(args) -> int:
    root = root_of(args)
    stored = store.open_trace(root, args.id)  # checks the manifest and every file's size and sha256
    m = stored.manifest
    if m is None:
        print(f"{safe(stored.folder)}: a report folder, not a stored trace (no manifest)")
        return 0
    if args.json:
        print(json.dumps(m, sort_keys=True, ensure_ascii=True, indent=1))
        return 0
    model, s, kept = m["model"], m["summary"], m["kept"]
    lines = [
        f"id            {safe(m['id'])}",
        f"folder        {safe(stored.folder)}",
        f"created       {safe(m['created'])}",
        f"model         {safe(model['name'])} ({safe(model.get('family'))}), iter {safe(model.get('iter_num'))}",
        f"checkpoint    {safe(model['path'])}",
        f"sha256        {safe(model['checkpoint_sha256'])}",
        f"probe         {short(m['probe'], 100)}",
        f"tokens        {len(m['token_ids'])}: {' '.join(readable(t) for t in m['tokens'][:40])}"
        + (" …" if len(m["tokens"]) > 40 else ""),
        f"tags          {safe(', '.join(m['tags'])) or '-'}",
        f"category      {safe(m['category']) or '-'}",
        f"kept          {'all groups' if kept.get('all_groups') else ', '.join(kept['groups'])} as {kept['dtype']} "
        f"({kept.get('tensors')} tensors)",
    ]
    lines += [f"summary       {safe(key)} = {safe(value)}" for key, value in sorted(s.items())]
    lines += [f"file          {safe(name)} {megabytes(r['bytes'])} sha256 {safe(r['sha256'][:16])}… ok"
              for name, r in sorted(m["files"].items())]
    print("\n".join(lines))
    return 0


def traces_summary(args) -> int:
    root = root_of(args)
    found = store.scan(root)
    for line in found.damaged:
        warn(f"{line} (skipped)")
    s = store.summarize(found)
    if args.json:
        print(json.dumps(s, sort_keys=True, ensure_ascii=True, indent=1))
        return 0
    lines = [f"store {safe(root)}: {s['traces']} traces, {megabytes(s['bytes'])}"
             + (f", {s['damaged']} damaged" if s["damaged"] else "")]
    if s["models"]:
        lines.append(f"{'MODEL':24} {'SHA256':13} {'ITER':>7} {'TRACES':>6} {'PROBES':>6} {'LOSS':>7} {'SIZE':>9}")
    for row in s["models"]:
        loss = row["mean_probe_loss_nats"]
        lines.append(f"{short(row['name'], 24):24} {short(str(row['checkpoint_sha256'])[:12], 12):13} "
                     f"{row['iter_num'] if row['iter_num'] is not None else '-':>7} {row['traces']:>6} {row['probes']:>6} "
                     f"{f'{loss:.3f}' if loss is not None else '-':>7} {megabytes(row['bytes']):>9}")
    if s["tags"]:
        lines.append("tags: " + ", ".join(f"{safe(t)} ({n})" for t, n in s["tags"].items()))
    if s["categories"]:
        lines.append("categories: " + ", ".join(f"{safe(c)} ({n})" for c, n in s["categories"].items()))
    print("\n".join(lines))
    return 0


def traces_rm(args) -> int:
    root = root_of(args)
    for ref in args.ids:
        print(f"removed {safe(store.remove(root, ref))}")
    return 0


HELP = "list, show, summarise or remove stored traces"
DESCRIPTION = (
    "List, show, summarise and remove stored traces. Every plain run is stored (unless --no-store) "
    "under --store DIR, TRACE_STORE (environment or .env) or traces/. A trace id is 10 hex digits of a hash of "
    "the checkpoint, the probe and the store options; storing the same run again adds -2, -3, ... Commands "
    "take an id or a unique prefix of one."
)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)

    def action(name: str, help_: str, fn):
        p = sub.add_parser(name, help=help_, description=help_)
        add_store_root_options(p)
        p.set_defaults(fn=fn)
        return p

    p = action("list", "one line per trace, oldest first (reads manifests only)", traces_list)
    p.add_argument("--tag", action="append", metavar="T", help="only traces with this tag or category (repeat: all of them)")
    p.add_argument("--model", metavar="M", help="only traces whose model name or path contains M, or whose checkpoint sha256 starts with M")
    p.add_argument("--json", action="store_true", help="the manifests as JSON")
    p = action("show", "one trace's manifest, after checking every file's size and sha256", traces_show)
    p.add_argument("id", help="trace id (or a unique prefix)")
    p.add_argument("--json", action="store_true", help="the manifest as JSON")
    p = action("summary", "counts and sizes by model, tag and category", traces_summary)
    p.add_argument("--json", action="store_true", help="as JSON")
    p = action("rm", "delete traces (damaged ones too)", traces_rm)
    p.add_argument("ids", nargs="+", metavar="ID", help="trace ids (or unique prefixes)")


def run(args) -> int:
    return args.fn(args)
