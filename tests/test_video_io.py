"""colorkit.video_io: probing, decoding from any frame, refusing bad input, segment files, output checks.

``make_clip`` (also used by tests/test_video.py) writes small test videos with PyAV: gray frames with a moving
box (or two scenes), optional audio, variable frame rate and rotation.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from colorkit.video_io import (
    EncodeSettings,
    VideoError,
    check_output,
    container_format,
    frame_to_image,
    image_to_frame,
    open_encoder,
    probe_video,
    read_frames,
    read_segment,
    write_segment,
)

VFR_STEPS = (2, 3, 5)  # frame durations in ticks of 1/60 s, cycled


def scene_frame(i: int, w: int, h: int, scene: int = 0, seed: int = 0) -> np.ndarray:
    """Gray RGB frame ``i`` (h, w, 3) uint8: scene 0 is a moving bright box on a dark left half / mid-gray right
    half; scene 1 swaps light and dark on the right half (a different picture, same left half)."""
    rng = np.random.default_rng(seed * 1000 + i)
    g = np.full((h, w), 40, np.float32)
    top, bottom = (200, 20) if scene == 0 else (20, 200)
    g[: h // 2, w // 2 :] = top
    g[h // 2 :, w // 2 :] = bottom
    x = (3 * i) % max(1, w // 2 - 8)
    g[h // 4 : h // 4 + 6, x : x + 8] = 230 if scene == 0 else 120
    g += rng.normal(0, 2, g.shape)  # a little film grain
    return np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def make_clip(path: Path, n: int = 24, w: int = 64, h: int = 48, rate: int = 24, audio: bool = True,
              vfr: bool = False, rotate: int | None = None, cut_at: int | None = None, codec: str = "libx264",
              pix_fmt: str = "yuv420p") -> Path:
    """A small test video: ``n`` gray frames (scene 1 from ``cut_at`` on), AAC audio as long as the video."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        tb = Fraction(1, 60) if vfr else Fraction(1, rate)
        vs.codec_context.time_base = tb
        if rotate is not None:
            vs.set_display_rotation(rotate)
        a = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        t = 0
        for i in range(n):
            scene = 1 if cut_at is not None and i >= cut_at else 0
            frame = av.VideoFrame.from_ndarray(scene_frame(i, w, h, scene), "rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = t, tb
            t += VFR_STEPS[i % len(VFR_STEPS)] if vfr else 1
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if a is not None:
            total, k = int(8000 * t * tb), 0
            while k < total:
                m = min(1024, total - k)
                tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(k, k + m) / 8000)).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                af.sample_rate, af.pts = 8000, k
                out.mux(a.encode(af))
                k += m
            out.mux(a.encode())
    return path


