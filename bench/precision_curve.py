"""Does bf16 training track fp32? The same short run twice, only the precision differs.

    python bench/precision_curve.py [--photos 1024] [--size 32] [--bs 32] [--epochs 2] [--loss l1] [--class-weight 0.05]

ResNet34 U-Net from random weights, in-memory photos from ../shared/data/photos/train (a seeded sample),
validation on photos/valid, same seed and batches for both runs. Prints the smoothed training loss every
few batches side by side, the validation figures after the last epoch, and seconds per step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402


def run(precision: str, a: argparse.Namespace) -> tuple[list[float], list[float], float]:
    from colorkit import colorize_dls, colorize_learner
    from colorkit.train import set_seed

    set_seed(a.seed)
    dls = colorize_dls(SHARED / "photos" / "train", valid_folder=SHARED / "photos" / "valid", size=a.size, bs=a.bs,
                       max_items=a.photos, in_memory=True, seed=a.seed)
    set_seed(a.seed)
    learn = colorize_learner(dls, pretrained=False, loss=a.loss, class_weight=a.class_weight, precision=precision)
    t0 = time.perf_counter()
    learn.fit_one_cycle(a.epochs, a.lr)
    steps = a.epochs * len(dls.train)
    sec = (time.perf_counter() - t0) / steps
    return [float(x) for x in learn.recorder.losses], list(learn.recorder.values[-1]), sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=1024)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", default="l1")
    ap.add_argument("--class-weight", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--every", type=int, default=8)
    a = ap.parse_args()
    from colorkit.precision import cpu_bf16_flags

    print(f"CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}; {a.photos} photos, {a.size} px, bs {a.bs}, "
          f"{a.epochs} epochs, loss {a.loss} + class {a.class_weight}")
    res = {p: run(p, a) for p in ("fp32", "bf16")}
    (l32, v32, s32), (l16, v16, s16) = res["fp32"], res["bf16"]
    print(f"{'batch':>6} {'fp32 loss':>10} {'bf16 loss':>10} {'rel diff':>9}")
    for i in range(0, len(l32), a.every):
        print(f"{i:>6} {l32[i]:>10.4f} {l16[i]:>10.4f} {100 * (l16[i] - l32[i]) / l32[i]:>8.1f}%")
    print(f"{len(l32) - 1:>6} {l32[-1]:>10.4f} {l16[-1]:>10.4f} {100 * (l16[-1] - l32[-1]) / l32[-1]:>8.1f}%")
    names = ["train_loss", "valid_loss", "psnr", "ciede2000", "colorfulness_gap"]
    print("final  " + "  ".join(f"{n}: fp32 {x:.4f} / bf16 {y:.4f}" for n, x, y in zip(names, v32, v16, strict=False)))
    print(f"s/step: fp32 {s32:.3f}, bf16 {s16:.3f} ({s32 / s16:.2f}x)")


if __name__ == "__main__":
    main()
