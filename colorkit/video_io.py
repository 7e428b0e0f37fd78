"""Video files through PyAV: check an input, decode its frames, encode segments, assemble the output.

- :func:`probe_video` opens a file, reads every video packet once (no decoding) and returns a
  :class:`VideoInfo` (size, rotation, colour tags, the exact timestamps of all frames, audio streams), or raises
  :class:`VideoError` naming the file and the problem: not a video, a still image, no video stream, no frames,
  truncated.
- :func:`read_frames` decodes frames in display order from any frame index (seeking near it), with the
  input's own timestamps, and checks that every frame the container lists was decoded.
- :class:`EncodeSettings` + :func:`open_encoder` make the encoder (H.264 by default) with the input's colour
  tags; :func:`check_output` tries the output container, codec, frame size and the copied audio before any
  work is done.
- :func:`write_segment` encodes a run of frames into a segment file (a plain packet list, see below) and
  :func:`assemble` joins the segments and the input's untouched audio packets into the final container.

A segment starts with a key frame from a fresh encoder, so segments can be made in separate runs and joined
without re-encoding. Decode timestamps are rebuilt for the whole stream at assembly (the display timestamps
are the input's own), so the output has the input's frame count, timestamps and duration.

Segment file: ``MAGIC``, then per packet ``<qiB`` (pts, size, key) and the bytes, then a JSON footer
(pts in decode order, extradata as hex), its length ``<Q`` and ``END``. Never unpickled.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

__all__ = [
    "CONTAINERS",
    "EncodeSettings",
    "VideoError",
    "VideoInfo",
    "assemble",
    "check_output",
    "container_format",
    "frame_to_image",
    "image_to_frame",
    "open_encoder",
    "probe_video",
    "read_frames",
    "read_segment",
    "wants_global_header",
    "write_segment",
]

CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                              ".avi": "avi"}
"""Output file extensions and the FFmpeg container each one is written as."""

# Default quality per encoder: visually close to the input without huge files.
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 30, "libsvtav1": 30}
_MOV_FAMILY = {"mp4", "mov"}
# Matroska would shift every timestamp by the audio's priming (negative) time; it can store them as they are
_MUX_OPTIONS = {"matroska": {"avoid_negative_ts": "disabled"}, "webm": {"avoid_negative_ts": "disabled"}}
_GLOBAL_HEADER = 0x0040  # AVFMT_GLOBALHEADER: the container keeps codec headers out of band
_STILL_FORMATS = {"image2", "image2pipe"}
_MAGIC, _END = b"CKVSEG1\n", b"CKVEND1\n"
_YUV_MATRICES = {1, 4, 5, 6, 7, 9, 10}  # AVColorSpace values swscale converts with (BT.709, FCC, BT.601, ...)
_PACKET = struct.Struct("<qiB")
_FFMPEG_ERRORS: tuple[type[BaseException], ...] = (av.error.FFmpegError, OSError, ValueError, EOFError)


class VideoError(ValueError):
    """A video could not be read or written; ``str()`` is ``"{path}: {reason}"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


def _reason(e: BaseException) -> str:
    """FFmpeg's message without PyAV's ``[Errno n]`` prefix and file name suffix."""
    msg = getattr(e, "strerror", None) or str(e)
    return str(msg).strip().rstrip(".") or type(e).__name__


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """What :func:`probe_video` found. Times are in ``time_base`` units; ``pts`` ``(frames,)`` int64 holds every
    frame's display timestamp in display order; ``end`` is when the last frame stops showing."""

    path: Path
    format: str
    codec: str
    width: int
    height: int
    time_base: Fraction
    pts: np.ndarray
    end: int
    rate: Fraction | None
    rotation: int = 0
    display_matrix: tuple[int, ...] | None = None
    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    audio: tuple[str, ...] = ()
    synthetic_timestamps: bool = False

    @property
    def frames(self) -> int:
        return int(len(self.pts))

    @property
    def duration(self) -> float:
        """Seconds from the first frame's display time to the end of the last one."""
        return float((self.end - int(self.pts[0])) * self.time_base)


# ----------------------------------------------------------------------------------------------
# reading


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(path, "no such file")
    if path.is_dir():
        raise VideoError(path, "is a folder, not a video file")
    try:
        return av.open(str(path), "r")
    except _FFMPEG_ERRORS as e:
        raise VideoError(path, f"not a video file FFmpeg can read ({_reason(e)})") from None


