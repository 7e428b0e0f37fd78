"""Colorize a film: ``colorize_video(load_colorizer(), "reel.mp4", "reel-colour.mp4")``.

The frames go through the same steps as photos (:mod:`colorkit.infer`: shrink to render size, predict chroma,
merge it with the frame's full-resolution lightness), with one step added between predict and merge: a
:class:`~colorkit.video_stabilize.ChromaStabilizer` carries the colour from frame to frame where the picture is
still and starts afresh at scene cuts (``stability``, 0 = frame by frame; docs/video.md describes the method).

Three threads share the work, with bounded queues between them so memory does not grow with the film:
the reader decodes and shrinks frames (:mod:`colorkit.video_io`), the calling thread runs the network and the
stabiliser, the writer merges and encodes.

Long runs: the frames are encoded in segments of ``segment_frames`` frames, each written atomically, with the
stabiliser's state, into a work folder next to the output (``.{name}.parts``). A stopped or killed run goes on
from its last finished segment with ``resume=True`` and gives the video an uninterrupted run gives: the same
frames, colours, timestamps, duration and audio (the work folder records the input, model, settings and library
versions, and refuses a resume where any differs). The file is not promised byte for byte: for identical
frames, x264's bitstream was seen to change with the process's memory layout, so two runs may code a few
blocks differently.
When the last segment is done, the segments and the input's untouched audio are joined into the output
(atomically) and the work folder is removed. Progress (with an ETA) and cancelling are plain callbacks.

Bad input is refused before any work, with a :class:`~colorkit.video_io.VideoError` naming the file and the
problem, and nothing is left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image
from torch import nn

from . import __version__
from .color import rgb_to_luminance
from .infer import DEFAULT_RENDER_SIZE, inference_format, merge_chroma, predict_chroma, prepare_image
from .io import atomic_write, write_json_atomic
from .video_io import (
    EncodeSettings,
    VideoError,
    VideoInfo,
    assemble,
    check_output,
    container_format,
    frame_to_image,
    image_to_frame,
    open_encoder,
    probe_video,
    read_frames,
    wants_global_header,
    write_segment,
)
from .video_stabilize import ChromaStabilizer

__all__ = ["DEFAULT_SEGMENT_FRAMES", "DEFAULT_STABILITY", "VideoError", "VideoProgress", "VideoSummary",
           "colorize_video", "work_dir_for"]

DEFAULT_STABILITY = 0.9
"""Weight of the carried colour where the picture is still (0 = every frame on its own)."""
DEFAULT_SEGMENT_FRAMES = 120
"""Frames per resumable segment (5 s at 24 frames/s): at most this much work is lost when a run is killed."""

_JOB_FILE = "job.json"
_QUEUE_FRAMES = 8  # frames waiting between threads, per queue


@dataclass(frozen=True)
class VideoProgress:
    """Where a run is: ``done`` of ``total`` frames finished (those from an earlier run included),
    ``colorized`` of them by this run in ``elapsed`` seconds; ``stage`` is ``"colorizing"`` or
    ``"assembling"`` (joining the segments into the output, at the end)."""

    done: int
    total: int
    colorized: int
    elapsed: float
    stage: str = "colorizing"

    @property
    def fps(self) -> float:
        """Frames colorized per second by this run."""
        return self.colorized / self.elapsed if self.elapsed > 0 and self.colorized else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before the first frames)."""
        return (self.total - self.done) / self.fps if self.fps > 0 else None


@dataclass
class VideoSummary:
    """What a run did. ``complete``: ``dst`` is written; otherwise it ``stopped`` early and ``work_dir`` holds
    the finished segments for ``resume=True``. ``resumed_frames`` came from an earlier run, ``colorized`` from
    this one; ``scene_cuts`` are the frames that start a new scene (frame 0 not counted)."""

    src: Path
    dst: Path
    frames: int
    width: int
    height: int
    duration: float
    audio_streams: int
    segments: int
    colorized: int = 0
    resumed_frames: int = 0
    scene_cuts: list[int] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False
    stopped: bool = False
    work_dir: Path | None = None

    @property
    def fps(self) -> float:
        """Frames colorized per second by this run (0 when none)."""
        return self.colorized / self.seconds if self.seconds > 0 and self.colorized else 0.0


