"""A queue of colorize jobs: one photo at a time per model, with progress, cancel and kept results.

:class:`JobQueue` runs :class:`Job` s on one worker thread, in submission order: read the upload
(:func:`colorkit.io.read_image`), predict chroma at the job's render size and merge it with the
full-resolution lightness (:mod:`colorkit.infer`). Each step updates the job's ``stage`` and
``progress``; cancelling a queued job removes it at once, a running one stops at its next step.
Finished results stay in memory, within a time and pixel budget, until fetched. ``colorkit serve``
(:mod:`colorkit.serve`) puts its HTTP API on top; failures carry an HTTP-style ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .infer import merge_chroma, predict_chroma, prepare_image
from .io import MAX_PIXELS, ImageLoadError, ImageMeta, read_image

__all__ = ["Job", "JobError", "JobQueue", "load_error_status"]


class JobError(Exception):
    """A request refused or a job that failed: HTTP-style ``status`` and a message a person can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def load_error_status(e: ImageLoadError) -> int:
    """HTTP status for :class:`ImageLoadError` reasons (see ``colorkit.io.read_image``)."""
    reason = e.reason
    if reason.startswith("too many pixels"):
        return 413
    if reason.startswith(("not an image", "unsupported image mode", "empty file")):
        return 415
    return 422  # truncated, corrupt, unreadable


_MODEL_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def _model_lock(model: Any) -> threading.Lock:
    """One lock per network, so two apps over the same model still run one photo at a time."""
    with _MODEL_LOCKS_GUARD:
        return _MODEL_LOCKS.setdefault(model, threading.Lock())


class _Cancelled(Exception):
    pass


@dataclass(eq=False)
class Job:
    """One photo to colorize. ``state``: queued, running, done, failed, cancelled or expired."""

    name: str  # the uploaded file's name, for display and downloads only (never used as a path)
    upload: Path | None  # the upload in the private folder, deleted once decoded
    render_size: int
    strength: float
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: str = "queued"
    stage: str = "waiting"
    progress: float = 0.0
    error: str | None = None
    status: int = 200
    size: tuple[int, int] | None = None  # (width, height) of the input
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Image.Image | None = field(default=None, repr=False)
    meta: ImageMeta | None = field(default=None, repr=False)
    cancel_requested: bool = False
    callbacks: list[Callable[[Job], None]] = field(default_factory=list, repr=False)

    @property
    def finished_state(self) -> bool:
        return self.state in ("done", "failed", "cancelled", "expired")

    def info(self, position: int | None = None) -> dict[str, Any]:
        """What ``GET /api/jobs/{id}`` returns."""
        secs = (self.finished or time.monotonic()) - self.started if self.started else None
        return {
            "id": self.id, "name": self.name, "state": self.state, "stage": self.stage,
            "progress": round(self.progress, 3), "position": position, "error": self.error,
            "status": self.status, "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None, "render_size": self.render_size,
            "strength": self.strength, "seconds": round(secs, 3) if secs is not None else None,
        }


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


