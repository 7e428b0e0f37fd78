"""Does bf16 inference agree with fp32? The same model colorizes the same photos in both precisions.

    python bench/infer_precision.py [--model DIR] [--photos ../shared/data/photos/valid] [--render-size N]

For every colour photo in the folder (default: the 100 photos of photos/valid) its gray version (same Lab
lightness, 8-bit) is colorized at full size by ``load_colorizer(model, precision=...).colorize`` in fp32 and in
bf16 (autocast + channels_last). Prints the mean CIEDE2000 between the two outputs (the goal: < 0.5, well below
a just-noticeable difference of about 1-2), its largest per-photo value, the share of 8-bit values that differ,
both outputs' mean CIEDE2000 to the true colours (bf16 must not be worse), and the network's CPU seconds per
photo in each precision (getrusage: robust to other jobs on the machine).
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the starter model)")
    ap.add_argument("--photos", default=str(SHARED / "photos" / "valid"))
    ap.add_argument("--render-size", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos")
    a = ap.parse_args()
    import numpy as np
    import torch
    from PIL import Image

    import colorkit.infer as infer
    from colorkit import load_colorizer
    from colorkit._tensors import image_to_tensor
    from colorkit.color import to_gray
    from colorkit.io import find_images, load_image
    from colorkit.metrics import ciede2000

    files = find_images([a.photos], recursive=True)[: a.limit]
    if not files:
        sys.exit(f"no photos in {a.photos}")
    clrs = {p: load_colorizer(a.model, precision=p) for p in ("fp32", "bf16")}
    print(f"{len(files)} photos from {a.photos}; model {a.model or 'starter'}; torch threads "
          f"{torch.get_num_threads()}", flush=True)
    cpu = {p: 0.0 for p in clrs}
    real_predict = infer.predict_rgb

    def timed(precision: str):
        def predict(*args, **kwargs):
            c0 = _cpu()
            try:
                return real_predict(*args, **kwargs)
            finally:
                cpu[precision] += _cpu() - c0
        return predict

    between, to_truth, changed = [], {p: [] for p in clrs}, []
    for f in files:
        truth = image_to_tensor(load_image(f)).unsqueeze(0)
        gray = Image.fromarray((to_gray(truth)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        outs = {}
        for p, clr in clrs.items():
            infer.predict_rgb = timed(p)
            try:
                outs[p] = image_to_tensor(clr.colorize(gray, render_size=a.render_size)).unsqueeze(0)
            finally:
                infer.predict_rgb = real_predict
            to_truth[p].append(float(ciede2000(outs[p], truth)))
        between.append(float(ciede2000(outs["bf16"], outs["fp32"])))
        changed.append(float((outs["bf16"] * 255).round().ne((outs["fp32"] * 255).round()).float().mean()))
    n = len(files)
    print(f"CIEDE2000 bf16 vs fp32: mean {np.mean(between):.3f}, largest photo {np.max(between):.3f} "
          f"(goal: mean < 0.5); 8-bit values that differ: {100 * np.mean(changed):.1f} %")
    print(f"CIEDE2000 to the true colours: fp32 {np.mean(to_truth['fp32']):.3f}, bf16 {np.mean(to_truth['bf16']):.3f}")
    print(f"network CPU seconds per photo: fp32 {cpu['fp32'] / n:.3f}, bf16 {cpu['bf16'] / n:.3f} "
          f"({cpu['fp32'] / max(cpu['bf16'], 1e-9):.2f}x)")


if __name__ == "__main__":
    main()
