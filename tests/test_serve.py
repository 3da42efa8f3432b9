"""`serve`: the local app, tested against a real server (uvicorn on a socket bound here, in a thread;
one test runs the command itself as a subprocess).

Security: spoofed Host, no token, cross-origin and non-JSON POSTs, oversized bodies, invalid
probes, traversal attempts and symbolic links are refused and leak no file content. Process model:
one forward at a time, FIFO order, 429 when the queue is full, cancel, health stays fast while a
job runs, a job nobody listens to still lands in the store, SSE resumes after Last-Event-ID.
Output: Visualize's folder is byte-identical to `render ID --out`, Compare's to `compare A B --out`.
Browser (Chromium): tokens stream onto the page while the job runs, a stream the server drops is
resumed by the page's EventSource with Last-Event-ID (every token once, in order), hostile
vocabularies show as text, no console error, no CSP violation, no request off loopback.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import visualizer.generation.decode as decode
from tests.support.cli import REPO_ROOT, artifacts_dir, run_cli
from tests.support.nanogpt import make_checkpoint
from tests.support.site import INJECTION_PROBE, INJECTION_VOCAB
from visualizer.config import ModelSource
from visualizer.pipeline import open_model
from visualizer.serve import events, server
from visualizer.serve.security import COOKIE, MAX_BODY_BYTES
from visualizer.serve.work import Context

PROBE = "to be or not"
CHROMIUM = Path("/usr/bin/chromium")


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-model")
    ckpt, meta = make_checkpoint(folder, n_layer=2, n_head=2, n_embd=16, block_size=64)
    return ckpt, open_model(ModelSource(checkpoint=ckpt, meta=meta), quiet=True)


class Client:
    """Raw HTTP to the app (http.client: paths are sent exactly as written)."""

    def __init__(self, url: str):
        match = re.fullmatch(r"http://([^/:]+):(\d+)/\?token=(.+)", url)
        assert match, url
        self.host, self.port, self.token = match.group(1), int(match.group(2)), match.group(3)
        self.origin = f"http://{self.host}:{self.port}"
        self.cookie = f"{COOKIE}={self.token}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                session: bool = True, timeout: float = 30):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        sent = {"Host": f"{self.host}:{self.port}"}
        if session:
            sent["Cookie"] = self.cookie
        sent.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in sent.items():
            if v is not None:
                conn.putheader(k, v)
        if body is not None and "Content-Length" not in sent:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, payload, headers: dict | None = None, **kw):
        sent = {"Origin": self.origin, "Content-Type": "application/json", **(headers or {})}
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, sent, **kw)

    def json(self, path: str):
        status, _, data = self.get(path)
        assert status == 200, (path, status, data)
        return json.loads(data)

    def submit(self, path: str, payload) -> str:
        status, _, data = self.post(path, payload)
        assert status == 202, (status, data)
        return json.loads(data)["job"]

    def events(self, job: str, after: int | None = None) -> list[tuple[int, str, dict]]:
        """Every event of a job (reads until its final event)."""
        _, _, data = self.get(f"/api/jobs/{job}/events", headers={"Last-Event-ID": str(after) if after else None},
                              timeout=120)
        out = []
        for block in data.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
            if "event" in fields:
                out.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
        return out

    def wait(self, job: str, timeout: float = 120) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            state = self.json(f"/api/jobs/{job}")
            if state["state"] in ("done", "failed", "cancelled"):
                return state
            time.sleep(0.02)
        raise AssertionError(f"job {job} did not finish")


@pytest.fixture
def app(model, tmp_path):
    """A running app on a pre-bound 127.0.0.1 socket; yields (Client, Running, Context)."""
    started = []

    def start(max_queued: int = 8, loaded=None, checkpoint=None):
        ckpt, default = model
        ctx = Context(loaded=loaded or default, checkpoint=checkpoint or ckpt, store=tmp_path / "store",
                      site=tmp_path / "site")
        ctx.site.mkdir(exist_ok=True)
        running = server.start_in_thread(server.prepare(ctx, server.bind("127.0.0.1", 0), max_queued=max_queued))
        started.append(running)
        return Client(running.url), running, ctx

    yield start
    for running in started:
        running.stop()


class Gate:
    """Wraps decode.generate: every step waits for `release`; counts steps running at once."""

    def __init__(self, monkeypatch, hold: bool = True, step_seconds: float = 0.0):
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.first = threading.Event()
        self.active = self.most = 0
        self.finished: list[str] = []
        self.lock = threading.Lock()
        real = decode.generate

        def generate(loaded, prompt_ids, max_new_tokens, settings, on_step=None, verify_last=True):
            def step(s):
                with self.lock:
                    self.active += 1
                    self.most = max(self.most, self.active)
                time.sleep(step_seconds)
                with self.lock:
                    self.active -= 1
                on_step(s)
                self.first.set()
                assert self.release.wait(60)

            gen = real(loaded, prompt_ids, max_new_tokens, settings, on_step=step, verify_last=verify_last)
            self.finished.append(loaded.tokenizer.decode(prompt_ids))
            return gen

        monkeypatch.setattr(decode, "generate", generate)


def same_folder(a: Path, b: Path) -> None:
    """The two folders hold the same files with the same bytes."""
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    again = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files == again
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def no_leak(data: bytes) -> None:
    assert b"SECRET-CONTENT" not in data and b"root:" not in data


# --------------------------------------------------------------------------------------- security


def test_the_token_moves_into_a_strict_cookie_and_every_response_carries_the_headers(app):
    client, _, _ = app()
    status, headers, _ = client.get(f"/?token={client.token}&x=1", session=False)
    assert status == 303 and headers["location"] == "/?x=1"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={client.token};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, headers, page = client.get("/")
    assert status == 200 and b"<script src=\"/assets/app.js\"></script>" in page
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"
    assert "access-control-allow-origin" not in headers
    assert re.search(rb"<script(?![^>]*\bsrc=)[^>]*>", page) is None  # no inline script at all


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1:1", "127.0.0.1.evil.example", "", None])
def test_a_spoofed_host_is_refused(app, host):
    client, _, _ = app()
    status, _, data = client.get("/api/info", headers={"Host": host})
    assert status in (400, 421) and b"shakespeare" not in data and b"model" not in data


def test_no_token_or_a_wrong_one_is_refused(app):
    client, _, _ = app()
    for path in ("/", "/api/info", "/api/traces", "/assets/app.js"):
        status, _, data = client.get(path, session=False)
        assert status == 401 and b"model" not in data, path
    status, headers, _ = client.get("/?token=wrong", session=False)
    assert status == 403 and "set-cookie" not in headers
    status, _, _ = client.get("/api/info", session=False, headers={"Cookie": f"{COOKIE}=wrong"})
    assert status == 401


def test_cross_origin_non_json_and_oversized_posts_are_refused(app, model):
    client, running, _ = app()
    body = {"text": PROBE, "max_new_tokens": 2}
    for origin in ("http://evil.example", "null", None, f"http://127.0.0.1:{client.port + 1}", "https://127.0.0.1"):
        status, _, _ = client.post("/api/generate", body, headers={"Origin": origin})
        assert status == 403, origin
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        status, _, _ = client.post("/api/generate", body, headers={"Content-Type": kind})
        assert status == 415, kind
    status, _, _ = client.post("/api/generate", b"x" * (MAX_BODY_BYTES + 1))
    assert status == 413
    status, _, _ = client.post("/api/generate", b"{}", headers={"Content-Length": str(MAX_BODY_BYTES + 10)})
    assert status == 413
    status, _, _ = client.request("OPTIONS", "/api/generate", headers={"Origin": "http://evil.example",
                                                                      "Access-Control-Request-Method": "POST"})
    assert status == 405
    for method in ("PUT", "DELETE", "PATCH"):
        assert client.request(method, "/api/generate", b"{}", {"Origin": client.origin,
                                                               "Content-Type": "application/json"})[0] == 405
    assert running.worker.jobs == {}  # nothing was queued


@pytest.mark.parametrize("payload", [
    {}, {"text": ""}, {"text": "   "}, {"text": 5}, {"text": ["a"]}, {"text": "a\x00b"},
    {"text": "x" * (256 * 1024 + 1)}, {"text": PROBE, "max_new_tokens": 0}, {"text": PROBE, "max_new_tokens": 10**6},
    {"text": PROBE, "max_new_tokens": True}, {"text": PROBE, "temperature": -1}, {"text": PROBE, "top_p": 2},
    {"text": PROBE, "top_k": 0}, {"text": PROBE, "stop": [""]}, {"text": PROBE, "stop": "x"}, {"text": PROBE, "chat": True},
    {"text": PROBE, "seed": -1}, [1, 2], "text",
])
def test_an_invalid_probe_or_setting_is_a_400_with_one_line(app, payload):
    client, running, _ = app()
    status, headers, data = client.post("/api/generate", payload)
    assert status in (400, 413), payload
    message = json.loads(data)["error"]
    assert "\n" not in message and len(message) < 300
    assert running.worker.jobs == {}
    status, _, data = client.post("/api/generate", b"{not json")
    assert status == 400


def test_traversal_attempts_and_symlinks_serve_no_file(app, tmp_path):
    client, _, ctx = app()
    (tmp_path / "secret.txt").write_text("SECRET-CONTENT", encoding="utf-8")
    (ctx.site / "reports").mkdir()
    (ctx.site / "reports" / "ok.txt").write_text("fine", encoding="utf-8")
    (ctx.site / "reports" / "link.txt").symlink_to(tmp_path / "secret.txt")
    (ctx.site / "reports" / "linkdir").symlink_to(tmp_path)
    (ctx.site / ".hidden").mkdir()
    (ctx.site / ".hidden" / "x.txt").write_text("SECRET-CONTENT", encoding="utf-8")
    assert client.get("/site/reports/ok.txt")[2] == b"fine"
    for path in ("/site/../secret.txt", "/site/%2e%2e/secret.txt", "/site/..%2fsecret.txt", "/site/reports/..%2f..%2fsecret.txt",
                 "/site/%2E%2E%2Fsecret.txt", "/site/reports/../../secret.txt", "/site/..\\secret.txt", "/site/%5c..%5csecret.txt",
                 "/site//etc/passwd", "/site/%2fetc%2fpasswd", f"/site/{tmp_path}/secret.txt", "/site/reports/link.txt",
                 "/site/reports/linkdir/secret.txt", "/site/.hidden/x.txt", "/site/reports/%00", "/../secret.txt",
                 "/assets/..%2f..%2fREADME.md", "/api/jobs/..%2f..%2fsecret.txt/events", "/api/jobs/../../etc/passwd"):
        status, _, data = client.get(path)
        assert status in (400, 401, 404), (path, status)
        no_leak(data)
    for payload in ({"a": "../secret", "b": "0123456789"}, {"a": str(tmp_path), "b": "x"}, {"a": "0123456789", "b": "/etc"}):
        status, _, data = client.post("/api/compare", payload)
        assert status == 400 and b"SECRET" not in data
    status, _, _ = client.post("/api/visualize", {"job": "../../etc/passwd"})
    assert status == 400


def test_the_default_socket_is_loopback_and_other_hosts_need_allow_host():
    sock = server.bind("127.0.0.1", 0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    from visualizer.cli import build_parser
    from visualizer.errors import VisualizerError

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    with pytest.raises(VisualizerError, match="--allow-host"):
        server.check_host("0.0.0.0", ())
    server.check_host("0.0.0.0", ("0.0.0.0",))
    server.check_host("::1", ())


# ---------------------------------------------------------------------------------- process model


def test_four_concurrent_jobs_run_one_at_a_time_in_fifo_order(app, model, monkeypatch):
    gate = Gate(monkeypatch, hold=False, step_seconds=0.01)
    adapter = model[1].adapter
    forwards = {"active": 0, "most": 0, "count": 0}
    real_step = adapter.step

    def step(*args, **kwargs):  # every forward of a generation goes through the adapter's step
        forwards["active"] += 1
        forwards["most"] = max(forwards["most"], forwards["active"])
        forwards["count"] += 1
        time.sleep(0.005)
        try:
            return real_step(*args, **kwargs)
        finally:
            forwards["active"] -= 1

    monkeypatch.setattr(adapter, "step", step)
    client, running, _ = app()
    ids: dict[str, str] = {}
    barrier = threading.Barrier(4)

    def submit(i: int) -> None:
        barrier.wait()
        ids[client.submit("/api/generate", {"text": f"{PROBE} {'abcd'[i]}", "max_new_tokens": 5})] = f"{PROBE} {'abcd'[i]}"

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in ids:
        assert client.wait(job)["state"] == "done"
    queued_order = [ids[j] for j in running.worker.jobs if j in ids]  # the order the queue took them in
    assert gate.finished == queued_order and gate.most == 1
    assert forwards["most"] == 1 and forwards["count"] == 4 * 5
    positions = [e[2]["position"] for e in client.events(list(running.worker.jobs)[-1]) if e[1] == "queued"]
    assert positions[0] >= 1 and positions == sorted(positions, reverse=True)  # the last one saw its place shrink


def test_a_full_queue_answers_429_and_cancel_works(app, monkeypatch):
    gate = Gate(monkeypatch)
    client, running, _ = app(max_queued=2)
    first = client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 20})
    assert gate.first.wait(30)
    waiting = [client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 3}) for _ in range(2)]
    status, _, data = client.post("/api/generate", {"text": PROBE, "max_new_tokens": 3})
    assert status == 429 and "queue is full" in json.loads(data)["error"]
    assert client.post(f"/api/jobs/{waiting[0]}/cancel", {})[0] == 200  # a queued job: dropped
    assert client.json(f"/api/jobs/{waiting[0]}")["state"] == "cancelled"
    assert client.post(f"/api/jobs/{first}/cancel", {})[0] == 200  # the running job: stops at its next step
    gate.release.set()
    assert client.wait(first)["state"] == "cancelled"
    tokens = [e for e in client.events(first) if e[1] == "token"]
    assert 1 <= len(tokens) < 20
    assert client.wait(waiting[1])["state"] == "done"
    assert gate.finished == [gate.finished[0]]  # the cancelled ones never finished a generation
    assert client.post("/api/jobs/0123456789abcdef/cancel", {})[0] == 404


def test_health_answers_fast_while_a_long_job_runs(app):
    """A real job (1000 tokens past a 64-token context: a full forward per step) keeps the model
    thread busy while /api/health is asked; the event loop never waits for it."""
    client, _, _ = app()
    job = client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 1000})
    deadline = time.monotonic() + 30
    while client.json(f"/api/jobs/{job}")["events"] < 5:  # queued, started, a few tokens
        assert time.monotonic() < deadline
        time.sleep(0.01)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        status, _, data = client.get("/api/health")
        times.append(time.perf_counter() - start)
        assert status == 200 and json.loads(data)["queue"] == 1
    assert client.json(f"/api/jobs/{job}")["state"] == "running"
    assert sorted(times)[5] < 0.2, times  # all but the slowest (a shared machine may stall any one request)
    client.post(f"/api/jobs/{job}/cancel", {})
    assert client.wait(job)["state"] == "cancelled"


def test_events_resume_after_last_event_id(app):
    client, _, _ = app()
    job = client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 6, "temperature": 0})
    every = client.events(job)
    assert [e[0] for e in every] == list(range(1, len(every) + 1)) and every[-1][1] == "done"
    tokens = [e[2] for e in every if e[1] == "token"]
    assert [t["index"] for t in tokens] == list(range(6)) and all(0 < t["prob"] <= 1 for t in tokens)
    rest = client.events(job, after=3)
    assert rest == every[3:]


def test_visualize_lands_in_the_store_unwatched_and_equals_render(app, tmp_path):
    client, _, ctx = app()
    gen = client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 4, "temperature": 0})
    done = client.wait(gen)
    assert done["state"] == "done"
    job = client.submit("/api/visualize", {"job": gen, "tags": ["app-test"]})  # nobody reads its events
    deadline = time.monotonic() + 120
    while not list((tmp_path / "store").glob("[0-9a-f]*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    result = client.wait(job)["result"]
    trace = result["trace"]
    assert (tmp_path / "store" / trace / "manifest.json").is_file()
    manifest = json.loads((tmp_path / "store" / trace / "manifest.json").read_text())
    assert manifest["probe"] == PROBE + done["result"]["continuation"] and manifest["tags"] == ["app-test"]
    shown = ctx.site / ctx.model_folder / trace  # <site>/<model>/<id>/ as `report` lays out visualizations/
    assert result["url"] == f"/site/{ctx.model_folder}/{trace}/index.html"
    assert client.get("/site/index.html")[0] == 200  # the reports' "all reports" link lands on the site index
    status, headers, page = client.get(result["url"])
    assert status == 200 and page == (shown / "index.html").read_bytes()
    assert "unsafe-inline" in headers["content-security-policy"] and "script-src 'self'" in headers["content-security-policy"]
    code, _, err = run_cli("render", trace, "--store", tmp_path / "store", "--out", tmp_path / "rendered")
    assert code == 0, err
    same_folder(shown, tmp_path / "rendered")
    listed = client.json("/api/traces?tag=app-test")["traces"]
    assert [t["id"] for t in listed] == [trace] and listed[0]["url"] == result["url"]
    assert client.json("/api/traces?tag=nothing")["traces"] == []
    assert client.json("/api/traces?model=no-such-model")["traces"] == []
    # a second probe, then compare the two
    other = client.wait(client.submit("/api/visualize", {"text": "not to be"}))["result"]["trace"]
    compared = client.wait(client.submit("/api/compare", {"a": trace, "b": other}))
    assert compared["state"] == "done", compared
    status, _, page = client.get(compared["result"]["url"])
    assert status == 200
    # the app's comparison equals `compare A B --out` for the same two traces, byte for byte
    assert compared["result"]["url"] == f"/site/compare/{trace}_{other}/index.html"
    code, _, err = run_cli("compare", trace, other, "--store", tmp_path / "store", "--out", tmp_path / "compared")
    assert code == 0, err
    same_folder(ctx.site / "compare" / f"{trace}_{other}", tmp_path / "compared")
    assert page == (tmp_path / "compared" / "index.html").read_bytes()


def test_a_chat_model_offers_the_chat_box_and_generates_a_reply(app, tmp_path):
    from tests.support.nanochat import make_nanochat
    from visualizer.model.registry import load_model

    folder = make_nanochat(tmp_path / "chat", n_layer=1, n_head=2, n_kv_head=1, n_embd=32, sequence_len=64)
    client, _, _ = app(loaded=load_model(folder, None), checkpoint=folder)
    assert client.json("/api/info")["chat"] is True
    job = client.submit("/api/generate", {"text": "hello there", "chat": True, "max_new_tokens": 3, "temperature": 0})
    state = client.wait(job)
    assert state["state"] == "done" and state["result"]["tokens"] >= 1, state


def test_a_model_without_a_chat_format_has_no_chat_box(app):
    client, _, _ = app()
    assert client.json("/api/info")["chat"] is False
    status, _, data = client.post("/api/generate", {"text": PROBE, "chat": True})
    assert status == 400 and "chat" in json.loads(data)["error"]


# ------------------------------------------------------------------------------------------ command


def listening_address(port: int) -> str | None:
    """The local address of the socket listening on `port` (/proc/net/tcp, state 0A)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":
                return address
    return None


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_command_prints_its_url_listens_on_loopback_and_stops_on_sigint(model, tmp_path):
    ckpt, _ = model
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "visualizer", "serve", "--no-browser", "--port", "0",
                             "--checkpoint", str(ckpt), "--store", str(tmp_path / "store"), "--site", str(tmp_path / "site")],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            match = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
            url = match.group(0) if match else None
        client = Client(url)
        assert listening_address(client.port) == "0100007F"  # 127.0.0.1, nothing else
        assert client.get(f"/?token={client.token}", session=False)[0] == 303
        assert client.json("/api/health")["ok"] is True
        job = client.submit("/api/generate", {"text": PROBE, "max_new_tokens": 3})
        assert client.wait(job)["state"] == "done"
        assert children_of(proc.pid) == []  # one process
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_a_non_loopback_host_without_allow_host_is_one_error_line():
    code, out, err = run_cli("serve", "--host", "0.0.0.0", "--no-browser")
    assert code == 2 and err.count("\n") == 1 and "--allow-host" in err