def _display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    for sd in frame.side_data:
        if sd.type == av.sidedata.sidedata.Type.DISPLAYMATRIX and sd.buffer_size == 36:
            return struct.unpack("<9i", bytes(sd))
    return None


def _declared_length(container: Any) -> float | None:
    """The length (seconds, first packet to end of the last) a Matroska header states, else None. (MP4, MOV and
    AVI list their frames, which catches a cut file better; other formats' durations may be estimates.)"""
    if "matroska" not in container.format.name or not container.duration:
        return None
    return container.duration / 1_000_000


def _slack(rate: Any) -> float:
    """How much shorter than its header a file's data may be (half a frame, rounding) before it is truncated."""
    return 0.5 / float(rate) if rate else 0.02


def _first_frame(path: Path, container: Any, stream: Any) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except _FFMPEG_ERRORS as e:
        raise VideoError(path, f"damaged: the first frame cannot be decoded ({_reason(e)})") from None
    raise VideoError(path, "damaged: no frame could be decoded")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Check ``path`` and describe it: reads every video packet (no decoding) and decodes the first frame.

    Raises :class:`VideoError` for a missing file, a file FFmpeg cannot read, a still image, a file without a
    video stream or without frames, and a truncated file (fewer packets than its index lists, or unreadable
    data). Frames without timestamps get a constant-rate timeline (``synthetic_timestamps``).
    """
    path = Path(path)
    container = _open_input(path)
    try:
        fmt = container.format.name
        if fmt in _STILL_FORMATS or fmt.endswith("_pipe"):
            raise VideoError(path, f"is a still image ({fmt}), not a video; colorize photos with "
                                   "`colorkit colorize`")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            has = f" (it has {', '.join(kinds)} only)" if kinds else ""
            raise VideoError(path, f"has no video stream{has}")
        vs = container.streams.video[0]
        ctx = vs.codec_context
        if not ctx.width or not ctx.height:
            raise VideoError(path, "the video stream has no frame size")
        tb = vs.time_base or Fraction(1, 90000)
        pts: list[int | None] = []
        ends: list[int] = []
        first_start, last_end = float("inf"), float("-inf")  # seconds, over all streams
        try:
            for pkt in container.demux():
                if pkt.size == 0:
                    continue
                if pkt.pts is not None and pkt.time_base is not None:
                    first_start = min(first_start, float(pkt.pts * pkt.time_base))
                    last_end = max(last_end, float((pkt.pts + (pkt.duration or 0)) * pkt.time_base))
                if pkt.stream.index != vs.index or pkt.is_discard:  # discarded: decoded, never shown (edit lists)
                    continue
                if pkt.is_corrupt:
                    raise VideoError(path, f"damaged: packet {len(pts)} of the video stream is corrupt")
                pts.append(pkt.pts)
                if pkt.pts is not None and pkt.duration:
                    ends.append(pkt.pts + pkt.duration)
        except _FFMPEG_ERRORS as e:
            if isinstance(e, VideoError):
                raise
            raise VideoError(path, f"truncated or damaged after {len(pts)} frames ({_reason(e)})") from None
        declared = vs.frames or 0
        if declared and len(pts) < declared:
            raise VideoError(path, f"truncated: its index lists {declared} frames but only {len(pts)} are in "
                                   "the file")
        said = _declared_length(container)
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if said is not None and last_end > first_start and last_end - first_start < said - _slack(rate):
            raise VideoError(path, f"truncated: its header says it lasts {said:.2f} s but its data covers "
                                   f"{last_end - first_start:.2f} s")
        if not pts:
            raise VideoError(path, "has no video frames")
        synthetic = any(p is None for p in pts) or len(set(pts)) != len(pts)
        if synthetic:
            if not rate:
                raise VideoError(path, "its frames have no timestamps and no frame rate")
            step = max(1, round(1 / (Fraction(rate) * tb)))
            times = np.arange(len(pts), dtype=np.int64) * step
            end = int(times[-1]) + step
        else:
            times = np.sort(np.asarray(pts, dtype=np.int64))
            step = int(np.median(np.diff(times))) if len(times) > 1 else (
                max(1, round(1 / (Fraction(rate) * tb))) if rate else 1)
            if vs.duration:
                end = int(vs.start_time or 0) + int(vs.duration)
            else:
                end = max(ends) if ends else int(times[-1]) + step
            end = max(end, int(times[-1]) + 1)
        container.seek(0)
        first = _first_frame(path, container, vs)
        return VideoInfo(
            path=path, format=fmt, codec=ctx.name, width=ctx.width, height=ctx.height, time_base=Fraction(tb),
            pts=times, end=end, rate=Fraction(rate) if rate else None, rotation=int(first.rotation or 0),
            display_matrix=_display_matrix(first), colorspace=int(first.colorspace),
            color_range=int(first.color_range), color_primaries=int(first.color_primaries),
            color_trc=int(first.color_trc), audio=tuple(s.codec_context.name for s in container.streams.audio),
            synthetic_timestamps=synthetic,
        )
    finally:
        container.close()


def _decode(path: Path, container: Any, stream: Any) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except _FFMPEG_ERRORS as e:
        raise VideoError(path, f"truncated or damaged: decoding failed ({_reason(e)})") from None


def _seek_to(info: VideoInfo, container: Any, stream: Any, start: int) -> Iterator[av.VideoFrame] | None:
    """Frames from ``start`` on after seeking near it, or None when the decoder does not land exactly on it."""
    target = int(info.pts[start])
    try:
        container.seek(target, stream=stream, backward=True)
    except _FFMPEG_ERRORS:
        return None
    frames = _decode(info.path, container, stream)
    for frame in frames:
        if frame.pts is None or frame.pts > target:
            return None
        if frame.pts == target:
            def rest(first: av.VideoFrame = frame) -> Iterator[av.VideoFrame]:
                yield first
                yield from frames
            return rest()
    return None


def read_frames(info: VideoInfo, start: int = 0) -> Iterator[tuple[int, av.VideoFrame]]:
    """``(index, frame)`` for the frames of ``info``'s video from frame ``start`` on, in display order.

    Each frame's ``pts`` is set to ``info.pts[index]``. Seeks near ``start`` when it can land exactly on it,
    else decodes from the beginning. Raises :class:`VideoError` when decoding fails or ends before
    ``info.frames`` frames (a truncated or damaged file).
    """
    if not 0 <= start <= info.frames:
        raise ValueError(f"start must be in [0, {info.frames}], got {start}")
    container = _open_input(info.path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = _seek_to(info, container, stream, start) if start > 0 and not info.synthetic_timestamps else None
        index = start
        if frames is None:
            container.seek(0)
            frames = _decode(info.path, container, stream)
            skipped = 0
            for _ in range(start):
                if next(frames, None) is None:
                    break
                skipped += 1
            if skipped < start:
                raise VideoError(info.path, f"truncated or damaged: only {skipped} of {info.frames} frames decode")
        for frame in frames:
            if index >= info.frames:
                raise VideoError(info.path, f"damaged: more frames decode than the {info.frames} it lists")
            frame.pts = int(info.pts[index])
            yield index, frame
            index += 1
        if index < info.frames:
            raise VideoError(info.path, f"truncated or damaged: only {index} of {info.frames} frames decode")
    finally:
        container.close()


def _colour_args(colorspace: int, color_range: int, side: str) -> dict[str, int]:
    """swscale arguments for a frame's YUV matrix and range (unspecified: swscale's BT.601 limited range)."""
    args = {}
    if colorspace in _YUV_MATRICES:
        args[f"{side}_colorspace"] = colorspace
    if color_range in (1, 2):
        args[f"{side}_color_range"] = color_range
    return args


def frame_to_image(frame: av.VideoFrame) -> Image.Image:
    """A decoded frame as an 8-bit RGB PIL image, converted with the frame's own YUV matrix and range."""
    rgb = frame.reformat(format="rgb24", **_colour_args(frame.colorspace, frame.color_range, "src"))
    return rgb.to_image()


