"""Command line of the trace store: `traces list|show|summary|rm`, `render ID --out DIR`,
`compare A B --out DIR`, and the plain run's store and attribution flags. Importing this module
registers the subcommands in `cli.SUBCOMMANDS`.

Every subcommand follows the CLI's error contract: a bad input is one `error:` line and exit 2.
A damaged trace does not stop `traces list` or `traces summary`: it is named on stderr and the
rest are listed.

What this module does not do: compute anything itself (store.py, compare.py, report.py do), or
import torch before a subcommand needs it (listing stays fast).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import visualizer.cli as cli
import visualizer.store.traces as store
from visualizer.config import read_env
from visualizer.errors import VisualizerError
from visualizer.model.tokenizer import readable


def add_report_options(parser) -> None:
    """The plain run's flags for the trace store and for attribution."""
    g = parser.add_argument_group("trace store (every run is kept as a trace; see `traces --help`)")
    g.add_argument("--store", metavar="DIR", help="trace store root (.env: TRACE_STORE; default traces/)")
    g.add_argument("--no-store", action="store_true", help="do not keep this run in the trace store")
    g.add_argument("--tag", action="append", metavar="T", help="tag the stored trace; repeat for several")
    g.add_argument("--category", metavar="NAME", help="one category for the stored trace (e.g. early, late)")
    g.add_argument("--store-dtype", choices=store.DTYPES, default="float32",
                   help="dtype of the stored activations (default float32, as captured; float16 halves the size)")
    g.add_argument("--keep", action="append", metavar="GROUP",
                   help=f"store only these tensor groups ({', '.join(store.GROUPS)}); repeat or comma-separate; "
                        "default all. The report folder always holds every tensor")
    a = parser.add_argument_group("attribution (which input tokens drove a prediction)")
    a.add_argument("--target", metavar="TOKEN",
                   help="the token to explain: its text (exactly one token) or its id; default: the top next token")
    a.add_argument("--target-position", type=int, default=-1, metavar="P",
                   help="the position whose prediction is explained (default -1, the last; negative counts from the end)")
    a.add_argument("--ig-steps", type=int, default=None, metavar="N",
                   help="integrated-gradients quadrature nodes (default 64; 0 turns it off; an explicit N also "
                        "runs models the default would skip as too costly)")


def add_store_flags(parser) -> None:
    parser.add_argument("--store", metavar="DIR", help="trace store root (.env: TRACE_STORE; default traces/)")
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file instead of ./.env")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def store_parser(prog: str, description: str) -> cli.Parser:
    parser = cli.Parser(prog=f"python -m visualizer {prog}", description=description)
    add_store_flags(parser)
    return parser


