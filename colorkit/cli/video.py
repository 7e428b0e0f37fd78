"""``colorkit video``: colorize a film with colour that holds still, through :func:`colorkit.video.colorize_video`."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

HELP = "colorize a video (frame count, timing, audio kept; colour steady from frame to frame)"
DESCRIPTION = """\
Colorize a black-and-white video. The output keeps the input's frame count, timestamps
(variable frame rates too), size, rotation and duration, every audio stream untouched, and
each frame's full-resolution lightness. Colour is carried from frame to frame where the
picture is still and starts afresh at scene cuts (--stability; 0 colorizes every frame on
its own). The container follows OUTPUT's extension (.mp4, .mov, .mkv, .webm, .avi); H.264
(crf 18) by default.

Frames are written in segments next to OUTPUT (.NAME.parts/); an interrupted run (Ctrl-C,
SIGTERM: exit 130/143, or a crash) goes on from the last finished segment with --resume and
gives the same video as one run. Unreadable, truncated or frameless input exits 1; a refused
output (exists without --overwrite, unwritable, unknown type) exits 2. Nothing partial is
left under OUTPUT.
"""
EPILOG = """\
Example:
  colorkit video reel.mp4 -o reel-colour.mp4
  colorkit video reel.mp4 -o reel-colour.mp4 --resume          # after an interruption
  colorkit video reel.avi -o reel.mkv --model my_model/ --stability 0.9 --codec libx265 --crf 22

Exit codes: 0 done, 1 the input cannot be colorized, 2 bad arguments or refused output, 130/143 stopped.
"""


# the library's defaults (colorkit.video.DEFAULT_*), written out so that building the parser imports nothing
STABILITY, SEGMENT_FRAMES = 0.9, 120


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "video", HELP, DESCRIPTION, EPILOG)
    p.add_argument("input", metavar="INPUT", help="the video to colorize")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="the colorized video (a file name)")
    p.add_argument("--model", default=None, metavar="M", help="model folder (default: the starter model)")
    p.add_argument("--render-size", type=int, default=None, metavar="N",
                   help="side of the square the network sees, in px (default: the model's)")
    p.add_argument("--stability", type=float, default=STABILITY, metavar="S",
                   help="0 (every frame on its own) .. 1: how much colour is carried where the picture is still")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="colour strength, 0 (gray) .. 1 (as predicted) .. 2 (twice as saturated)")
    p.add_argument("--resume", action="store_true", help="go on from an interrupted run's finished segments")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--codec", default="libx264", metavar="C", help="FFmpeg video encoder (libx264, libx265, "
                   "libvpx-vp9, ffv1, ...)")
    p.add_argument("--crf", type=float, default=None, metavar="Q",
                   help="constant quality for encoders that have it, lower is better (default: 18 for libx264)")
    p.add_argument("--preset", default=None, metavar="P", help="encoder preset (x264/x265: ultrafast .. veryslow)")
    p.add_argument("--pix-fmt", default="yuv420p", metavar="F",
                   help="pixel format; yuv444p keeps odd frame sizes and full colour resolution")
    p.add_argument("--segment-frames", type=int, default=SEGMENT_FRAMES, metavar="N",
                   help="frames per resumable segment")
    p.add_argument("--batch-size", type=int, default=4, metavar="N", help="frames per network call")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the network runs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    common.add_precision(p)
    common.add_threads(p)
    return p


class _FrameBar(common.ProgressBar):
    """The progress line with the library's frame counts, rate and ETA (frames from an earlier run included)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(1, **kwargs)
        self.event: Any = None

    def show(self, event: Any) -> None:
        self.event, self.total, self.label = event, event.total, event.stage
        self.enabled = self.enabled and event.total > 0
        self.update(event.done - self.n)

    def line(self) -> str:
        e = self.event
        if e is None:
            return super().line()
        frac = e.done / e.total if e.total else 1.0
        filled = int(frac * 24)
        return (f"{e.stage} frame {e.done}/{e.total} [{'#' * filled}{'.' * (24 - filled)}] {frac:4.0%} "
                f"{e.fps:.2f} frames/s, elapsed {common.fmt_duration(e.elapsed)}, ETA {common.fmt_duration(e.eta)}")


def run(args: argparse.Namespace) -> int:
    if args.render_size is not None and args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    if not 0 <= args.stability <= 1:
        raise CLIError(f"--stability must be between 0 and 1, got {args.stability}")
    if not 0 <= args.strength <= 2:
        raise CLIError(f"--strength must be between 0 and 2, got {args.strength}")
    for name in ("segment_frames", "batch_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    from ..video import VideoError, colorize_video

    src, dst = Path(args.input), Path(args.output)
    path = common.model_path(args.model)
    model = common.load_model(path, args.device, args.precision)
    print(f"colorkit: {src} -> {dst}: model {path} (render size {args.render_size or model.render_size}, "
          f"{model.precision}), "
          f"stability {args.stability:g}{f', strength {args.strength:g}' if args.strength != 1 else ''}"
          f"{', resuming' if args.resume else ''}", flush=True)
    bar = _FrameBar(enabled=not args.quiet)
    t0 = time.monotonic()
    try:
        with common.StopOnSignal() as stop, common.torch_threads(args.threads):
            summary = colorize_video(
                model, src, dst, render_size=args.render_size, stability=args.stability, strength=args.strength,
                codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, overwrite=args.overwrite,
                resume=args.resume, segment_frames=args.segment_frames, batch_size=args.batch_size,
                progress=bar.show, should_stop=stop.stop_requested,
            )
    except VideoError as e:
        bar.close()
        raise CLIError(str(e), EXIT_FAILED if e.path == src else common.EXIT_USAGE) from None
    except ValueError as e:  # an encoder option the codec rejects, ...
        bar.close()
        raise CLIError(str(e)) from None
    bar.close()
    cuts = len(summary.scene_cuts)
    if summary.stopped:
        name = signal.Signals(stop.signum or signal.SIGINT).name
        print(f"colorkit: stopped ({name}) after {summary.resumed_frames + summary.colorized} of {summary.frames} "
              f"frames; the finished segments are in {summary.work_dir}. Run the same command with --resume to go "
              "on.", file=sys.stderr)
        return 128 + (stop.signum or signal.SIGINT)
    resumed = f", {summary.resumed_frames} from the earlier run" if summary.resumed_frames else ""
    print(f"colorkit: done: {summary.frames} frames ({summary.width}x{summary.height}, {summary.duration:.1f} s, "
          f"{cuts} scene cut{'s' if cuts != 1 else ''}, {summary.audio_streams} audio stream(s) copied){resumed} in "
          f"{common.fmt_duration(time.monotonic() - t0)} ({summary.fps:.2f} frames/s); output {dst}")
    return EXIT_OK