def work_dir_for(dst: str | os.PathLike) -> Path:
    """The folder next to ``dst`` where an unfinished run keeps its segments: ``.{name}.parts``."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.parts")


def _model_of(colorizer: Any) -> tuple[nn.Module, int]:
    model = getattr(colorizer, "model", colorizer)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a Colorizer or a colorizer network, got {type(colorizer).__name__}")
    return model, int(getattr(colorizer, "render_size", DEFAULT_RENDER_SIZE))


def _model_digest(model: nn.Module) -> str:
    """sha256 of the model's weights: a resume must use the same model."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _samefile(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------
# the work folder: job description, segments and stabiliser states


class _Work:
    """The work folder of one output: ``job.json``, ``seg_00000.bin`` + ``state_00000.npz`` per finished segment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def segment(self, k: int) -> Path:
        return self.folder / f"seg_{k:05d}.bin"

    def state(self, k: int) -> Path:
        return self.folder / f"state_{k:05d}.npz"

    def open(self, job: dict[str, Any], resume: bool, dst: Path) -> int:
        """Make the folder for ``job`` and return how many segments are already finished (0 unless
        ``resume``). Raises VideoError when the folder cannot be written or holds a different job."""
        done = 0
        if self.folder.is_dir():
            old = self._read_job()
            if resume and old is not None and old != job:
                diff = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
                raise VideoError(dst, f"the unfinished run in {self.folder} used other settings ({', '.join(diff)}); "
                                      "run without resume to start over")
            if resume and old == job:
                while self.state(done).is_file() and self.segment(done).is_file():
                    done += 1
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for p in self.folder.iterdir():  # temp files of a killed run, segments after the last state
                if p.name.startswith(".") or self._index(p) >= done:
                    p.unlink(missing_ok=True)
            write_json_atomic(self.folder / _JOB_FILE, job)
        except OSError as e:
            raise VideoError(dst, f"cannot write next to the output ({e.strerror or e})") from None
        return done

    @staticmethod
    def _index(p: Path) -> int:
        stem = p.stem
        if stem.startswith(("seg_", "state_")):
            try:
                return int(stem.split("_", 1)[1])
            except ValueError:
                return -1
        return -1

    def _read_job(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / _JOB_FILE).read_text())
        except (OSError, ValueError):
            return None

    def save_state(self, k: int, state: dict[str, np.ndarray], cuts: list[int]) -> None:
        arrays = {**state, "cuts": np.asarray(cuts, dtype=np.int64)}

        def write(tmp: Path) -> None:
            with open(tmp, "xb") as fh:
                np.savez(fh, **arrays)

        atomic_write(self.state(k), write)

    def load_state(self, k: int) -> tuple[dict[str, np.ndarray], list[int]]:
        with np.load(self.state(k), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        cuts = [int(c) for c in arrays.pop("cuts", [])]
        return arrays, cuts

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# the three threads


class _Stop(Exception):
    """The run was asked to stop (or failed elsewhere): abandon the segment in progress."""


_END = object()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Put ``item`` on bounded ``q``, giving up (raising _Stop) once ``stop`` is set."""
    while True:
        if stop.is_set():
            raise _Stop
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue


@dataclass
class _Frame:
    index: int
    pts: int
    image: Image.Image  # full resolution RGB
    small: torch.Tensor  # (3, h, w) network input


def _reader(info: VideoInfo, start: int, render_size: int, out: queue.Queue, stop: threading.Event) -> None:
    """Decode frames from ``start`` on and shrink them to render size: :class:`_Frame` s, then ``_END`` or the
    exception that ended it."""
    try:
        for index, frame in read_frames(info, start):
            img = frame_to_image(frame)
            _put(out, _Frame(index, int(frame.pts), img, prepare_image(img, render_size)), stop)
        _put(out, _END, stop)
    except _Stop:
        return
    except BaseException as e:  # handed to the main thread, which raises it
        try:
            _put(out, e, stop)
        except _Stop:
            return


