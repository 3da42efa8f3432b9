"""`python -m visualizer serve`: the local app (generate, watch tokens stream, visualize, compare).

Loads the model once, listens on 127.0.0.1 (a non-loopback --host needs --allow-host and is
warned about), prints `http://127.0.0.1:PORT/?token=...` and opens it unless --no-browser. Every
page the app shows is a report folder written by the report's own code into --site, and every
Visualize is kept in the trace store.

What this module does not do: serve or compute (visualizer/serve/ and pipeline.py do).
"""

from __future__ import annotations

import argparse

from visualizer.cli.options import add_model_options

HELP = "a local app: generate, stream tokens, visualize and compare traces in the browser"
DESCRIPTION = ("Serve a local app on 127.0.0.1 around one loaded model: type a probe, generate with sampling controls "
               "and watch tokens arrive, cancel, visualize the text so far (a report, kept in the trace store), "
               "list stored traces and compare two. Open the printed URL (it carries the session token).")


def configure(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--port", type=int, default=8765, metavar="N", help="port to listen on (default 8765; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="address to listen on (default 127.0.0.1; anything else also needs --allow-host H)")
    p.add_argument("--allow-host", action="append", default=[], metavar="H",
                   help="accept requests addressed to host name H (repeatable); required for a non-loopback --host")
    p.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    p.add_argument("--store", metavar="DIR", help="trace store root (.env: TRACE_STORE; default traces/)")
    p.add_argument("--site", default="visualizations/app", metavar="DIR",
                   help="where the app writes the reports and comparisons it shows (default visualizations/app)")
    p.add_argument("--queue", type=int, default=8, metavar="N", help="jobs that may wait for the model (default 8)")
    p.add_argument("--env-file", default=None, metavar="PATH", help="read settings from this file instead of ./.env")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")


def run(args) -> int:
    from pathlib import Path

    from visualizer.config import env_of, in_range, model_source, store_root
    from visualizer.errors import VisualizerError
    from visualizer.serve import server
    from visualizer.serve.security import is_loopback

    in_range("--port", args.port, 0, 65535)
    in_range("--queue", args.queue, 1, 1000)
    allowed = tuple(args.allow_host)
    server.check_host(args.host, allowed)
    env = env_of(args)
    root = store_root(args, env)
    site = Path(args.site)
    if site.is_symlink():
        raise VisualizerError(f"--site {site}: is a symbolic link; give the folder itself")
    site.mkdir(parents=True, exist_ok=True)
    if site.resolve() == root.resolve() or root.resolve() in site.resolve().parents or site.resolve() in root.resolve().parents:
        raise VisualizerError(f"--site {site}: is inside or around the trace store {root}; choose another folder")
    sock = server.bind(args.host, args.port)  # before loading: a busy port costs nothing
    if not is_loopback(args.host):
        print(f"warning: listening on {args.host}: anyone who can reach it and holds the token can use the model",
              flush=True)
    from visualizer.pipeline import checkpoint_paths, open_model
    from visualizer.serve.work import Context

    source = model_source(args, env)
    loaded = open_model(source, quiet=False)
    ctx = Context(loaded=loaded, checkpoint=checkpoint_paths(source)[0], store=root, site=site.resolve())
    running = server.prepare(ctx, sock, allowed, args.queue)
    print(f"serving {loaded.name}: {running.url}", flush=True)
    print("(Ctrl-C stops)", flush=True)
    server.serve_forever(running, open_browser=not args.no_browser)
    return 0
