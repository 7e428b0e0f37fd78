"""colorize() on a 512 px and a 4000x3000 (12 MP) photo: seconds and peak RSS, vs the raw network forward pass
at the same render size.

    python bench/infer.py [--model DIR] [--render-size 256] [--repeat 3]

Inputs are made at run time from a photo in ../shared/data/bw (resized; nothing is written to the repo).
Each case runs in its own process so its peak RSS is its own. Without --model a random-weight ResNet34
generator is used (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, peak_rss_mb, run_case  # noqa: E402


def _model(model_dir: str | None):
    import torch

    from colorkit import create_generator, load_colorizer

    if model_dir:
        return load_colorizer(model_dir).model
    torch.manual_seed(0)
    return create_generator("resnet34", mode="lab", img_size=64).eval()


def case(kind: str, width: int, height: int, render_size: int, repeat: int, model_dir: str | None) -> dict:
    import torch
    from PIL import Image

    from colorkit.infer import _prepare, colorize_image, render_shape

    model = _model(model_dir)
    src = sorted((SHARED / "bw").glob("*.jpg"))[0]
    img = Image.open(src).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    shape = render_shape(width, height, render_size)
    x = _prepare(img, shape).unsqueeze(0)
    times = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        if kind == "colorize":
            out = colorize_image(model, img, render_size=render_size)
            assert out.size == img.size
        else:
            with torch.no_grad():
                model(x)
        times.append(time.perf_counter() - t0)
    t = sorted(times[1:])[len(times[1:]) // 2]
    return {"kind": kind, "size": f"{width}x{height}", "render": f"{shape[1]}x{shape[0]}", "seconds": t,
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=6)
    ap.add_argument("--model", default=None)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    if a.case:
        k, w, h, rs, n, m = a.case
        print(json.dumps(case(k, int(w), int(h), int(rs), int(n), None if m == "-" else m)))
        return
    if not (SHARED / "bw").is_dir():
        sys.exit(f"needs the photos at {SHARED}")
    print(f"render size {a.render_size}, median of {a.repeat} runs, model {a.model or 'random resnet34 (lab)'}")
    print(f"{'input':>10} {'render':>8} {'forward s':>10} {'colorize s':>11} {'overhead':>9} "
          f"{'RSS fwd MB':>11} {'RSS colorize MB':>16}")
    for w, h in [(512, 384), (4000, 3000)]:
        args = [str(w), str(h), str(a.render_size), str(a.repeat), a.model or "-"]
        f = run_case(__file__, "forward", *args)
        c = run_case(__file__, "colorize", *args)
        print(f"{c['size']:>10} {c['render']:>8} {f['seconds']:>10.3f} {c['seconds']:>11.3f} "
              f"{100 * (c['seconds'] / f['seconds'] - 1):>+8.1f}% {f['peak_rss_mb']:>11.0f} {c['peak_rss_mb']:>16.0f}",
              flush=True)


if __name__ == "__main__":
    main()