def image_to_frame(img: Image.Image, pix_fmt: str, info: VideoInfo) -> av.VideoFrame:
    """An RGB PIL image as a ``pix_fmt`` frame with ``info``'s YUV matrix and range (as :func:`frame_to_image`
    read it, so gray stays gray and the lightness round-trips within one level)."""
    frame = av.VideoFrame.from_image(img)
    return frame.reformat(format=pix_fmt, **_colour_args(info.colorspace, info.color_range, "dst"))


# ----------------------------------------------------------------------------------------------
# encoding


def container_format(path: str | os.PathLike) -> str:
    """The FFmpeg container for an output path, from its extension (see :data:`CONTAINERS`)."""
    ext = Path(path).suffix.lower()
    if ext not in CONTAINERS:
        raise VideoError(path, f"unknown video file type {ext or '(none)'!r}; use one of "
                               f"{', '.join(sorted(CONTAINERS))}")
    return CONTAINERS[ext]


@dataclass(frozen=True)
class EncodeSettings:
    """How the output video is encoded: FFmpeg encoder name, pixel format, quality and encoder options.

    ``crf`` (constant quality; lower is better) applies to encoders that have it (libx264: 18 unless given,
    libx265 20, libvpx-vp9 30, libsvtav1 30); ``preset`` to those with presets (x264/x265: ``"medium"``).
    ``options`` are passed to the encoder as they are (e.g. ``{"tune": "grain"}``).
    """

    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    crf: float | None = None
    preset: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def encoder_options(self) -> dict[str, str]:
        """The option dict given to the encoder; raises ValueError for an unknown codec or option."""
        try:
            ctx = av.CodecContext.create(self.codec, "w")
        except _FFMPEG_ERRORS as e:
            raise ValueError(f"unknown video encoder {self.codec!r} ({_reason(e)})") from None
        private = {o.name for o in (ctx.supported_options.private or ())}
        opts = {str(k): str(v) for k, v in self.options.items()}
        crf = self.crf if self.crf is not None else _DEFAULT_CRF.get(ctx.name)
        if crf is not None:
            if "crf" not in private:
                raise ValueError(f"encoder {ctx.name} has no crf option; set its quality through options")
            opts.setdefault("crf", f"{crf:g}")
            if ctx.name.startswith("libvpx"):
                opts.setdefault("b", "0")  # constant quality, no bit rate cap
        if self.preset is not None:
            if "preset" not in private:
                raise ValueError(f"encoder {ctx.name} has no preset option")
            opts.setdefault("preset", self.preset)
        return opts