class JobQueue:
    """Runs jobs one at a time on a worker thread, in submission order.

    At most ``max_waiting`` jobs wait (more is a 503). Finished results stay in memory until
    :meth:`forget`, for at most ``keep_seconds``, and while their pixels add up to at most
    ``keep_megapixels`` (older results expire first). ``max_pixels`` bounds each decoded photo.
    """

    def __init__(self, colorizer: Any, *, max_pixels: int = MAX_PIXELS, max_waiting: int = 64,
                 keep_seconds: float = 3600.0, keep_megapixels: float = 400.0, max_jobs: int = 1000) -> None:
        self.colorizer, self.max_pixels, self.max_waiting = colorizer, int(max_pixels), int(max_waiting)
        self.keep_seconds, self.keep_pixels, self.max_jobs = keep_seconds, keep_megapixels * 1e6, max_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._lock = _model_lock(colorizer.model)
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- client side
    def submit(self, job: Job) -> Job:
        """Queue ``job`` (raises :class:`JobError` 503 when ``max_waiting`` jobs already wait)."""
        with self._cond:
            if self._closed:
                raise JobError(503, "the server is shutting down; try again when it is back")
            if len(self._waiting) >= self.max_waiting:
                raise JobError(503, f"{len(self._waiting)} photos are already waiting (the most this server "
                                    "queues); try again in a minute")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._prune()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="colorkit-serve-worker", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job:
        with self._cond:
            self._prune()
            job = self._jobs.get(job_id)
        if job is None:
            raise JobError(404, f"no job {job_id!r} on this server (finished jobs are kept for a while, then "
                                "dropped; upload the photo again)")
        return job

    def position(self, job: Job) -> int | None:
        """How many jobs run or wait before ``job`` (0: it runs next or now); None when not queued."""
        with self._cond:
            if job.state == "running":
                return 0
            if job.state != "queued":
                return None
            busy = any(j.state == "running" for j in self._jobs.values())
            return self._waiting.index(job) + int(busy) if job in self._waiting else None

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"waiting": len(self._waiting), "running": sum(j.state == "running" for j in self._jobs.values())}

    def cancel(self, job: Job) -> Job:
        """Cancel a queued job now, a running one at its next step; drop a finished job's result."""
        with self._cond:
            if job.state == "queued":
                self._waiting.remove(job)
                self._finish(job, "cancelled", error="cancelled before it started")
            elif job.state == "running":
                job.cancel_requested = True
            elif job.state == "done":
                job.result, job.state, job.stage, job.status = None, "expired", "expired", 410
                job.error = f"{job.name}: the result was deleted; colorize the photo again"
        return job

    def forget(self, job: Job) -> None:
        """Drop ``job`` and its result (the API does this once it has sent the image)."""
        with self._cond:
            job.result = None
            self._jobs.pop(job.id, None)

    def on_finish(self, job: Job, fn: Callable[[Job], None]) -> None:
        """Call ``fn(job)`` once ``job`` has finished (now, if it has). ``fn`` may run on the worker thread."""
        with self._cond:
            if not job.finished_state:
                job.callbacks.append(fn)
                return
        fn(job)

    async def wait(self, job: Job, still_wanted: Callable[[], Any] | None = None, poll: float = 0.5) -> Job:
        """Await ``job``'s end; cancel it when the awaitable ``still_wanted()`` says False (client gone)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake(_: Job) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))

        self.on_finish(job, wake)
        while not fut.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), poll)
            if not fut.done() and still_wanted is not None and not await still_wanted():
                self.cancel(job)
        return job

    def close(self, timeout: float = 30.0) -> None:
        """Cancel waiting jobs, let the running one end, stop the worker."""
        with self._cond:
            self._closed = True
            while self._waiting:
                self._finish(self._waiting.popleft(), "cancelled", error="the server shut down", status=503)
            for j in self._jobs.values():
                j.cancel_requested = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- worker side
    def _finish(self, job: Job, state: str, error: str | None = None, status: int = 200) -> None:
        """Mark ``job`` finished (call with the condition held); runs its callbacks."""
        job.state, job.error, job.finished = state, error, time.monotonic()
        if state != "done":
            job.result = None
            job.status = status if status != 200 else (499 if state == "cancelled" else 500)
        job.stage = state
        _unlink(job.upload)
        job.upload = None
        callbacks, job.callbacks = job.callbacks, []
        for fn in callbacks:
            fn(job)

    def _prune(self) -> None:
        """Expire old results over the time or pixel budget; forget the oldest finished jobs over ``max_jobs``."""
        now, kept = time.monotonic(), 0.0
        for job in reversed(self._jobs.values()):  # newest first
            if job.result is None:
                continue
            px = job.result.width * job.result.height
            if now - (job.finished or now) > self.keep_seconds or kept + px > self.keep_pixels:
                job.result, job.state, job.stage = None, "expired", "expired"
                job.error, job.status = f"{job.name}: the result expired; colorize the photo again", 410
            else:
                kept += px
        for job_id in [k for k, j in self._jobs.items() if j.finished_state][: max(0, len(self._jobs) - self.max_jobs)]:
            del self._jobs[job_id]

    def _step(self, job: Job, stage: str, progress: float) -> None:
        if job.cancel_requested:
            raise _Cancelled
        job.stage, job.progress = stage, progress

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.monotonic()
            state, error, status = "done", None, 200
            try:
                with self._lock:
                    self._colorize(job)
            except _Cancelled:
                state, error = "cancelled", "cancelled while running"
            except ImageLoadError as e:
                state, error, status = "failed", f"{job.name}: {e.reason}", load_error_status(e)
            except MemoryError:
                state, error, status = "failed", f"{job.name}: out of memory; try a smaller photo", 507
            except Exception as e:  # a bad photo or a model failure must never stop the worker
                state, error, status = "failed", f"{job.name}: colorizing failed ({type(e).__name__}: {e})", 500
            with self._cond:
                if state == "done":
                    job.progress = 1.0
                self._finish(job, state, error, status)
                self._prune()

    def _colorize(self, job: Job) -> None:
        """Read, predict chroma at ``render_size``, merge with the full-resolution lightness."""
        self._step(job, "reading", 0.05)
        img, meta = read_image(job.upload, max_pixels=self.max_pixels)
        _unlink(job.upload)
        job.size = img.size
        self._step(job, "running the network", 0.25)
        ab = predict_chroma(self.colorizer.model, prepare_image(img, job.render_size).unsqueeze(0),
                            getattr(self.colorizer, "precision", "fp32"))[0]
        self._step(job, "merging colour", 0.75)
        out = merge_chroma(img, ab, job.strength)
        self._step(job, "done", 0.99)
        job.result, job.meta = out, meta