# ------------------------------------------------------------------------------------------ browser


def until(page, expression: str, timeout_ms: int = 30_000) -> None:
    """Poll `expression` from outside the page (the app's CSP forbids the eval wait_for_function uses)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu",
                                                                    "--no-first-run", "--disable-background-networking"])
        yield b
        b.close()


def test_in_chromium_tokens_stream_while_the_job_runs_and_hostile_text_stays_text(app, browser, monkeypatch, tmp_path):
    ckpt, meta = make_checkpoint(tmp_path / "hostile-model", n_layer=1, n_head=2, n_embd=16, block_size=128,
                                 vocab=INJECTION_VOCAB)
    loaded = open_model(ModelSource(checkpoint=ckpt, meta=meta), quiet=True)
    gate = Gate(monkeypatch)
    client, _, ctx = app(loaded=loaded, checkpoint=ckpt)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    console, requests, dialogs = [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: console.append(("error", f"{r.status} {r.url}")) if r.status >= 400 else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{client.origin}/?token={client.token}", wait_until="load")
    assert page.url == f"{client.origin}/"  # the token left the address bar
    until(page, "document.getElementById('model').textContent.includes('context')")
    page.fill("#text", INJECTION_PROBE)
    page.fill("#max_new_tokens", "12")
    start = time.perf_counter()
    page.click("#generate")
    page.wait_for_selector("#tokens .tok", timeout=30_000)
    first_token_s = time.perf_counter() - start
    assert gate.first.is_set() and not gate.release.is_set()
    assert client.json("/api/health")["queue"] == 1
    assert page.locator("#cancel").is_enabled()  # the job still runs
    assert page.locator("#tokens .tok").count() == 1
    gate.release.set()
    until(page, "document.getElementById('generate').disabled === false", 60_000)
    assert page.locator("#tokens .tok").count() == 12
    texts = page.evaluate("Array.from(document.querySelectorAll('#tokens .tok')).map(e => e.textContent)")
    assert all(t in INJECTION_VOCAB for t in texts)
    assert page.locator("#prompt-text").text_content() == INJECTION_PROBE
    timing = page.locator("#timing").text_content()
    page.click("#visualize")
    until(page, "document.getElementById('viewer').src.includes('/index.html')", 120_000)
    frame = page.frame_locator("#viewer")
    frame.locator("ol.tokens .tok").first.wait_for(timeout=30_000)
    page.wait_for_selector("#traces tbody tr")
    probe_cell = page.locator("#traces td.probe").first.text_content()
    assert probe_cell.startswith(INJECTION_PROBE[:60])
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('#output *:not(span)').length") == 0
    page.screenshot(path=str(artifacts_dir() / "serve-app.png"))
    errors = [m for m in console if m[0] in ("error", "pageerror") or "Content Security Policy" in m[1]]
    assert errors == []
    assert all(u.startswith((client.origin + "/", "about:", "data:")) for u in requests), requests
    (artifacts_dir() / "serve-timing.txt").write_text(f"first token on page {first_token_s * 1000:.0f} ms (gated); {timing}\n")
    page.close()


def test_latency_from_generate_to_first_token_in_chromium(app, browser, model):
    """Ungated: Generate -> first token on the page, and per token (written to the artefacts folder)."""
    client, _, _ = app()
    page = browser.new_page()
    page.goto(f"{client.origin}/?token={client.token}", wait_until="load")
    until(page, "document.getElementById('model').textContent.includes('context')")
    page.fill("#text", PROBE)
    page.fill("#max_new_tokens", "40")
    page.click("#generate")
    until(page, "document.getElementById('timing').textContent.includes('first token')", 60_000)
    timing = page.locator("#timing").text_content()
    assert page.locator("#tokens .tok").count() == 40
    first_ms = float(re.search(r"first token (\d+) ms", timing).group(1))
    assert first_ms < 5000
    with open(artifacts_dir() / "serve-timing.txt", "a") as f:
        f.write(f"tiny model, 40 tokens: {timing}\n")
    page.close()


def test_in_chromium_a_dropped_stream_resumes_after_last_event_id_without_gaps_or_repeats(app, browser, monkeypatch):
    """The server ends every event stream after 3 events (as a dropped connection would); the page's
    EventSource reconnects each time with Last-Event-ID and ends with every token once, in order."""
    asked = []
    real_stream, real_last = events.stream, events.last_event_id

    def last_event_id(value):
        asked.append(value)
        return real_last(value)

    async def dropping(job, after):
        inner, sent = real_stream(job, after), 0
        try:
            async for chunk in inner:
                yield chunk
                sent += chunk.startswith(b"id: ")
                if sent == 3:
                    return
        finally:
            await inner.aclose()

    monkeypatch.setattr(events, "stream", dropping)
    monkeypatch.setattr(events, "last_event_id", last_event_id)
    client, _, ctx = app()
    page = browser.new_page()
    console, requests = [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.append(("pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{client.origin}/?token={client.token}", wait_until="load")
    until(page, "document.getElementById('model').textContent.includes('context')")
    page.fill("#text", PROBE)
    page.fill("#max_new_tokens", "8")
    page.fill("#temperature", "0")
    page.click("#generate")
    until(page, "document.getElementById('generate').disabled === false", 60_000)
    # queued, started, 8 tokens, done: 11 events over four connections, each after the last id seen
    assert asked == [None, "3", "6", "9"]
    titles = page.evaluate("Array.from(document.querySelectorAll('#tokens .tok')).map(e => e.title)")
    shown = [tuple(int(x) for x in re.match(r"step (\d+) · id (\d+) · ", t).groups()) for t in titles]
    (job,) = list(ctx.generations)
    assert shown == list(enumerate(ctx.sequence_of(job)["ids"])) and len(shown) == 8
    assert client.json(f"/api/jobs/{job}")["state"] == "done"
    assert page.locator("#status").text_content().startswith("8 tokens")
    errors = [m for m in console if m[0] in ("error", "pageerror") or "Content Security Policy" in m[1]]
    assert errors == []
    assert sum(u.startswith(f"{client.origin}/api/jobs/{job}/events") for u in requests) == 4
    assert all(u.startswith((client.origin + "/", "about:", "data:")) for u in requests), requests
    page.close()