def _subsampled(pix_fmt: str) -> tuple[bool, bool]:
    """Whether ``pix_fmt`` halves chroma horizontally and vertically (so needs even width / height)."""
    comps = av.VideoFormat(pix_fmt, 64, 64).components
    chroma = [c for c in comps if c.is_chroma]
    return any(c.width < 64 for c in chroma), any(c.height < 64 for c in chroma)


def wants_global_header(fmt: str) -> bool:
    """Whether container ``fmt`` keeps codec headers out of band (MP4, Matroska: yes; AVI: no)."""
    return bool(av.format.ContainerFormat(fmt, "w").flags & _GLOBAL_HEADER)


def open_encoder(settings: EncodeSettings, info: VideoInfo, global_header: bool) -> Any:
    """An opened video encoder for ``info``'s frames: its size, time base, frame rate and colour tags.

    ``global_header`` keeps codec headers out of band (containers such as MP4 and Matroska want that)."""
    ctx = av.CodecContext.create(settings.codec, "w")
    _configure(ctx, settings, info)
    if global_header:
        ctx.flags |= av.codec.context.Flags.global_header
    ctx.open()
    return ctx


def _configure(ctx: Any, settings: EncodeSettings, info: VideoInfo) -> None:
    ctx.width, ctx.height, ctx.pix_fmt = info.width, info.height, settings.pix_fmt
    ctx.time_base = info.time_base
    if info.rate:
        ctx.framerate = info.rate
    ctx.colorspace, ctx.color_range = info.colorspace, info.color_range
    ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
    ctx.options = settings.encoder_options()


def _output_streams(out: Any, settings: EncodeSettings, info: VideoInfo, source: Any) -> tuple[Any, list[Any]]:
    """The output's video stream (an encoder configured like the segments') and one copy per audio stream."""
    vs = out.add_stream(settings.codec, rate=info.rate)
    _configure(vs.codec_context, settings, info)
    if info.display_matrix is not None:
        vs.set_display_matrix(info.display_matrix)
    lang = source.streams.video[0].metadata.get("language")
    if lang:
        vs.metadata["language"] = lang
    audio = []
    for a in source.streams.audio:
        oa = out.add_stream_from_template(a)
        if a.metadata.get("language"):
            oa.metadata["language"] = a.metadata["language"]
        audio.append(oa)
    skip = {"major_brand", "minor_version", "compatible_brands", "encoder"}
    out.metadata.update({k: v for k, v in source.metadata.items() if k not in skip})
    return vs, audio


