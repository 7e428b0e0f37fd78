"""colorkit.video.colorize_video: what the output keeps, stability and cuts, resuming, bad input.

Clips are made with PyAV in tmp_path (tests/test_video_io.py's ``make_clip``: 64x48 gray frames with a moving
box, AAC audio). The network is a tiny random-weight ResNet18 U-Net, or ``FlickerNet``, a stand-in that paints
each frame one random colour, i.e. a network that flickers as badly as can be.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from test_video_io import frame_times, make_clip, make_without_frames
from torch import nn

from colorkit.color import lab_to_rgb, rgb_to_lab, rgb_to_luminance
from colorkit.learner import Colorizer, load_colorizer, save_colorizer
from colorkit.models import create_generator
from colorkit.video import VideoError, VideoProgress, colorize_video, work_dir_for
from colorkit.video_stabilize import chroma_flicker

LOSSLESS = {"crf": 0}  # x264 lossless: the decoded output is exactly what was encoded


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny networks here gain nothing from threads, and on a busy machine extra ones cost a lot."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved random-weight resnet18 colorizer with the lightest U-Net options, rendering at 32 px."""
    torch.manual_seed(0)
    net = create_generator("resnet18", img_size=32, self_attention=False, blur=False, spectral=False)
    return save_colorizer(net, tmp_path_factory.mktemp("model") / "tiny", render_size=32)


@pytest.fixture(scope="module")
def colorizer(model_dir: Path) -> Colorizer:
    return load_colorizer(model_dir)