def make_without_frames(path: Path, video: bool = True) -> Path:
    """A file with a short AAC sound track and (``video``) a 64x48 H.264 track that has no frames."""
    with av.open(str(path), "w", format="mp4" if path.suffix == ".m4a" else None) as out:
        if video:
            vs = out.add_stream("libx264", rate=24)
            vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("aac", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        out.mux(a.encode(af))
        out.mux(a.encode())
    return path


def frame_times(path: Path) -> list[Fraction]:
    """Display times (seconds, exact) of every video frame of ``path``."""
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def test_probe_describes_the_clip(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", n=20, vfr=True, rotate=90)
    info = probe_video(clip)
    assert (info.width, info.height, info.frames) == (64, 48, 20)
    assert [p * info.time_base for p in info.pts] == frame_times(clip)
    assert info.rotation == 90 and info.display_matrix is not None
    assert info.audio == ("aac",)
    assert info.duration == pytest.approx(sum(VFR_STEPS[i % 3] for i in range(20)) / 60, abs=0.05)


@pytest.mark.parametrize("start", [0, 7, 19])
def test_read_frames_from_any_index_matches_a_full_decode(tmp_path, start):
    info = probe_video(make_clip(tmp_path / "c.mp4", n=20, audio=False))
    full = [(i, f.to_ndarray(format="gray")) for i, f in read_frames(info)]
    part = [(i, f.to_ndarray(format="gray")) for i, f in read_frames(info, start)]
    assert [i for i, _ in part] == list(range(start, 20))
    for (i, a), (j, b) in zip(full[start:], part, strict=True):
        assert i == j and np.array_equal(a, b)


def test_frame_image_round_trip_keeps_gray_and_lightness(tmp_path):
    info = probe_video(make_clip(tmp_path / "c.mp4", n=2, audio=False))
    _, frame = next(read_frames(info))
    img = frame_to_image(frame)
    arr = np.asarray(img).astype(int)
    assert img.size == (64, 48) and np.abs(arr[..., 0] - arr[..., 1]).max() <= 1
    back = image_to_frame(img, "yuv420p", info)
    y0, y1 = (f.to_ndarray()[:48].astype(int) for f in (frame, back))  # the Y planes
    assert np.abs(y0 - y1).max() <= 1


# ----------------------------------------------------------------------------------------------
# bad input: a clear error naming the file


def test_not_a_video(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("these are not frames\n" * 50)
    with pytest.raises(VideoError, match="not a video file") as e:
        probe_video(bad)
    assert e.value.path == bad


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe_video(tmp_path / "gone.mp4")
    with pytest.raises(VideoError, match="is a folder"):
        probe_video(tmp_path)


def test_still_image_is_not_a_video(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 24), (90, 90, 90)).save(photo)
    with pytest.raises(VideoError, match="still image"):
        probe_video(photo)


def test_stream_without_video(tmp_path):
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(make_without_frames(tmp_path / "sound.m4a", video=False))


@pytest.mark.parametrize("ext", [".mkv", ".avi", ".mp4"])
def test_zero_frames(tmp_path, ext):
    """A video track without frames next to a sound track."""
    path = make_without_frames(tmp_path / f"empty{ext}")
    # Matroska and AVI keep the empty track; FFmpeg drops an MP4 track without samples
    with pytest.raises(VideoError, match="has no video stream" if ext == ".mp4" else "has no video frames"):
        probe_video(path)


@pytest.mark.parametrize("keep", [0.3, 0.8])
def test_truncated_file(tmp_path, keep):
    clip = make_clip(tmp_path / "c.mp4", n=24)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoError, match="not a video|truncated|damaged"):
        info = probe_video(cut)
        list(read_frames(info))


@pytest.mark.parametrize("keep", [0.5, 0.8, 0.9])
def test_truncated_stream_without_index(tmp_path, keep):
    """Matroska has no frame index: a cut file is caught by its header's duration."""
    clip = make_clip(tmp_path / "c.mkv", n=24)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoError, match="truncated"):
        probe_video(cut)


def test_check_output_refuses_what_cannot_be_written(tmp_path):
    info = probe_video(make_clip(tmp_path / "c.mp4", n=2))
    with pytest.raises(VideoError, match="unknown video file type"):
        check_output(tmp_path / "out.xyz", EncodeSettings(), info)
    with pytest.raises(VideoError, match="unknown video encoder"):
        check_output(tmp_path / "out.mp4", EncodeSettings(codec="no-such-codec"), info)
    with pytest.raises(VideoError, match="pixel format"):
        check_output(tmp_path / "out.mp4", EncodeSettings(pix_fmt="rgb48le"), info)
    with pytest.raises(VideoError, match="cannot write ffv1"):
        check_output(tmp_path / "out.webm", EncodeSettings(codec="ffv1", pix_fmt="yuv420p"), info)
    check_output(tmp_path / "out.mkv", EncodeSettings(codec="ffv1", pix_fmt="yuv420p"), info)
    assert container_format("A.MP4") == "mp4"


def test_odd_frame_size_needs_full_chroma(tmp_path):
    info = probe_video(make_clip(tmp_path / "odd.mkv", n=3, w=65, h=49, audio=False, pix_fmt="yuv444p"))
    with pytest.raises(VideoError, match="odd frame size 65x49") as e:
        check_output(tmp_path / "out.mp4", EncodeSettings(), info)
    assert e.value.path == info.path
    check_output(tmp_path / "out.mp4", EncodeSettings(pix_fmt="yuv444p"), info)


def test_segment_file_round_trip(tmp_path):
    info = probe_video(make_clip(tmp_path / "c.mp4", n=12, audio=False))
    enc = open_encoder(EncodeSettings(), info, global_header=True)
    frames = [f for _, f in read_frames(info, 4)]
    count = write_segment(tmp_path / "seg.bin", frames, enc)
    footer, packets = read_segment(tmp_path / "seg.bin")
    packets = list(packets)
    assert count == len(packets) == 8
    assert sorted(footer["pts"]) == [int(p) for p in info.pts[4:]]
    assert packets[0][1] is True  # a segment starts with a key frame
    assert bytes.fromhex(footer["extradata"]) == enc.extradata
    (tmp_path / "junk.bin").write_bytes(b"nothing")
    with pytest.raises(ValueError, match="not a colorkit video segment"):
        read_segment(tmp_path / "junk.bin")
