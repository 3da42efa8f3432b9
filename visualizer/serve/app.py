"""The app's routes: the page, its two assets, the JSON API and the site folder's reports.

    GET  /                         the app page (templates/app.html)
    GET  /assets/app.js|app.css    its script and stylesheet (/favicon.ico: 204, nothing)
    GET  /api/health               answers at once, whatever the model thread is doing
    GET  /api/info                 the model, chat or not, the limits
    POST /api/generate             queue a generation      -> 202 {job, position}  (429 when full)
    POST /api/visualize            queue a report + trace   -> 202 {job, position}
    POST /api/compare              queue a comparison       -> 202 {job, position}
    GET  /api/jobs/{id}            a job's state
    GET  /api/jobs/{id}/events     its server-sent events (Last-Event-ID resumes)
    POST /api/jobs/{id}/cancel     cancel it
    GET  /api/traces?tag=&model=   stored traces (manifests only)
    GET  /site/...                 report and comparison folders, as written (no symbolic links)

Every id is checked against its pattern before any file is touched; no route takes a path, and
none deletes anything. Security checks wrap everything (security.py).

What this module does not do: run torch (work.py on the model thread), or build a page's content
(the page's script asks the API).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import visualizer.serve.work as work
from visualizer.config import MAX_PROBE_BYTES, check_probe_size
from visualizer.errors import VisualizerError, one_line
from visualizer.serve import events
from visualizer.serve.jobs import QueueFull, Worker
from visualizer.serve.security import JOB_ID, Guard

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
MAX_NEW_TOKENS = 1000
MAX_STOP_STRINGS, MAX_STOP_CHARS = 8, 200
MAX_TAGS = 8
TAG = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
TRACE_ID = re.compile(r"[0-9a-f]{10}(-[0-9]{1,6})?")


class BadRequest(Exception):
    pass


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise BadRequest(message)


def field(body: dict, name: str, kind, default=None, least=None, most=None):
    """One JSON field of the expected type (bool is not a number), within its range."""
    value = body.get(name, default)
    if value is None:
        return None
    kinds = (int, float) if kind is float else (kind,)
    expect(isinstance(value, kinds) and not (kind is not bool and isinstance(value, bool)), f"{name}: expected {kind.__name__}")
    if least is not None:
        expect(value >= least, f"{name}: must be at least {least}")
    if most is not None:
        expect(value <= most, f"{name}: must be at most {most}")
    return value


def probe_text(body: dict) -> str:
    text = field(body, "text", str)
    expect(text is not None and text.strip() != "", "text: the probe is empty")
    try:
        check_probe_size(text, "text")
    except VisualizerError as e:
        raise BadRequest(one_line(e)) from None
    expect("\x00" not in text, "text: contains a NUL character")
    return text


def sampling_settings(body: dict):
    import visualizer.generation.sampling as sampling

    stop = body.get("stop", [])
    expect(isinstance(stop, list) and len(stop) <= MAX_STOP_STRINGS and all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stop),
           f"stop: a list of at most {MAX_STOP_STRINGS} non-empty strings of at most {MAX_STOP_CHARS} characters")
    seed = field(body, "seed", int, least=0, most=2**32 - 1)
    try:
        return sampling.Settings(
            temperature=float(field(body, "temperature", float, 1.0, 0, 100)),
            top_k=field(body, "top_k", int, least=1, most=10**7),
            top_p=field(body, "top_p", float, least=0, most=1),
            repetition_penalty=float(field(body, "repetition_penalty", float, 1.0, 0, 100)),
            no_repeat_ngram_size=field(body, "no_repeat_ngram_size", int, 0, 0, 100),
            stop=tuple(stop), seed=sampling.DEFAULT_SEED if seed is None else seed).check()
    except VisualizerError as e:
        raise BadRequest(one_line(e).replace("--", "").replace("-", "_", 1)) from None


def tags_of(body: dict) -> tuple[str, ...]:
    tags = body.get("tags", [])
    expect(isinstance(tags, list) and len(tags) <= MAX_TAGS and all(isinstance(t, str) and TAG.fullmatch(t) for t in tags),
           f"tags: at most {MAX_TAGS} tags of letters, digits, _ . : - (40 at most)")
    return tuple(dict.fromkeys(tags))


def site_files(site: Path):
    """StaticFiles over the site folder, refusing dot-names (folders being written) before it looks."""
    static = StaticFiles(directory=site, follow_symlink=False)

    async def app(scope, receive, send):
        parts = scope["path"].split("/")
        if any(p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return await JSONResponse({"error": "not found"}, 404)(scope, receive, send)
        return await static(scope, receive, send)

    return app


def create_app(ctx: work.Context, worker: Worker, token: str, allowed_hosts: tuple[str, ...] = ()) -> Guard:
    """The ASGI app, behind its guard (set `guard.port` once the socket is bound)."""
    page = (TEMPLATES / "app.html").read_bytes()
    assets = {name: (TEMPLATES / "app" / name).read_bytes() for name in ASSETS}
    chat_available = has_chat(ctx)

    def failed(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status)

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body is not JSON") from None
        expect(isinstance(body, dict), "the body must be a JSON object")
        return body

    def text_and_chat(body: dict) -> tuple[str, bool]:
        """The probe and whether it is a chat message (only for a model with a chat format)."""
        chat = bool(field(body, "chat", bool, False))
        expect(not chat or chat_available, "chat: this model has no chat format")
        return probe_text(body), chat

    def queued(kind: str, fn) -> JSONResponse:
        try:
            job = worker.submit(kind, fn)
        except QueueFull:
            return failed(f"the queue is full ({worker.max_queued} jobs wait); try again when one is done", 429)
        return JSONResponse({"job": job.id, "position": job.events[0][2]["position"]}, 202)  # its place at submit

    def job_of(request: Request):
        job_id = request.path_params["job"]
        return worker.get(job_id) if JOB_ID.fullmatch(job_id) else None

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return failed("not found", 404)
        return Response(assets[name], media_type=ASSETS[name])

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "queue": worker.queue_length()})

    async def info(request: Request) -> Response:
        loaded = ctx.loaded
        return JSONResponse({"model": loaded.name, "family": loaded.family, "chat": chat_available,
                             "n_ctx": loaded.dims.n_ctx, "max_new_tokens": MAX_NEW_TOKENS,
                             "max_probe_bytes": MAX_PROBE_BYTES, "max_queued": worker.max_queued})

    def job_route(kind: str, parse):
        """A POST that queues a job: parse(body) checks every field and returns the job's work."""

        async def route(request: Request) -> Response:
            try:
                fn = parse(await body_of(request))
            except BadRequest as e:
                return failed(str(e))
            return queued(kind, fn)

        return route

    def generate(body: dict):
        text, chat = text_and_chat(body)
        max_new = field(body, "max_new_tokens", int, 50, 1, MAX_NEW_TOKENS)
        settings = sampling_settings(body)
        return lambda job: work.generate(ctx, job, text, chat, max_new, settings)

    def visualize(body: dict):
        tags = tags_of(body)
        source = body.get("job")
        if source is None:
            sequence = None
            text, chat = text_and_chat(body)
        else:  # a generation: its prompt and the tokens so far
            expect(isinstance(source, str) and JOB_ID.fullmatch(source) is not None, "job: not a job id")
            sequence = ctx.sequence_of(source)
            expect(sequence is not None, "job: no such generation")
            text, chat = None, sequence["chat"]
        return lambda job: work.visualize(ctx, job, text, chat, sequence, tags)

    def compare(body: dict):
        a, b = body.get("a"), body.get("b")
        for name, value in (("a", a), ("b", b)):
            expect(isinstance(value, str) and TRACE_ID.fullmatch(value) is not None, f"{name}: not a trace id")
            expect((ctx.store / value).is_dir(), f"{name}: no such trace in the store")
        expect(a != b, "a and b are the same trace")
        return lambda job: work.compare(ctx, job, a, b)

    async def job_state(request: Request) -> Response:
        job = job_of(request)
        return JSONResponse(job.describe()) if job else failed("no such job", 404)

    async def job_events(request: Request) -> Response:
        job = job_of(request)
        if job is None:
            return failed("no such job", 404)
        after = events.last_event_id(request.headers.get("last-event-id") or request.query_params.get("after"))
        return StreamingResponse(events.stream(job, after), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def cancel(request: Request) -> Response:
        job = job_of(request)
        if job is None:
            return failed("no such job", 404)
        worker.cancel(job)
        return JSONResponse({"job": job.id, "state": job.state})

    def traces(request: Request) -> Response:  # a plain function: Starlette runs it on its thread pool
        import visualizer.store.traces as store

        tags = [t for t in request.query_params.getlist("tag") if t][:MAX_TAGS]
        model = request.query_params.get("model") or None
        if any(len(t) > 100 for t in tags) or (model and len(model) > 200):
            return failed("filter too long")
        found = store.scan(ctx.store)
        rows = [{"id": m["id"], "created": m["created"], "model": m["model"]["name"], "probe": m["probe"][:300],
                 "tokens": len(m.get("tokens", [])), "tags": m["tags"], "category": m["category"],
                 "url": shown_url(ctx, m)}
                for m in reversed(found.manifests) if store.matches(m, tags, model)]
        return JSONResponse({"traces": rows, "damaged": len(found.damaged)})

    routes = [
        Route("/", index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/assets/{name}", asset),
        Route("/api/health", health),
        Route("/api/info", info),
        Route("/api/generate", job_route("generate", generate), methods=["POST"]),
        Route("/api/visualize", job_route("visualize", visualize), methods=["POST"]),
        Route("/api/compare", job_route("compare", compare), methods=["POST"]),
        Route("/api/traces", traces),
        Route("/api/jobs/{job}", job_state),
        Route("/api/jobs/{job}/events", job_events),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        Mount("/site", app=site_files(ctx.site)),
    ]
    return Guard(Starlette(routes=routes), token, allowed_hosts)


def shown_url(ctx: work.Context, manifest: dict) -> str | None:
    """The app's page of a stored trace when it wrote one (the folder name is a slug: no path in it)."""
    name = manifest["model"]["name"]
    if not isinstance(name, str) or not TRACE_ID.fullmatch(manifest["id"]):
        return None
    url = work.report_url(name, manifest["id"])
    return url if (ctx.site / work.model_folder(name) / manifest["id"] / "index.html").is_file() else None


def has_chat(ctx: work.Context) -> bool:
    """Whether the adapter renders chat turns (it raises VisualizerError when it has no format)."""
    try:
        ctx.loaded.adapter.encode_chat(ctx.loaded, "hello")
        return True
    except VisualizerError:
        return False
