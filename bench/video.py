"""`colorkit video`: flicker and colour error, frame by frame vs stabilised; speed against the image pipeline;
peak RSS against clip length.

    python bench/video.py [--model DIR] [--frames 96] [--size 320x240] [--threads T] [--rss-frames 120]
                          [--skip-speed] [--skip-rss]

Clips are made at run time in a temp folder (nothing is written to the repo):

- synthetic: a colour scene with moving shapes (a disc, a box), then a cut to a second scene, with what old
  film adds: gate weave (the frame jumps by a pixel), exposure flicker (lightness gain 1 +- 3%) and grain.
  Its gray version is the input; the colour frames are the truth.
- pan: a 320x240 window panning across a historic photo from ../shared/data/bw (3 px per frame).

A third row per clip and output, "steady", colours every frame with its scene's mean predicted colour: the same
colours held perfectly still. Its flicker is the floor left by 8-bit output, grain and the codec; "above the
floor" is the share of the removable flicker that the stabiliser leaves.

For each clip, ``colorize_video`` runs with ``--stability 0`` (frame by frame) and with the default, and the
bench prints the flicker: mean |delta ab| between consecutive frames over the pixels whose lightness does not
change (by more than 1 L unit: the truth's clean lightness for the synthetic clip, the input's for the pan; the
frame pair across the cut left out), and, for the synthetic clip, the mean CIEDE2000 against the colour truth.

Speed: the synthetic clip's frames as PNG files through ``colorkit.pipeline.colorize_files`` (the image
pipeline) vs ``colorize_video`` on the clip, both in this process with the model loaded: frames/s and ratio.
RSS: ``colorize_video`` on a clip of N and of 2N 640x360 frames, each in a fresh process: peak RSS of both.
The model is the shipped starter (``load_colorizer()``) unless --model is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, peak_rss_mb, run_case  # noqa: E402

PAN_PHOTO = "New_York_Riverfront_December_15__1931.jpg"


# ----------------------------------------------------------------------------------------------
# clips


def _scene(k: int, t: int, w: int, h: int) -> np.ndarray:
    """Colour frame ``t`` of scene ``k`` (h, w, 3) float32 in [0, 1], before the film's defects."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if k == 0:  # sky over a field, a red disc rolling right, a yellow box sliding left
        sky = np.array([0.45, 0.62, 0.85], np.float32)
        field = np.array([0.35, 0.5, 0.2], np.float32)
        mix = np.clip((yy - 0.55 * h) / (0.1 * h), 0, 1)[..., None]
        img = sky * (1 - mix) + field * mix
        img *= (1 + 0.08 * np.sin(xx / 9) * np.sin(yy / 7))[..., None]
        cx, cy, r = (0.15 * w + 3 * t) % w, 0.7 * h, 0.09 * h
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (0.8, 0.15, 0.12)
        bx = int((0.75 * w - 2 * t) % w)
        img[int(0.2 * h) : int(0.35 * h), bx : bx + int(0.12 * w)] = (0.9, 0.8, 0.2)
    else:  # a wooden wall, a face-coloured oval standing still, a blue square moving down
        img = np.empty((h, w, 3), np.float32)
        img[:] = (0.55, 0.36, 0.2)
        img *= (1 + 0.12 * np.sin(yy / 3.0 + np.sin(xx / 23)))[..., None]
        img[((xx - 0.3 * w) / (0.1 * w)) ** 2 + ((yy - 0.45 * h) / (0.16 * h)) ** 2 < 1] = (0.85, 0.62, 0.5)
        sy = int((0.1 * h + 2 * t) % (0.8 * h))
        img[sy : sy + int(0.15 * h), int(0.6 * w) : int(0.6 * w) + int(0.15 * h)] = (0.15, 0.3, 0.75)
    return np.clip(img, 0, 1)