def check_output(dst: str | os.PathLike, settings: EncodeSettings, info: VideoInfo) -> None:
    """Refuse early what cannot be written: an unknown extension or encoder, a pixel format the encoder lacks,
    an odd frame size for a subsampled format, or a codec the container cannot hold (audio included).
    Writes a header into memory only. Raises :class:`VideoError` naming ``dst`` or the input."""
    fmt = container_format(dst)
    try:
        settings.encoder_options()
        codec = av.Codec(settings.codec, "w")
    except (ValueError, *_FFMPEG_ERRORS) as e:
        raise VideoError(dst, _reason(e)) from None
    formats = [f.name for f in (codec.video_formats or ())]
    if formats and settings.pix_fmt not in formats:
        raise VideoError(dst, f"encoder {codec.name} cannot write pixel format {settings.pix_fmt!r} "
                              f"(it can: {', '.join(formats)})")
    half_w, half_h = _subsampled(settings.pix_fmt)
    if (half_w and info.width % 2) or (half_h and info.height % 2):
        raise VideoError(info.path, f"odd frame size {info.width}x{info.height}: {settings.pix_fmt} needs an even "
                                    "width and height; choose a full-chroma pixel format (e.g. yuv444p) for the "
                                    "same size, or crop the input")
    source = _open_input(info.path)
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as out:
            _output_streams(out, settings, info, source)
            out.start_encoding()
    except _FFMPEG_ERRORS as e:
        audio = f" with {', '.join(info.audio)} audio" if info.audio else ""
        raise VideoError(dst, f"cannot write {codec.name} video{audio} in a {Path(dst).suffix} file "
                              f"({_reason(e)}); try another container (.mkv holds most codecs)") from None
    finally:
        source.close()


def write_segment(path: str | os.PathLike, frames: Iterable[av.VideoFrame], encoder: Any) -> int:
    """Encode ``frames`` (with their pts) with ``encoder`` (flushed at the end) into segment file ``path``;
    returns the number of packets. Write to a temp file and rename (:func:`colorkit.io.atomic_write`)."""
    order: list[int] = []
    with open(path, "xb") as fh:
        fh.write(_MAGIC)

        def put(packets: Sequence[Any]) -> None:
            for p in packets:
                data = bytes(p)
                fh.write(_PACKET.pack(int(p.pts), len(data), int(bool(p.is_keyframe))))
                fh.write(data)
                order.append(int(p.pts))

        for frame in frames:
            put(encoder.encode(frame))
        put(encoder.encode(None))
        extradata = encoder.extradata or b""
        footer = json.dumps({"pts": order, "extradata": extradata.hex()}).encode()
        fh.write(footer)
        fh.write(struct.pack("<Q", len(footer)))
        fh.write(_END)
    return len(order)