class _Writer(threading.Thread):
    """Merges chroma into frames and encodes them, one segment file (+ stabiliser state) at a time.

    Messages on ``inbox``: ``("frame", _Frame, ab)`` for each frame of segment ``k``, then ``("end", k, state,
    cuts)``; ``_END`` after the last segment or to stop (a segment not ended is abandoned, its temp file
    removed). A failure is kept in ``error`` and sets ``stop``."""

    def __init__(self, work: _Work, settings: EncodeSettings, info: VideoInfo, global_header: bool,
                 strength: float, next_segment: int, stop: threading.Event) -> None:
        super().__init__(name="colorkit-video-writer", daemon=True)
        self.work, self.settings, self.info = work, settings, info
        self.global_header, self.strength, self.stop = global_header, strength, stop
        self.inbox: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
        self.error: BaseException | None = None
        self.next_segment = next_segment

    def _frame(self, fr: _Frame, ab: np.ndarray) -> av.VideoFrame:
        merged = merge_chroma(fr.image, torch.from_numpy(ab), self.strength)
        frame = image_to_frame(merged, self.settings.pix_fmt, self.info)
        frame.pts, frame.time_base = fr.pts, self.info.time_base
        return frame

    def _segment(self, msg: Any) -> None:
        k, end = self.next_segment, []

        def frames(msg: Any = msg) -> Iterator[av.VideoFrame]:
            while isinstance(msg, tuple) and msg[0] == "frame":
                yield self._frame(msg[1], msg[2])
                msg = _get(self.inbox, self.stop)
            if not (isinstance(msg, tuple) and msg[0] == "end"):
                raise _Stop  # stopped inside the segment: abandon it
            end.append(msg)

        encoder = open_encoder(self.settings, self.info, self.global_header)
        atomic_write(self.work.segment(k), lambda tmp: write_segment(tmp, frames(), encoder))
        _, k_end, state, cuts = end[0]
        if k_end != k:
            raise RuntimeError(f"segment {k_end} ended while segment {k} was being written")
        self.work.save_state(k, state, cuts)
        self.next_segment = k + 1

    def run(self) -> None:
        try:
            while (msg := _get(self.inbox, self.stop)) is not _END:
                self._segment(msg)
        except _Stop:
            return
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.error = e
            self.stop.set()


# ----------------------------------------------------------------------------------------------
# the public function


