"""Many photos: plan, then bounded read -> predict -> merge -> write; resumable, atomic, for any front-end.

:func:`colorize_files` colorizes files, folders and glob patterns into an output folder. It is the batch
engine of ``colorkit colorize`` and ``bench/batch.py``; other front-ends (video, a web page) call it or its
pieces:

1. :func:`plan_colorize` maps the inputs to output paths (a folder's images keep their sub-path), refusing
   with :class:`PlanError` any output that would overwrite an input or be read back as one;
2. :func:`prepare_batch` sorts those jobs into a :class:`ColorizeBatch`: to do, done already (the output
   exists: skipped, so a stopped run resumes), and unsupported file types;
3. :func:`run_batch` runs it. The calling thread only runs the network (:func:`colorkit.infer.predict_chroma`
   at render size); a pool of ``jobs`` threads decodes and shrinks the next photos ahead of it
   (:func:`read_and_prepare`) and merges and writes the finished ones behind it (:func:`merge_and_write`).
   Both queues are bounded, so memory stays flat however many photos there are. Every write is atomic
   (:func:`colorkit.io.save_image`); a file that fails is reported and the rest of the batch goes on.

Progress and cancelling are plain callbacks, with no terminal or signal assumptions: ``progress(event)``
receives a :class:`ColorizeEvent` after every file, and ``should_stop()`` is asked before each photo (the
photos in flight are finished, the rest is left for the next run). A ``KeyboardInterrupt`` during a run is
handled the same way: the writes in flight finish and the summary says ``stopped``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from . import infer
from .io import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    ImageMeta,
    find_images,
    glob_base,
    is_glob,
    read_image,
    remove_stale_temps,
    save_image,
    write_text_atomic,
)

__all__ = [
    "FAILURES_FILE",
    "ColorizeBatch",
    "ColorizeEvent",
    "ColorizeJob",
    "ColorizeSummary",
    "PlanError",
    "Prepared",
    "colorize_files",
    "merge_and_write",
    "plan_colorize",
    "prepare_batch",
    "read_and_prepare",
    "run_batch",
]

FAILURES_FILE = "colorkit-failures.txt"
"""The file ``colorkit colorize`` lists failed inputs in (``path<TAB>reason`` lines), inside the output folder."""


class PlanError(ValueError):
    """The inputs and output folder cannot be colorized as asked (nothing was done); the message says why."""


@dataclass(frozen=True)
class ColorizeJob:
    """One input image and the output path it is written to."""

    src: Path
    dst: Path


@dataclass(frozen=True)
class ColorizeEvent:
    """A file finished: ``done`` of ``total`` files so far; ``dst`` is the output, or ``error`` says why none."""

    done: int
    total: int
    src: Path
    dst: Path | None
    error: str | None = None


@dataclass
class ColorizeSummary:
    """What a run did: ``done`` outputs written, ``skipped`` outputs already there, ``failed`` ``(input,
    reason)``, ``not_started`` photos left when it ``stopped`` early, ``seconds``, and the ``failures_file``
    written (when asked for and something failed)."""

    total: int = 0
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    not_started: int = 0
    seconds: float = 0.0
    stopped: bool = False
    failures_file: Path | None = None

    @property
    def rate(self) -> float:
        """Photos written per second (0 when none)."""
        return len(self.done) / self.seconds if self.seconds > 0 and self.done else 0.0


@dataclass
class ColorizeBatch:
    """Planned jobs sorted for a run: ``todo``, ``existing`` (output already there) and ``unsupported`` (not an
    image file type colorkit reads)."""

    out_dir: Path
    todo: list[ColorizeJob]
    existing: list[ColorizeJob] = field(default_factory=list)
    unsupported: list[ColorizeJob] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.existing) + len(self.unsupported)


@dataclass
class Prepared:
    """A decoded photo (full-size RGB ``image`` and its file ``meta``) and the network's input ``x`` ``(3, h, w)``."""

    image: Image.Image
    meta: ImageMeta
    x: Tensor


class _StepFailed(Exception):
    """A file's failure on an io thread; the message is the reason the summary lists."""


# ----------------------------------------------------------------------------------------------
# planning


