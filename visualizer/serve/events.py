"""Server-sent events of one job: every event after Last-Event-ID, then the new ones as they come,
until the job's final event (done, failed, cancelled).

Each event carries its number (`id:`), so a browser's EventSource that reconnects resumes where it
stopped; nothing is sent twice on one connection. A comment line every few seconds keeps idle
connections open. Leaving (the browser closed) only stops this stream: the job runs on.

What this module does not do: run jobs (jobs.py).
"""

from __future__ import annotations

import asyncio
import json

from visualizer.serve.jobs import FINAL, Job

KEEPALIVE_SECONDS = 10.0


def last_event_id(value: str | None) -> int:
    """The Last-Event-ID header (or ?after=) as a number; anything else is 0 (from the start)."""
    if value and value.isdigit() and len(value) < 10:
        return int(value)
    return 0


def format_event(number: int, name: str, data: dict) -> bytes:
    return f"id: {number}\nevent: {name}\ndata: {json.dumps(data, ensure_ascii=True)}\n\n".encode()


async def stream(job: Job, after: int):
    """Yield the SSE bytes of `job` after event number `after`."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    with job.lock:
        job.waiters.append((loop, wake))
    try:
        sent = after
        yield b"retry: 1000\n\n"
        while True:
            wake.clear()
            with job.lock:
                fresh = job.events[sent:]
            for number, name, data in fresh:
                yield format_event(number, name, data)
                sent = number
                if name in FINAL:
                    return
            try:
                await asyncio.wait_for(wake.wait(), KEEPALIVE_SECONDS)
            except asyncio.TimeoutError:
                yield b": keepalive\n\n"
    finally:
        with job.lock:
            job.waiters.remove((loop, wake))