class FlickerNet(nn.Module):
    """Gray in, the same lightness with one random (seeded) colour per frame out: ``(B, 3, h, w)``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ab = torch.rand(x.shape[0], 2, 1, 1, generator=self.gen) * 40 - 20
        lab = torch.cat([rgb_to_luminance(x), ab.expand(-1, -1, *x.shape[-2:])], dim=1)
        return lab_to_rgb(lab)


def decode_lab(path: Path) -> list[np.ndarray]:
    """Every frame of ``path`` as Lab ``(3, H, W)`` float64."""
    with av.open(str(path)) as c:
        rgb = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    t = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).double() / 255
    return list(rgb_to_lab(t).numpy())


def audio_packets(path: Path) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(audio=0) if p.size]


def video_duration(path: Path) -> Fraction:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.duration * s.time_base


def test_output_keeps_frames_times_size_duration_audio_and_lightness(tmp_path, colorizer):
    src = make_clip(tmp_path / "in.mp4", n=24)
    dst = tmp_path / "out" / "colour.mp4"
    events: list[VideoProgress] = []
    summary = colorize_video(colorizer, src, dst, segment_frames=10, progress=events.append)
    assert summary.complete and not summary.stopped and dst.is_file()
    assert (summary.frames, summary.segments, summary.colorized, summary.resumed_frames) == (24, 3, 24, 0)
    assert frame_times(dst) == frame_times(src)
    assert video_duration(dst) == video_duration(src)
    with av.open(str(dst)) as c:
        vs = c.streams.video[0]
        assert (vs.width, vs.height, vs.codec_context.name) == (64, 48, "h264")
    assert audio_packets(dst) == audio_packets(src)
    # the full-resolution lightness of every frame is kept (as for photos); the colour is new
    lab, gray = decode_lab(dst), decode_lab(src)
    assert np.mean([np.abs(a[0] - b[0]).mean() for a, b in zip(lab, gray, strict=True)]) < 2
    assert np.mean([np.hypot(f[1], f[2]).mean() for f in lab]) > 2
    assert not work_dir_for(dst).exists()
    assert [e.done for e in events[:-1]] == [4, 8, 10, 14, 18, 20, 24]  # batches never span segments
    assert events[-1].stage == "assembling" and events[-1].done == 24
    assert events[3].fps > 0 and events[3].eta == pytest.approx((24 - 14) / events[3].fps)


def test_variable_frame_rate_and_rotation_are_kept(tmp_path, colorizer):
    src = make_clip(tmp_path / "vfr.mp4", n=15, vfr=True, rotate=90)
    dst = tmp_path / "vfr-colour.mkv"
    colorize_video(colorizer, src, dst, codec="libx264", crf=23)
    # Matroska stores milliseconds
    assert np.allclose(np.array(frame_times(dst), float), np.array(frame_times(src), float), rtol=0, atol=1e-3)
    with av.open(str(dst)) as c:
        assert next(c.decode(video=0)).rotation == 90
    assert audio_packets(dst)[0][1] == audio_packets(src)[0][1]


def test_stability_reduces_flicker_and_a_cut_resets_the_colour(tmp_path):
    src = make_clip(tmp_path / "cut.mp4", n=24, cut_at=12, audio=False)
    outs = {}
    for s in (0.0, 0.8):
        dst = tmp_path / f"s{s}.mp4"
        summary = colorize_video(FlickerNet(seed=1), src, dst, render_size=64, stability=s, crf=0)
        assert summary.scene_cuts == [12]
        outs[s] = decode_lab(dst)
    plain, stable = outs[0.0], outs[0.8]
    assert chroma_flicker(stable, tolerance=8, skip={12}) < 0.5 * chroma_flicker(plain, tolerance=8, skip={12})
    left = (slice(None), slice(None), slice(0, 24))  # the dark left half, the same in both scenes

    def ab(frames: list[np.ndarray], t: int) -> np.ndarray:
        return frames[t][1:][left].mean(axis=(1, 2))

    # key frames (the first, and the first after the cut) keep the network's own colour ...
    for t in (0, 12):
        assert np.abs(ab(stable, t) - ab(plain, t)).max() < 1.0
    # ... the frames after them carry colour from the frames before
    assert np.abs(ab(stable, 13) - ab(plain, 13)).max() > 2.0


def test_resume_after_an_interruption_gives_the_same_file(tmp_path, colorizer):
    """Stopped, then killed (Ctrl-C), then resumed: the same frames, times, duration and audio as one run.

    Lossless x264 (crf 0) so the comparison sees the colour exactly: x264's bitstream for identical frames can
    change with the process's memory layout, so bytes are not compared."""
    src = make_clip(tmp_path / "in.mp4", n=20)
    whole = tmp_path / "whole.mp4"
    colorize_video(colorizer, src, whole, segment_frames=8, crf=0)

    dst = tmp_path / "part.mp4"
    asked = []

    def stop_soon() -> bool:  # asked before each batch of 4 frames: stops inside the second segment
        asked.append(1)
        return len(asked) > 3

    first = colorize_video(colorizer, src, dst, segment_frames=8, crf=0, should_stop=stop_soon)
    work = work_dir_for(dst)
    assert first.stopped and not first.complete and not dst.exists()
    assert first.colorized == 8 and sorted(p.name for p in work.glob("seg_*")) == ["seg_00000.bin"]
    (work / ".seg_00001.bin.tmp-dead").write_bytes(b"left by a killed run")

    def interrupt(p: VideoProgress) -> None:
        if p.done >= 20:
            raise KeyboardInterrupt  # as Ctrl-C inside the last segment

    second = colorize_video(colorizer, src, dst, segment_frames=8, crf=0, resume=True, progress=interrupt)
    assert second.stopped and second.resumed_frames == 8 and second.colorized == 8 and not dst.exists()
    assert not (work / ".seg_00001.bin.tmp-dead").exists()
    third = colorize_video(colorizer, src, dst, segment_frames=8, crf=0, resume=True)
    assert third.complete and third.resumed_frames == 16 and third.colorized == 4
    assert not work.exists()
    assert frame_times(dst) == frame_times(whole) and video_duration(dst) == video_duration(whole)
    assert audio_packets(dst) == audio_packets(whole)
    for a, b in zip(decode_lab(dst), decode_lab(whole), strict=True):
        assert np.array_equal(a, b)