def _is_within(path: Path, folder: Path) -> bool:
    """``path`` equals ``folder`` or lies inside it (both resolved)."""
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _samefile(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan_colorize(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                  recursive: bool = False) -> list[ColorizeJob]:
    """Map ``inputs`` (files, folders, glob patterns) to output paths under ``out_dir``, sorted by output.

    A folder's images keep their path relative to that folder (sub-folders with ``recursive``); a glob's
    matches keep their path relative to the pattern's leading fixed folders; a single file goes straight
    into ``out_dir``. Raises :class:`PlanError` for a missing input, when an output path would be an input
    file, when two inputs map to the same output, and when ``out_dir`` lies inside a folder read
    recursively (the outputs would become inputs on the next run).
    """
    out = Path(out_dir)
    out_res = out.resolve()
    jobs: list[ColorizeJob] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            if recursive and _is_within(out_res, p.resolve()):
                raise PlanError(
                    f"the output folder {out} is inside the input folder {p} and --recursive would read "
                    f"its outputs back as inputs; choose an output folder outside {p}"
                )
            jobs.extend(ColorizeJob(f, out / os.path.relpath(f, p)) for f in find_images([p], recursive))
        elif p.exists():
            jobs.append(ColorizeJob(p, out / p.name))
        elif is_glob(str(item)):
            base = glob_base(str(item))
            try:
                files = find_images([str(item)], recursive)
            except FileNotFoundError as e:
                raise PlanError(str(e)) from None
            for f in files:
                if _is_within(f.resolve(), out_res):
                    raise PlanError(
                        f"the pattern {str(item)!r} matches {f}, inside the output folder {out}: outputs would "
                        "be read back as inputs; choose an output folder outside the inputs"
                    )
                jobs.append(ColorizeJob(f, out / os.path.relpath(f, base)))
        else:
            raise PlanError(f"no such file or folder: {item}")

    by_src: dict[Path, ColorizeJob] = {}  # the same file given twice is one job
    for j in jobs:
        by_src.setdefault(j.src.resolve(), j)
    srcs = set(by_src)
    by_dst: dict[Path, ColorizeJob] = {}
    for j in by_src.values():
        dst_res = j.dst.resolve()
        if dst_res in srcs or _samefile(j.dst, j.src):
            raise PlanError(
                f"refusing to write to {out}: the output {j.dst} would overwrite the input "
                f"{by_src.get(dst_res, j).src}; choose an output folder that holds none of the inputs"
            )
        other = by_dst.get(dst_res)
        if other is not None:
            raise PlanError(
                f"{other.src} and {j.src} would both be written to {j.dst}; colorize them in separate "
                "runs or pass their parent folder"
            )
        by_dst[dst_res] = j
    return sorted(by_src.values(), key=lambda j: str(j.dst))


def prepare_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, recursive: bool = False,
                  overwrite: bool = False) -> ColorizeBatch:
    """:func:`plan_colorize`, then sort the jobs into a :class:`ColorizeBatch`: outputs that exist already
    are left alone unless ``overwrite``. :class:`PlanError` also when ``out_dir`` exists and is not a folder."""
    jobs = plan_colorize(inputs, out_dir, recursive=recursive)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PlanError(f"{out}: exists and is not a folder")
    batch = ColorizeBatch(out, [])
    for j in jobs:
        if j.src.suffix.lower() not in IMAGE_EXTENSIONS:
            batch.unsupported.append(j)
        elif overwrite or not j.dst.exists():
            batch.todo.append(j)
        else:
            batch.existing.append(j)
    return batch


# ----------------------------------------------------------------------------------------------
# the steps (the io steps use only PIL and numpy, so they run on background threads)


def _rgb_meta(meta: ImageMeta) -> ImageMeta:
    """``meta`` for an RGB output: an ICC profile made for another colour space (the CMYK profile of a CMYK
    JPEG, the gray profile of a gray scan) would misdescribe RGB pixels, so it is left out."""
    icc = meta.icc_profile
    return replace(meta, icc_profile=None) if icc and icc[16:20] != b"RGB " else meta