def _check_args(stability: float, strength: float, segment_frames: int, batch_size: int,
                render_size: int | None) -> None:
    if not 0 <= stability <= 1:
        raise ValueError(f"stability must be in [0, 1], got {stability}")
    if not 0 <= strength <= 4:
        raise ValueError(f"strength must be in [0, 4], got {strength}")
    if segment_frames < 1:
        raise ValueError(f"segment_frames must be at least 1, got {segment_frames}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if render_size is not None and render_size < 32:
        raise ValueError(f"render_size must be at least 32, got {render_size}")


def colorize_video(
    colorizer: Any,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    render_size: int | None = None,
    stability: float = DEFAULT_STABILITY,
    strength: float = 1.0,
    codec: str = "libx264",
    crf: float | None = None,
    preset: str | None = None,
    pix_fmt: str = "yuv420p",
    codec_options: Mapping[str, str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    batch_size: int = 4,
    progress: Callable[[VideoProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    precision: str | None = None,
) -> VideoSummary:
    """Colorize the video ``src`` into ``dst`` (container from its extension: .mp4, .mov, .mkv, .webm, .avi).

    >>> summary = colorize_video(load_colorizer(), "reel.mp4", "reel-colour.mp4", resume=True)

    ``colorizer`` is a :class:`~colorkit.learner.Colorizer` (or a colorizer network); ``render_size`` defaults
    to its own. ``stability`` in [0, 1] weighs the colour carried from earlier frames of the scene where the
    picture is still (0 = every frame on its own); ``strength`` scales the chroma as for photos. The output
    keeps the input's frame count, timestamps (variable frame rates too), size, rotation, colour tags and
    duration, and every audio stream untouched; each frame's full-resolution lightness is kept. ``codec``,
    ``crf``, ``preset``, ``pix_fmt`` and ``codec_options`` choose the encoding (H.264 at crf 18 by default,
    see :class:`~colorkit.video_io.EncodeSettings`). ``precision`` (``"auto"``, ``"bf16"``, ``"fp32"``) is how
    the network runs, by default the colorizer's own (as :func:`colorkit.pipeline.run_batch`).

    ``progress(VideoProgress)`` is called after every batch of ``batch_size`` frames; ``should_stop()`` is
    asked as often, and a ``KeyboardInterrupt`` counts the same: the run stops, keeping the finished segments
    (``summary.stopped``); call again with ``resume=True`` to go on. Without ``resume`` an unfinished run of
    the same output is discarded. ``dst`` is never the input and is only replaced with ``overwrite``.

    Raises :class:`~colorkit.video_io.VideoError` (naming the file) before any work for a file that is not a
    video, a still image, a file without video or without frames, a truncated file, an odd frame size for
    the pixel format, an output that cannot be written or a codec the container cannot hold; when a damaged
    frame only shows while decoding, the run stops with that error and its work folder is removed.
    """
    _check_args(stability, strength, segment_frames, batch_size, render_size)
    src, dst = Path(src), Path(dst)
    fmt = container_format(dst)
    if _samefile(src, dst) or src.resolve() == dst.resolve():
        raise VideoError(dst, "is the input video; choose another output (originals are never overwritten)")
    if dst.is_dir():
        raise VideoError(dst, "is a folder; give the output video's file name")
    if dst.exists() and not overwrite:
        raise VideoError(dst, "already exists; pass overwrite=True (--overwrite) to replace it")
    info = probe_video(src)
    settings = EncodeSettings(codec, pix_fmt, crf, preset, dict(codec_options or {}))
    check_output(dst, settings, info)
    model, own_size = _model_of(colorizer)
    rs = int(render_size or own_size)
    precision = precision or getattr(colorizer, "precision", None) or "fp32"

    n, seg_n = info.frames, segment_frames
    n_segments = (n + seg_n - 1) // seg_n
    work = _Work(work_dir_for(dst))
    st = src.stat()
    job = {
        "colorkit": __version__, "av": av.__version__, "torch": torch.__version__,
        "src": str(src.resolve()), "src_size": st.st_size, "src_mtime_ns": st.st_mtime_ns, "frames": n,
        "model": _model_digest(model), "render_size": rs, "stability": stability, "strength": strength,
        "codec": codec, "crf": crf, "preset": preset, "pix_fmt": pix_fmt,
        "codec_options": {str(k): str(v) for k, v in (codec_options or {}).items()},
        "segment_frames": seg_n, "batch_size": batch_size, "container": fmt, "precision": precision,
    }
    done_segments = work.open(job, resume, dst)
    stabilizer = ChromaStabilizer(stability)
    cuts: list[int] = []
    if done_segments:
        state, cuts = work.load_state(done_segments - 1)
        stabilizer.load_state_dict(state)
    start = done_segments * seg_n
    summary = VideoSummary(src, dst, n, info.width, info.height, info.duration, len(info.audio), n_segments,
                           resumed_frames=start, scene_cuts=cuts, work_dir=work.folder)
    t0 = time.monotonic()

    def report(done: int, stage: str = "colorizing") -> None:
        if progress is not None:
            progress(VideoProgress(done, n, max(0, done - start), time.monotonic() - t0, stage))

    try:
        if start < n:
            with inference_format(model, precision) as prec:
                run = _Run(model, prec, info, rs, settings, fmt, strength, seg_n, batch_size)
                _run(run, stabilizer, cuts, work, done_segments, report, should_stop)
    except _Stop:
        summary.stopped = True
    except KeyboardInterrupt:
        summary.stopped = True
    except VideoError:
        work.remove()  # the input is damaged: nothing to resume
        raise
    summary.scene_cuts = cuts
    summary.seconds = time.monotonic() - t0
    finished = sum(1 for k in range(n_segments) if work.state(k).is_file())
    summary.colorized = max(0, min(n, finished * seg_n) - start)
    if summary.stopped or finished < n_segments:
        summary.stopped = True
        return summary
    report(n, "assembling")
    segments = [work.segment(k) for k in range(n_segments)]
    atomic_write(dst, lambda tmp: assemble(tmp, fmt, segments, info, settings))
    work.remove()
    summary.complete, summary.work_dir = True, None
    summary.seconds = time.monotonic() - t0
    return summary


def _rotate(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """``x`` ``(B, C, h, w)`` turned counter-clockwise by ``quarter_turns`` * 90 degrees."""
    return torch.rot90(x, quarter_turns, dims=(-2, -1)) if quarter_turns % 4 else x


@dataclass(frozen=True)
class _Run:
    """What one run does to every frame: the network (in ``precision``), render size, encoding, segment length."""

    model: nn.Module
    precision: str
    info: VideoInfo
    render_size: int
    settings: EncodeSettings
    fmt: str
    strength: float
    seg_n: int
    batch_size: int


def _run(run: _Run, stabilizer: ChromaStabilizer, cuts: list[int], work: _Work, first_segment: int,
         report: Callable[[int], None], should_stop: Callable[[], bool] | None) -> None:
    """Colorize segments ``first_segment..`` (raises _Stop when asked to stop)."""
    info, seg_n, batch_size = run.info, run.seg_n, run.batch_size
    n, start = info.frames, first_segment * seg_n
    turns = round(info.rotation / 90) % 4 if info.rotation % 90 == 0 else 0  # the network sees it upright
    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
    writer = _Writer(work, run.settings, info, wants_global_header(run.fmt), run.strength, first_segment, stop)
    reader = threading.Thread(target=_reader, args=(info, start, run.render_size, frames_q, stop),
                              name="colorkit-video-reader", daemon=True)
    reader.start()
    writer.start()
    graceful = False
    try:
        k, index = first_segment, start
        while index < n:
            seg_end = min(n, (k + 1) * seg_n)
            while index < seg_end:
                if should_stop is not None and should_stop():
                    graceful = True
                    raise _Stop
                batch: list[_Frame] = []
                while len(batch) < batch_size and index + len(batch) < seg_end:
                    item = _get(frames_q, stop)
                    if isinstance(item, BaseException):
                        raise item
                    if item is _END:
                        raise VideoError(info.path, f"truncated or damaged: only {index + len(batch)} of {n} "
                                                    "frames decode")
                    batch.append(item)
                x = torch.stack([f.small for f in batch])
                ab = _rotate(predict_chroma(run.model, _rotate(x, turns), run.precision), -turns).numpy()
                light = rgb_to_luminance(x)[:, 0].numpy()
                for f, lf, af in zip(batch, light, ab, strict=True):
                    out, key = stabilizer(lf, af)
                    if key and f.index > 0:
                        cuts.append(f.index)
                    _put(writer.inbox, ("frame", f, out), stop)
                index += len(batch)
                report(index)
            _put(writer.inbox, ("end", k, stabilizer.state_dict(), list(cuts)), stop)
            k += 1
        graceful = True
    finally:
        if graceful:  # the writer finishes the segments handed over, then stops
            _put_until(writer.inbox, _END, writer)
        else:
            stop.set()
        writer.join()
        stop.set()
        reader.join()
    if writer.error is not None:
        raise writer.error


def _put_until(q: queue.Queue, item: Any, thread: threading.Thread) -> None:
    """Put ``item`` on ``q`` unless ``thread`` (its consumer) has ended."""
    while thread.is_alive():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