def read_segment(path: str | os.PathLike) -> tuple[dict[str, Any], Iterator[tuple[int, bool, bytes]]]:
    """The footer (``pts`` in decode order, ``extradata`` hex) of a segment file and an iterator over its
    packets ``(pts, key, data)``. Raises ValueError for a file that is not a complete segment."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(len(_MAGIC)) != _MAGIC or size < len(_MAGIC) + 8 + len(_END):
            raise ValueError(f"{path}: not a colorkit video segment")
        fh.seek(size - len(_END) - 8)
        (n,) = struct.unpack("<Q", fh.read(8))
        if fh.read(len(_END)) != _END or n > size:
            raise ValueError(f"{path}: incomplete colorkit video segment")
        fh.seek(size - len(_END) - 8 - n)
        footer = json.loads(fh.read(n))
    body_end = size - len(_END) - 8 - n

    def packets() -> Iterator[tuple[int, bool, bytes]]:
        with open(path, "rb") as fh:
            fh.seek(len(_MAGIC))
            while fh.tell() < body_end:
                pts, length, key = _PACKET.unpack(fh.read(_PACKET.size))
                yield pts, bool(key), fh.read(length)

    return footer, packets()


# ----------------------------------------------------------------------------------------------
# assembling


def _video_packets(segments: Sequence[Path], info: VideoInfo, mov: bool) -> Iterator[tuple[int, int, int, bool, bytes]]:
    """``(pts, dts, duration, key, data)`` for the whole stream in decode order.

    Decode timestamps are rebuilt from the display timestamps: ``dts[j] = pts_sorted[j - delay]`` with
    ``delay`` the stream's largest reordering, so they rise across segment joins. Durations follow the
    container's convention: MOV/MP4 store decode-time deltas (the last one chosen so the track lasts as long
    as the input), others the display time until the next frame."""
    times = info.pts
    n = len(times)
    footers = [read_segment(s)[0] for s in segments]
    order = np.asarray([p for f in footers for p in f["pts"]], dtype=np.int64)
    if len(order) != n or not np.array_equal(np.sort(order), times):
        raise ValueError(f"the segments hold {len(order)} frames whose times do not match the input's {n}")
    rank = np.searchsorted(times, order)
    delay = int(max(0, (np.arange(n) - rank).max()))
    step0 = int(times[1] - times[0]) if n > 1 else max(1, info.end - int(times[0]))
    j = np.arange(n)
    dts = np.where(j >= delay, times[np.maximum(j - delay, 0)], times[0] - (delay - j) * step0)
    if mov:
        span = info.end - int(times[0])  # the input track's length, as MP4 reports it
        durations = np.append(np.diff(dts), max(1, span - int(dts[-1] - dts[0])))
    else:
        shown = np.append(np.diff(times), max(1, info.end - int(times[-1])))
        durations = shown[rank]
    k = 0
    for seg in segments:
        for pts, key, data in read_segment(seg)[1]:
            yield pts, int(dts[k]), int(durations[k]), key, data
            k += 1


def assemble(dst_tmp: str | os.PathLike, fmt: str, segments: Sequence[Path], info: VideoInfo,
             settings: EncodeSettings) -> None:
    """Write the output container ``dst_tmp`` (format ``fmt``): the segments' video packets, with rebuilt decode
    timestamps, and every audio packet of the input, untouched, interleaved by time."""
    if not segments:
        raise ValueError("no segments to assemble")
    extradata = bytes.fromhex(read_segment(segments[0])[0]["extradata"])
    source = _open_input(info.path)
    try:
        with av.open(str(dst_tmp), "w", format=fmt, options=_MUX_OPTIONS.get(fmt)) as out:
            vs, audio = _output_streams(out, settings, info, source)
            out.start_encoding()
            if (vs.codec_context.extradata or b"") != extradata:
                raise ValueError("the segments were encoded with other codec settings than the output's")
            tb = info.time_base

            def video() -> Iterator[tuple[float, Any]]:
                for pts, dts, dur, key, data in _video_packets(segments, info, fmt in _MOV_FAMILY):
                    pkt = av.Packet(data)
                    pkt.pts, pkt.dts, pkt.duration, pkt.time_base = pts, dts, dur, tb
                    pkt.is_keyframe = key
                    pkt.stream = vs
                    yield float(dts * tb), pkt

            def sound() -> Iterator[tuple[float, Any]]:
                if not audio:
                    return
                by_index = {a.index: o for a, o in zip(source.streams.audio, audio, strict=True)}
                for pkt in source.demux(source.streams.audio):
                    if pkt.dts is None or pkt.size == 0:
                        continue
                    pkt.stream = by_index[pkt.stream.index]
                    yield float(pkt.dts * pkt.time_base), pkt

            _mux_interleaved(out, video(), sound())
    finally:
        source.close()


def _mux_interleaved(out: Any, *streams: Iterator[tuple[float, Any]]) -> None:
    """Mux packets from several time-ordered iterators in time order (ties: the earlier iterator first)."""
    heads: list[tuple[float, Any] | None] = [next(s, None) for s in streams]
    while True:
        live = [(h[0], i) for i, h in enumerate(heads) if h is not None]
        if not live:
            return
        _, i = min(live)
        out.mux(heads[i][1])  # type: ignore[index]
        heads[i] = next(streams[i], None)