def read_and_prepare(path: str | os.PathLike, render_size: int) -> Prepared:
    """Decode ``path`` and make the network's input (:func:`colorkit.infer.prepare_image`).

    Unreadable files raise :class:`~colorkit.io.ImageLoadError` naming the file."""
    img, meta = read_image(path)
    try:
        x = infer.prepare_image(img, render_size)
    except Exception as e:
        raise _StepFailed(f"colorizing failed: {type(e).__name__}: {e}") from e
    return Prepared(img, meta, x)


def merge_and_write(img: Image.Image, ab: Tensor, job: ColorizeJob, meta: ImageMeta | None = None,
                    strength: float = 1.0) -> Path:
    """Put the predicted chroma ``ab`` ``(2, h, w)`` on the full-size photo (times ``strength``), then write it
    atomically to ``job.dst`` with the input's EXIF and (RGB) ICC profile."""
    try:
        result = infer.merge_chroma(img, ab, strength)
    except Exception as e:  # out of memory, ...
        raise _StepFailed(f"colorizing failed: {type(e).__name__}: {e}") from e
    del img
    return save_image(result, job.dst, source=job.src, meta=_rgb_meta(meta) if meta is not None else None)


def _unsupported_reason(job: ColorizeJob) -> str:
    return f"unsupported file type {job.src.suffix!r} (colorkit reads and writes {', '.join(sorted(IMAGE_EXTENSIONS))})"


# ----------------------------------------------------------------------------------------------
# running