def test_resume_refuses_other_settings_and_a_fresh_run_starts_over(tmp_path, colorizer):
    src = make_clip(tmp_path / "in.mp4", n=12, audio=False)
    dst = tmp_path / "out.mp4"
    colorize_video(colorizer, src, dst, segment_frames=4, should_stop=lambda: True)
    assert work_dir_for(dst).is_dir()
    with pytest.raises(VideoError, match="other settings .*stability"):
        colorize_video(colorizer, src, dst, segment_frames=4, stability=0.3, resume=True)
    summary = colorize_video(colorizer, src, dst, segment_frames=4, stability=0.3)
    assert summary.complete and summary.resumed_frames == 0


def _not_a_video(tmp: Path) -> Path:
    p = tmp / "notes.mp4"
    p.write_text("no frames here\n" * 40)
    return p


def _truncated(tmp: Path) -> Path:
    data = make_clip(tmp / "full.mp4", n=24).read_bytes()
    p = tmp / "cut.mp4"
    p.write_bytes(data[: len(data) // 2])
    return p


def _sound_only(tmp: Path) -> Path:
    return make_without_frames(tmp / "sound.m4a", video=False)


def _no_frames(tmp: Path) -> Path:
    return make_without_frames(tmp / "empty.mkv")


def _odd_size(tmp: Path) -> Path:
    return make_clip(tmp / "odd.mkv", n=4, w=63, h=47, audio=False, pix_fmt="yuv444p")


@pytest.mark.parametrize("make, message", [
    (_not_a_video, "not a video file"),
    (_truncated, "truncated|not a video"),
    (_sound_only, "no video stream"),
    (_no_frames, "no video frames"),
    (_odd_size, "odd frame size 63x47"),
])
def test_bad_input_is_refused_and_leaves_nothing(tmp_path, colorizer, make, message):
    src = make(tmp_path)
    dst = tmp_path / "out" / "colour.mp4"
    with pytest.raises(VideoError, match=message) as e:
        colorize_video(colorizer, src, dst)
    assert e.value.path == src
    assert not dst.exists() and not work_dir_for(dst).exists()


def test_bad_output_is_refused_before_any_work(tmp_path, colorizer):
    src = make_clip(tmp_path / "in.mp4", n=4)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(VideoError, match="cannot write") as e:
        colorize_video(colorizer, src, blocker / "colour.mp4")  # its folder would be a file
    assert e.value.path == blocker / "colour.mp4"
    with pytest.raises(VideoError, match="is the input"):
        colorize_video(colorizer, src, src, overwrite=True)
    with pytest.raises(VideoError, match="unknown video file type"):
        colorize_video(colorizer, src, tmp_path / "colour.txt")
    done = tmp_path / "done.mp4"
    done.write_bytes(b"an earlier result")
    with pytest.raises(VideoError, match="already exists"):
        colorize_video(colorizer, src, done)
    assert done.read_bytes() == b"an earlier result"
    with pytest.raises(ValueError, match="stability"):
        colorize_video(colorizer, src, tmp_path / "x.mp4", stability=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "done.mp4", "in.mp4"]


# ----------------------------------------------------------------------------------------------
# the command line


def test_cli_video(tmp_path, model_dir, capsys):
    from colorkit.cli import main
    from colorkit.cli import video as cli_video
    from colorkit.video import DEFAULT_SEGMENT_FRAMES, DEFAULT_STABILITY

    assert (cli_video.STABILITY, cli_video.SEGMENT_FRAMES) == (DEFAULT_STABILITY, DEFAULT_SEGMENT_FRAMES)
    src = make_clip(tmp_path / "reel.mp4", n=12, cut_at=6)
    dst = tmp_path / "reel-colour.mp4"
    argv = ["video", str(src), "-o", str(dst), "--model", str(model_dir), "--stability", "0.5",
            "--segment-frames", "5", "-q", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "done: 12 frames (64x48" in out and "1 scene cut," in out and "1 audio stream(s) copied" in out
    assert frame_times(dst) == frame_times(src)
    assert main(argv) == 2  # the output exists
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 500)
    assert main(["video", str(bad), "-o", str(tmp_path / "x.mp4"), "--model", str(model_dir), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: not a video file" in err and not (tmp_path / "x.mp4").exists()
    assert main(["video", str(src), "-o", str(tmp_path / "y.mp4"), "--stability", "3"]) == 2