def root_of(args) -> Path:
    return store.store_root(args.store, read_env(Path(args.env_file) if args.env_file else None))


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def short(text: str, width: int) -> str:
    """One line, at most `width` characters: newlines, tabs, control characters as symbols."""
    text = "".join(ch if ch == " " else readable(ch) for ch in text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


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
        print(json.dumps(shown, sort_keys=True, ensure_ascii=False, indent=1))
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
        print(f"{stored.folder}: a report folder, not a stored trace (no manifest)")
        return 0
    if args.json:
        print(json.dumps(m, sort_keys=True, ensure_ascii=False, indent=1))
        return 0
    model, s, kept = m["model"], m["summary"], m["kept"]
    lines = [
        f"id            {m['id']}",
        f"folder        {stored.folder}",
        f"created       {m['created']}",
        f"model         {model['name']} ({model.get('family')}), iter {model.get('iter_num')}",
        f"checkpoint    {model['path']}",
        f"sha256        {model['checkpoint_sha256']}",
        f"probe         {short(m['probe'], 100)}",
        f"tokens        {len(m['token_ids'])}: {' '.join(readable(t) for t in m['tokens'][:40])}"
        + (" …" if len(m["tokens"]) > 40 else ""),
        f"tags          {', '.join(m['tags']) or '-'}",
        f"category      {m['category'] or '-'}",
        f"kept          {'all groups' if kept.get('all_groups') else ', '.join(kept['groups'])} as {kept['dtype']} "
        f"({kept.get('tensors')} tensors)",
    ]
    lines += [f"summary       {key} = {value}" for key, value in sorted(s.items())]
    lines += [f"file          {name} {megabytes(r['bytes'])} sha256 {r['sha256'][:16]}… ok"
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
        print(json.dumps(s, sort_keys=True, ensure_ascii=False, indent=1))
        return 0
    lines = [f"store {root}: {s['traces']} traces, {megabytes(s['bytes'])}"
             + (f", {s['damaged']} damaged" if s["damaged"] else "")]
    if s["models"]:
        lines.append(f"{'MODEL':24} {'SHA256':13} {'ITER':>7} {'TRACES':>6} {'PROBES':>6} {'LOSS':>7} {'SIZE':>9}")
    for row in s["models"]:
        loss = row["mean_probe_loss_nats"]
        lines.append(f"{short(row['name'], 24):24} {row['checkpoint_sha256'][:12]:13} "
                     f"{row['iter_num'] if row['iter_num'] is not None else '-':>7} {row['traces']:>6} {row['probes']:>6} "
                     f"{f'{loss:.3f}' if loss is not None else '-':>7} {megabytes(row['bytes']):>9}")
    if s["tags"]:
        lines.append("tags: " + ", ".join(f"{t} ({n})" for t, n in s["tags"].items()))
    if s["categories"]:
        lines.append("categories: " + ", ".join(f"{c} ({n})" for c, n in s["categories"].items()))
    print("\n".join(lines))
    return 0


def traces_rm(args) -> int:
    root = root_of(args)
    for ref in args.ids:
        print(f"removed {store.remove(root, ref)}")
    return 0


def traces_main(argv: list[str]) -> int:
    parser = cli.Parser(
        prog="python -m visualizer traces",
        description="List, show, summarise and remove stored traces. Every plain run is stored (unless --no-store) "
        "under --store DIR, TRACE_STORE (environment or .env) or traces/. A trace id is 10 hex digits of a hash of "
        "the checkpoint, the probe and the store options; storing the same run again adds -2, -3, ... Commands "
        "take an id or a unique prefix of one.",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=cli.Parser)

    def action(name: str, help_: str, fn):
        p = sub.add_parser(name, help=help_, description=help_)
        add_store_flags(p)
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
    args = parser.parse_args(argv)
    return cli.run_guarded(lambda: args.fn(args), args.debug)


# ------------------------------------------------------------------------------- render, compare


def render_main(argv: list[str]) -> int:
    parser = store_parser("render", "Rebuild a stored trace's full report from its files: no model, no forward pass.")
    parser.add_argument("id", metavar="ID", help="trace id (or a unique prefix), or a path to a trace folder")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the report into exactly DIR")
    args = parser.parse_args(argv)

    def go() -> int:
        import visualizer.pipeline as report
        import visualizer.site.common as site

        stored = store.open_trace(root_of(args), args.id)
        if Path(args.out).resolve() == stored.folder.resolve():
            raise VisualizerError(f"--out {args.out}: that is the trace itself; choose another folder")
        check_renderable(stored)
        with site.atomic_folder(Path(args.out)) as tmp:
            for name in store.DATA_FILES:
                if (stored.folder / name).is_file():
                    shutil.copyfile(stored.folder / name, tmp / name)
            if not (tmp / "analysis.json").is_file():
                write_analysis(tmp, stored.name)
            report.render_from_files(tmp)
        print(f"report: {Path(args.out) / 'index.html'}")
        return 0

    return cli.run_guarded(go, args.debug)


def check_renderable(stored: store.StoredTrace) -> None:
    """The report page needs report_data.json and every layer's attention pattern."""
    kept = (stored.manifest or {}).get("kept", {})
    if kept and not kept.get("all_groups") and "attn" not in kept["groups"]:
        raise VisualizerError(f"trace {stored.name}: stored with --keep {','.join(kept['groups'])}, without the attention "
                              "patterns the report page draws; it cannot be rendered (traces show and compare still work)")
    if not (stored.folder / "report_data.json").is_file():
        raise VisualizerError(f"trace {stored.name}: report_data.json: missing (the report page needs it)")


def write_analysis(folder: Path, owner: str) -> None:
    """analysis.json for a trace stored without one (pure: reads the folder's files)."""
    from visualizer.analysis.summary import analyze
    from visualizer.readfile import read_json
    from visualizer.artefacts.trace import dumps, read_activations

    trace = read_json(folder / "trace.json", f"trace {owner}")
    data = read_json(folder / "report_data.json", f"trace {owner}") if (folder / "report_data.json").is_file() else None
    tensors = read_activations(folder / store.ACTIVATIONS, f"trace {owner}")
    (folder / "analysis.json").write_text(dumps(analyze(tensors, trace, data), compact=True), encoding="utf-8")


def compare_main(argv: list[str]) -> int:
    parser = store_parser("compare", "Compare two traces (two checkpoints on one probe, or two probes on one "
                          "checkpoint): residual cosine, attention Jensen-Shannon, next-token KL, side-by-side heads.")
    parser.add_argument("a", metavar="A", help="trace id (or unique prefix), or a path to a trace or report folder")
    parser.add_argument("b", metavar="B", help="the other trace")
    parser.add_argument("--out", required=True, metavar="DIR", help="write the comparison page into exactly DIR")
    args = parser.parse_args(argv)

    def go() -> int:
        import visualizer.store.compare as compare

        root = root_of(args)
        a = compare.Side(store.open_trace(root, args.a))
        b = compare.Side(store.open_trace(root, args.b))
        result = compare.compare(a, b)
        compare.write_site(Path(args.out), a, b, result)
        nt = result["next_token"]
        summary = f"mean next-token KL {nt['mean_kl_bits']:.4g} bits; " if nt else ""
        print(f"compared {result['positions']} positions ({result['mode']}); {summary}page: {Path(args.out) / 'index.html'}")
        return 0

    return cli.run_guarded(go, args.debug)


cli.SUBCOMMANDS["traces"] = ("list, show, summarise or remove stored traces", traces_main)
cli.SUBCOMMANDS["render"] = ("rebuild a stored trace's report without the model", render_main)
cli.SUBCOMMANDS["compare"] = ("compare two traces (checkpoints or probes)", compare_main)