def run_batch(
    colorizer: Any,
    batch: ColorizeBatch,
    *,
    render_size: int | None = None,
    strength: float = 1.0,
    jobs: int = 2,
    progress: Callable[[ColorizeEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    failures_file: str | None = None,
    precision: str | None = None,
) -> ColorizeSummary:
    """Colorize ``batch`` with ``colorizer`` (a :class:`~colorkit.Colorizer`, a learner, or a generator module).

    ``render_size`` defaults to the colorizer's own; ``strength`` scales the colour (0 gray .. 1 as predicted
    .. 2 more saturated); ``jobs`` io threads decode ahead and write behind (at most ``max(2, jobs)`` photos
    decoded ahead and ``jobs`` waiting to be written). ``progress(event)`` after every file (on this thread),
    ``should_stop()`` before each photo. Stale temp files of a killed earlier run next to the outputs are
    removed first. With ``failures_file`` (a name), the failed inputs are listed in ``out_dir/failures_file``
    (removed again by a later complete run without failures). ``precision`` (``"auto"``, ``"bf16"``,
    ``"fp32"``) is how the network runs; by default the colorizer's own (``Colorizer.precision``; fp32 for
    a bare module). The model is kept in that precision's memory format for the run (restored after).
    """
    model = getattr(colorizer, "model", colorizer)
    precision = precision or getattr(colorizer, "precision", None) or "fp32"
    rs = int(render_size or getattr(colorizer, "render_size", None) or infer.DEFAULT_RENDER_SIZE)
    if rs < 32:
        raise ValueError(f"render_size must be at least 32, got {rs}")
    if not 0 <= strength <= 4:
        raise ValueError(f"strength must be in [0, 4], got {strength}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    from .precision import resolve_precision

    resolve_precision(precision)  # a bad value fails before anything runs
    summary = ColorizeSummary(total=batch.total, skipped=[j.dst for j in batch.existing])
    n_files = len(batch.todo) + len(batch.unsupported)

    def report(job: ColorizeJob, dst: Path | None, error: str | None = None) -> None:
        if error is not None:
            summary.failed.append((job.src, error))
        else:
            summary.done.append(dst)  # type: ignore[arg-type]
        if progress is not None:
            progress(ColorizeEvent(len(summary.done) + len(summary.failed), n_files, job.src, dst, error))

    for j in batch.unsupported:
        report(j, None, _unsupported_reason(j))
    remove_stale_temps(j.dst for j in batch.todo)
    t0 = time.monotonic()
    with infer.inference_format(model, precision) as prec:
        summary.stopped = _run(model, batch.todo, rs, strength, jobs, report, should_stop or (lambda: False),
                               summary, prec)
    summary.seconds = time.monotonic() - t0
    if failures_file is not None:
        f = batch.out_dir / failures_file
        try:
            if summary.failed:
                summary.failures_file = write_text_atomic(f, "".join(f"{p}\t{r}\n" for p, r in summary.failed))
            elif not summary.stopped:
                f.unlink(missing_ok=True)
        except OSError:
            summary.failures_file = None
    return summary


def _run(model: Any, todo: Sequence[ColorizeJob], render_size: int, strength: float, io_threads: int,
         report: Callable[..., None], should_stop: Callable[[], bool], summary: ColorizeSummary,
         precision: str = "fp32") -> bool:
    """The engine of :func:`run_batch`; returns whether it stopped early."""
    prefetch, max_writes = max(2, io_threads), io_threads
    queue = deque(todo)
    reads: deque[tuple[ColorizeJob, Future]] = deque()
    writes: dict[Future, ColorizeJob] = {}
    current: ColorizeJob | None = None  # taken from ``reads``, not yet handed to the pool
    stopped = False

    def opened_or_fail(job: ColorizeJob, fut: Future) -> Prepared | None:
        try:
            return fut.result()
        except ImageLoadError as e:
            reason = e.reason
        except _StepFailed as e:
            reason = str(e)
        except Exception as e:  # anything else a decoder may throw
            reason = f"cannot read: {type(e).__name__}: {e}"
        report(job, None, reason)
        return None

    def reap(block: bool = False) -> None:
        nonlocal stopped
        if not writes:
            return
        done = wait(list(writes), return_when=FIRST_COMPLETED)[0] if block else {f for f in writes if f.done()}
        for fut in done:
            job = writes.pop(fut)
            try:
                dst = fut.result()
            except KeyboardInterrupt:
                stopped = True
                summary.not_started += 1
            except _StepFailed as e:
                report(job, None, str(e))
            except Exception as e:  # disk full, permissions, ...: this file fails, the batch goes on
                report(job, None, f"cannot write {job.dst}: {e}")
            else:
                report(job, dst)

    pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="colorkit-io")
    try:
        while queue or reads:
            stopped = stopped or bool(should_stop())
            while queue and len(reads) < prefetch and not stopped:
                j = queue.popleft()
                reads.append((j, pool.submit(read_and_prepare, j.src, render_size)))
            reap()
            if stopped or not reads:
                break
            current, fut = reads.popleft()
            opened = opened_or_fail(current, fut)
            if opened is None:
                current = None
                continue
            try:
                ab = infer.predict_chroma(model, opened.x.unsqueeze(0), precision=precision)[0]
            except Exception as e:  # out of memory, ...: this file fails, the batch goes on
                report(current, None, f"colorizing failed: {type(e).__name__}: {e}")
                current = None
                continue
            writes[pool.submit(merge_and_write, opened.image, ab, current, opened.meta, strength)] = current
            current = None
            del opened
            while len(writes) > max_writes:
                reap(block=True)
    except KeyboardInterrupt:  # abandon the photo in progress; finish what was handed over
        stopped = True
    finally:
        for _, fut in reads:
            fut.cancel()
        summary.not_started += len(queue) + len(reads) + (current is not None)
        while writes:  # merges and writes already handed over finish (atomically) before we report
            try:
                reap(block=True)
            except KeyboardInterrupt:
                stopped = True
        pool.shutdown(wait=True, cancel_futures=True)
    return stopped


def colorize_files(
    colorizer: Any,
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    render_size: int | None = None,
    strength: float = 1.0,
    recursive: bool = False,
    overwrite: bool = False,
    jobs: int = 2,
    progress: Callable[[ColorizeEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    failures_file: str | None = None,
    precision: str | None = None,
) -> ColorizeSummary:
    """Colorize image files, folders or glob patterns into ``out_dir``: :func:`prepare_batch` + :func:`run_batch`.

    >>> summary = colorize_files(load_colorizer(), ["scans/"], "colorized/", recursive=True)

    Each output keeps its input's size, format (extension), EXIF (orientation normalised) and ICC profile;
    inputs are never overwritten (:class:`PlanError`); outputs already there are skipped unless
    ``overwrite``, so running it again after a stop resumes. See :func:`run_batch` for the other arguments.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    batch = prepare_batch(items, out_dir, recursive=recursive, overwrite=overwrite)
    return run_batch(colorizer, batch, render_size=render_size, strength=strength, jobs=jobs, progress=progress,
                     should_stop=should_stop, failures_file=failures_file, precision=precision)
