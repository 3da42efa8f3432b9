"""The model thread: one worker takes jobs from a bounded FIFO queue and runs them one at a time.

Torch is only ever called from this thread (the event loop never waits on a forward). Each job
keeps its events in order, numbered from 1, so a browser that reconnects asks for what came after
the last one it saw; a job runs to its end whether or not anyone is listening. Cancel is a flag the
job's own work checks between steps (a queued job is dropped before it starts).

What this module does not do: know what a job computes (work.py) or speak HTTP (app.py, events.py).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

from visualizer.errors import VisualizerError, one_line

KEEP_FINISHED = 200  # finished jobs remembered (their events), oldest forgotten first
FINAL = ("done", "failed", "cancelled")


class QueueFull(Exception):
    pass


class Cancelled(Exception):
    """Raised inside a job's work when its cancel flag is seen."""


@dataclass
class Job:
    id: str
    kind: str
    work: Callable[["Job"], dict]
    state: str = "queued"  # queued, running, done, failed, cancelled
    events: list[tuple[int, str, dict]] = field(default_factory=list)  # (id, name, data), ids 1, 2, ...
    cancel_requested: bool = False
    created: float = field(default_factory=time.monotonic)
    result: dict | None = None
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, name: str, data: dict) -> None:
        """Append an event and wake every listener (from any thread)."""
        with self.lock:
            self.events.append((len(self.events) + 1, name, data))
            waiters = list(self.waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that listener's loop is closed
                pass

    def check_cancel(self) -> None:
        if self.cancel_requested:
            raise Cancelled()

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def describe(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "events": len(self.events),
                "result": self.result}


class Worker:
    """One thread, one bounded FIFO queue, jobs by id."""

    def __init__(self, max_queued: int = 8):
        self.max_queued = max_queued
        self.pending: deque[Job] = deque()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.current: Job | None = None
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, name="visualizer-model", daemon=True)

    def start(self) -> "Worker":
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what is queued and running, and wait for the thread."""
        with self.cond:
            self.stopping = True
            for job in self.pending:
                job.cancel_requested = True
            if self.current is not None:
                self.current.cancel_requested = True
            self.cond.notify_all()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def submit(self, kind: str, work: Callable[[Job], dict]) -> Job:
        """Queue a job; QueueFull when max_queued jobs already wait."""
        with self.cond:
            if len(self.pending) >= self.max_queued:
                raise QueueFull()
            job = Job(id=secrets.token_hex(8), kind=kind, work=work)
            self.jobs[job.id] = job
            self.pending.append(job)
            job.emit("queued", {"position": len(self.pending), "running": self.current is not None})
            self.forget_old()
            self.cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        with self.cond:
            return self.jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        with self.cond:
            job.cancel_requested = True
            if job in self.pending:
                self.pending.remove(job)
                job.state = "cancelled"
                job.emit("cancelled", {"reason": "cancelled before it started"})
                self.report_positions()

    def queue_length(self) -> int:
        with self.cond:
            return len(self.pending) + (self.current is not None)

    def forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.finished]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.jobs[job.id]

    def report_positions(self) -> None:
        for position, job in enumerate(self.pending, 1):
            job.emit("queued", {"position": position, "running": self.current is not None})

    def loop(self) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                job = self.pending.popleft()
                self.current = job
                job.state = "running"
                self.report_positions()
            self.run(job)
            with self.cond:
                self.current = None

    def run(self, job: Job) -> None:
        job.emit("started", {"kind": job.kind})
        try:
            job.check_cancel()
            job.result = job.work(job)
            job.state = "done"
            job.emit("done", job.result)
        except Cancelled:
            job.state = "cancelled"
            job.emit("cancelled", {"reason": "cancelled"})
        except VisualizerError as e:
            job.state = "failed"
            job.emit("failed", {"error": one_line(e)})
        except Exception as e:  # noqa: BLE001 - a bug of ours: one line for the page, the thread lives on
            job.state = "failed"
            job.emit("failed", {"error": f"internal error {type(e).__name__}: {one_line(e)[:300]}"})