def make_synthetic(path: Path, n: int, w: int, h: int, seed: int = 0,
                   keep: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Write the gray clip to ``path`` (H.264 crf 12); return (with ``keep``) the colour truth frames (h, w, 3)
    uint8 and their clean lightness (h, w)."""
    import av
    import torch

    from colorkit.color import rgb_to_luminance

    rng = np.random.default_rng(seed)
    truth, light = [], []
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt, vs.options = w, h, "yuv420p", {"crf": "12"}
        for t in range(n):
            k = int(t >= n // 2)
            colour = _scene(k, t - k * (n // 2), w, h)
            dy, dx = rng.integers(-1, 2, size=2)  # gate weave
            colour = np.roll(colour, (int(dy), int(dx)), axis=(0, 1))
            rgb = torch.from_numpy(colour).permute(2, 0, 1)[None]
            lum = rgb_to_luminance(rgb)[0, 0].numpy()
            if keep:
                truth.append((colour * 255).round().astype(np.uint8))
                light.append(lum)
            gray = lum * (1 + rng.normal(0, 0.03)) + rng.normal(0, 1.2, lum.shape)  # exposure flicker, grain
            g = _lightness_to_gray(gray)
            frame = av.VideoFrame.from_ndarray(np.repeat(g[..., None], 3, axis=2), "rgb24")
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
    return truth, light


def _lightness_to_gray(L: np.ndarray) -> np.ndarray:
    """Lab lightness (h, w) -> 8-bit sRGB gray with that lightness."""
    y = np.where(L > 8, ((np.clip(L, 0, 100) + 16) / 116) ** 3, np.clip(L, 0, 100) / 903.3)
    srgb = np.where(y > 0.0031308, 1.055 * np.power(y, 1 / 2.4) - 0.055, 12.92 * y)
    return np.clip(srgb * 255 + 0.5, 0, 255).astype(np.uint8)


def make_pan(path: Path, n: int, w: int, h: int, photo: Path) -> None:
    """A ``w`` x ``h`` window moving 3 px per frame across ``photo`` (gray), as H.264 crf 12."""
    import av
    from PIL import Image

    with Image.open(photo) as im:
        src = np.asarray(im.convert("L"))
    if src.shape[1] < w + 3 * n or src.shape[0] < h:
        raise SystemExit(f"{photo} is too small for a {n}-frame pan of {w}x{h}")
    y0 = (src.shape[0] - h) // 2
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt, vs.options = w, h, "yuv420p", {"crf": "12"}
        for t in range(n):
            crop = src[y0 : y0 + h, 3 * t : 3 * t + w]
            out.mux(vs.encode(av.VideoFrame.from_ndarray(np.repeat(crop[..., None], 3, axis=2), "rgb24")))
        out.mux(vs.encode())


def decode_rgb(path: Path):  # noqa: ANN201 - a generator of (h, w, 3) uint8
    import av

    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield f.to_ndarray(format="rgb24")


def _lab(rgb: np.ndarray) -> np.ndarray:
    import torch

    from colorkit.color import rgb_to_lab

    return rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1).double()[None] / 255)[0].numpy()


# ----------------------------------------------------------------------------------------------
# measures


ENCODINGS = {"H.264 crf 18": {}, "lossless 4:4:4": {"crf": 0, "pix_fmt": "yuv444p"}}
"""The output encodings measured: the default, and lossless (the method alone, without the codec's noise)."""


def steady_net(clr, clip: Path, cuts=()):  # noqa: ANN001, ANN201 - a Colorizer in, an nn.Module out
    """A stand-in network that gives every frame its scene's mean colour, as ``clr`` predicts it: the same
    colours held perfectly still. Its flicker is the floor that 8-bit output, grain in the lightness and the
    codec leave, whatever a stabiliser does."""
    import torch
    from PIL import Image
    from torch import nn

    from colorkit.color import lab_to_rgb, rgb_to_luminance
    from colorkit.infer import predict_chroma, prepare_image

    preds = [predict_chroma(clr.model, prepare_image(Image.fromarray(rgb), clr.render_size)[None])[0]
             for rgb in decode_rgb(clip)]
    bounds = [0, *sorted(cuts), len(preds)]
    steady = [m for a, b in zip(bounds, bounds[1:], strict=False)
              for m in [torch.stack(preds[a:b]).mean(0)] * (b - a)]

    class Steady(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.render_size, self.i = clr.render_size, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ab = torch.stack(steady[self.i : self.i + len(x)])
            self.i += len(x)
            return lab_to_rgb(torch.cat([rgb_to_luminance(x), ab], dim=1))

    return Steady()


def quality(clr, clip: Path, out_dir: Path, stability: float, truth=None, light=None, skip=(),
            encoding: str = "H.264 crf 18") -> dict:
    """Colorize ``clip`` at ``stability``; flicker where still and (with ``truth``) mean CIEDE2000."""
    import torch

    from colorkit.metrics import ciede2000
    from colorkit.video import colorize_video
    from colorkit.video_stabilize import chroma_flicker

    dst = out_dir / f"{clip.stem}-s{stability:g}.mkv"
    s = colorize_video(clr, clip, dst, stability=stability, overwrite=True, **ENCODINGS[encoding])
    frames = list(decode_rgb(dst))
    if light is None:  # stillness from the input's own lightness
        light = [_lab(f)[0] for f in decode_rgb(clip)]
    flicker = chroma_flicker((_lab(f) for f in frames), tolerance=1.0, lightness=light, skip=set(skip))
    res = {"flicker": flicker, "cuts": s.scene_cuts, "fps": s.fps}
    if truth is not None:
        def tensor(rgb: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255

        de = [float(ciede2000(tensor(p), tensor(t))) for p, t in zip(frames, truth, strict=True)]
        res["ciede2000"] = float(np.mean(de))
    return res


def speed(clr, clip: Path, root: Path) -> dict:
    """frames/s of ``colorize_video`` and of the image pipeline on the same frames (PNG files)."""
    from PIL import Image

    from colorkit.pipeline import colorize_files
    from colorkit.video import colorize_video

    frames_dir = root / "frames"
    frames_dir.mkdir()
    n = 0
    for n, rgb in enumerate(decode_rgb(clip), 1):
        Image.fromarray(rgb).save(frames_dir / f"frame_{n:05d}.png")
    t0 = time.perf_counter()
    images = colorize_files(clr, [frames_dir], root / "frames-out")
    image_rate = n / (time.perf_counter() - t0)
    if len(images.done) != n:
        raise RuntimeError(f"the image pipeline colorized {len(images.done)} of {n} frames")
    t0 = time.perf_counter()
    colorize_video(clr, clip, root / "speed.mp4")
    video_rate = n / (time.perf_counter() - t0)
    return {"n": n, "image_rate": image_rate, "video_rate": video_rate}


def rss_case(clip: str, model: str, threads: str) -> dict:
    """In a fresh process: colorize ``clip``; frames/s and peak RSS."""
    import torch

    from colorkit import load_colorizer
    from colorkit.video import colorize_video

    torch.set_num_threads(int(threads))
    clr = load_colorizer(model or None)
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-rss-") as out:
        s = colorize_video(clr, clip, Path(out) / "out.mp4")
    return {"frames": s.frames, "fps": s.fps, "peak_rss_mb": peak_rss_mb()}


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, len(os.sched_getaffinity(0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=3, help=argparse.SUPPRESS)  # clip model threads
    ap.add_argument("--model", default="", help="model folder (default: the starter model)")
    ap.add_argument("--frames", type=int, default=96, help="frames of the synthetic and pan clips")
    ap.add_argument("--size", default="320x240", help="WxH of the synthetic and pan clips")
    ap.add_argument("--rss-frames", type=int, default=120, help="N for the RSS check (it also runs 2N)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or all)")
    ap.add_argument("--stability", type=float, default=None, help="the stabilised setting (default: the library's)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    a = ap.parse_args()
    if a.case:
        print(json.dumps(rss_case(*a.case)))
        return
    import torch

    from colorkit import load_colorizer
    from colorkit.video import DEFAULT_STABILITY

    a.stability = DEFAULT_STABILITY if a.stability is None else a.stability
    threads = a.threads or _default_threads()
    torch.set_num_threads(threads)
    w, h = (int(v) for v in a.size.lower().split("x"))
    clr = load_colorizer(a.model or None)
    print(f"model {a.model or 'starter'} (render size {clr.render_size}); {a.frames} frames of {w}x{h}; torch "
          f"threads {threads}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-video-") as tmp:
        root = Path(tmp)
        synth = root / "synthetic.mp4"
        truth, light = make_synthetic(synth, a.frames, w, h)
        clips = [(f"synthetic (cut at frame {a.frames // 2})", synth, truth, light, {a.frames // 2})]
        photo = SHARED / "bw" / PAN_PHOTO
        if photo.is_file():
            make_pan(root / "pan.mp4", a.frames, w, h, photo)
            clips.append((f"pan across {PAN_PHOTO}", root / "pan.mp4", None, None, set()))
        else:
            print(f"(no pan clip: {photo} is absent)")
        stabilities = (0.0, a.stability)
        print(f"{'clip':44s} {'output':15s} {'stability':>9s} {'flicker':>8s} {'CIEDE2000':>9s}  cuts")
        for name, clip, tr, li, skip in clips:
            for enc in ENCODINGS:
                rows = {s: quality(clr, clip, root, s, tr, li, skip, enc) for s in stabilities}
                floor = quality(steady_net(clr, clip, skip), clip, root, 0.0, None, li, skip, enc)["flicker"]
                for s, r in rows.items():
                    de = f"{r['ciede2000']:9.2f}" if "ciede2000" in r else f"{'-':>9s}"
                    print(f"{name:44s} {enc:15s} {s:9.2f} {r['flicker']:8.3f} {de}  {r['cuts']}")
                print(f"{name:44s} {enc:15s} {'steady':>9s} {floor:8.3f}  (each scene's mean colour: the floor)")
                fb, st = rows[0.0]["flicker"], rows[a.stability]["flicker"]
                print(f"{'':60s} stabilised / frame by frame: {st / max(fb, 1e-9):.2f} (goal <= 0.5); above the "
                      f"floor: {(st - floor) / max(fb - floor, 1e-9):.2f}", flush=True)

        if not a.skip_speed:
            sp = speed(clr, synth, root)
            print(f"speed on the {sp['n']} synthetic frames: image pipeline {sp['image_rate']:.2f} frames/s, "
                  f"colorize_video {sp['video_rate']:.2f} frames/s, ratio {sp['video_rate'] / sp['image_rate']:.2f} "
                  "(goal >= 0.9)", flush=True)
        if not a.skip_rss:
            print("peak RSS of colorize_video in a fresh process (640x360):")
            for n in (a.rss_frames, 2 * a.rss_frames):
                clip = root / f"rss_{n}.mp4"
                make_synthetic(clip, n, 640, 360, seed=1, keep=False)
                r = run_case(__file__, str(clip), a.model, str(threads))
                print(f"    {n:5d} frames: {r['peak_rss_mb']:6.0f} MB ({r['fps']:.2f} frames/s)", flush=True)


if __name__ == "__main__":
    main()
