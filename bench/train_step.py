"""Seconds per training step and peak RSS: colorkit's learner vs a plain fastai unet_learner, same body and loss.

    python bench/train_step.py [--sizes 64 128 220] [--bs 8] [--steps 3] [--precision fp32 bf16]

Each (variant, size) runs in its own process so its peak RSS is its own. Both variants use a ResNet34
DynamicUnet (self-attention, blur, spectral norm), random weights, and the VGG16-bn feature loss
(random VGG: speed does not depend on the weights). colorkit's extra work is the model wrapper (gray
conversion, ImageNet normalisation, and in lab mode the Lab -> RGB conversion). ``--precision bf16`` runs
the same step under bf16 autocast with channels_last (as ``colorize_learner(precision="bf16")`` does);
the CPU's bf16 flags are printed, since bf16 is only fast where the hardware has it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, peak_rss_mb, run_case  # noqa: E402


def case(variant: str, size: int, bs: int, steps: int, precision: str = "fp32") -> dict:
    import torch
    from fastai.layers import NormType
    from fastai.vision.learner import unet_learner
    from torchvision.models import resnet34

    from colorkit import colorize_dls, colorize_learner, vgg16_feature_loss

    torch.manual_seed(0)
    dls = colorize_dls(SHARED / "photos" / "valid", size=size, bs=bs, augment=False)
    x, y = dls.one_batch()
    if variant.startswith("colorkit"):
        mode = variant.split("-")[1]
        learn = colorize_learner(dls, pretrained=False, mode=mode, loss_func=vgg16_feature_loss(pretrained=False))
        model = learn.model
    else:  # plain fastai: the same U-Net called directly on ImageNet-normalised input
        loss = vgg16_feature_loss(pretrained=False)
        learn = unet_learner(dls, resnet34, pretrained=False, normalize=False, n_out=3, loss_func=loss,
                             self_attention=True, blur=True, norm_type=NormType.Spectral, y_range=(-0.05, 1.05))
        model = learn.model
        from colorkit.color import imagenet_normalize

        x = imagenet_normalize(x)  # done once, outside the timed step: that is plain fastai's data pipeline
    x, y = x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)
    bf16 = precision == "bf16"
    if bf16:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model(x)
        loss = learn.loss_func(pred.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    return {"variant": variant, "precision": precision, "size": size, "bs": bs, "s_per_step": med,
            "img_per_s": bs / med, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=5, metavar=("VARIANT", "SIZE", "BS", "STEPS", "PRECISION"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 220])
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--variants", nargs="+", choices=["fastai", "colorkit-rgb", "colorkit-lab"],
                    default=["fastai", "colorkit-rgb", "colorkit-lab"])
    ap.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"])
    a = ap.parse_args()
    if a.case:
        v, s, b, n, p = a.case
        print(json.dumps(case(v, int(s), int(b), int(n), p)))
        return
    if not (SHARED / "photos" / "valid").is_dir():
        sys.exit(f"needs the real photos at {SHARED}")
    import torch

    from colorkit.precision import cpu_bf16_flags

    print(f"train step, bs {a.bs}, median of {a.steps} steps, torch threads {torch.get_num_threads()}, "
          f"CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'}")
    print(f"{'size':>5} {'variant':>13} {'prec':>5} {'s/step':>8} {'img/s':>7} {'peak RSS MB':>12} {'vs first':>9}")
    for size in a.sizes:
        base = None
        for v in a.variants:
            for p in a.precision:
                r = run_case(__file__, v, str(size), str(a.bs), str(a.steps), p)
                base = base or r["s_per_step"]
                over = f"{100 * (r['s_per_step'] / base - 1):+.1f}%"
                row = (f"{size:>5} {v:>13} {p:>5} {r['s_per_step']:>8.3f} {r['img_per_s']:>7.2f} "
                       f"{r['peak_rss_mb']:>12.0f}")
                print(f"{row} {over:>9}", flush=True)


if __name__ == "__main__":
    main()
