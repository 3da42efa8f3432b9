"""Run the app: bind the socket (127.0.0.1 unless told otherwise), start the model thread, print
the URL with its token, open the browser, serve until Ctrl-C, then stop the model thread.

One process, one uvicorn server on a socket bound here (so the port is known before the URL is
printed, and tests can hand in a socket bound to port 0).

What this module does not do: load the model (cli/serve.py through pipeline.open_model) or route.
"""

from __future__ import annotations

import socket
import sys
import threading
from dataclasses import dataclass

from visualizer.errors import VisualizerError
from visualizer.serve.app import create_app
from visualizer.serve.jobs import Worker
from visualizer.serve.security import is_loopback, new_token
from visualizer.serve.work import Context


@dataclass
class Running:
    """A started app: its URL (with the token), the uvicorn server, the model thread."""

    url: str
    server: object
    worker: Worker
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(10)
        self.worker.stop()


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise VisualizerError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    sock.listen(64)
    sock.set_inheritable(False)
    return sock


def check_host(host: str, allowed: tuple[str, ...]) -> None:
    if not is_loopback(host) and host.lower() not in {a.lower() for a in allowed}:
        raise VisualizerError(f"--host {host}: not a loopback address; listening there lets other machines in, "
                              f"so repeat it with --allow-host {host} if you mean it")


def prepare(ctx: Context, sock: socket.socket, allowed: tuple[str, ...] = (), max_queued: int = 8,
            token: str | None = None) -> Running:
    """The app on `sock` (not yet serving): call serve() or start() on the result's server."""
    import uvicorn

    token = token or new_token()
    worker = Worker(max_queued).start()
    guard = create_app(ctx, worker, token, allowed)
    host, port = sock.getsockname()[:2]
    guard.port = port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    config = uvicorn.Config(guard, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2,
                            server_header=False, date_header=False, h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    server.sockets_given = [sock]
    return Running(url=f"http://{shown}:{port}/?token={token}", server=server, worker=worker)


def start_in_thread(running: Running) -> Running:
    """Serve from a thread (tests): returns once the server accepts connections."""
    sockets = running.server.sockets_given
    running.thread = threading.Thread(target=lambda: running.server.run(sockets=sockets), daemon=True)
    running.thread.start()
    while not running.server.started:
        if not running.thread.is_alive():
            raise RuntimeError("the server thread ended before it started")
        threading.Event().wait(0.01)
    return running


def serve_forever(running: Running, open_browser: bool) -> None:
    """Serve in this (main) thread until Ctrl-C; uvicorn turns SIGINT into a graceful stop."""
    if open_browser:
        import webbrowser

        threading.Timer(0.5, lambda: webbrowser.open(running.url)).start()
    try:
        running.server.run(sockets=running.server.sockets_given)
    except KeyboardInterrupt:  # uvicorn stops gracefully, then raises the captured SIGINT again: a normal stop
        pass
    finally:
        running.worker.stop()
        print("stopped", file=sys.stderr, flush=True)
