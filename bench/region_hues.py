"""Which colour where: `colorkit.regions.region_hues` of models on photos/valid (the starter card's region table).

    python bench/region_hues.py MODEL [MODEL ...] [--gains 1 1.3] [--size 256] [--valid DIR]

Each photo is cropped and made gray as `colorkit evaluate` does (``evaluation_crop``, ``gray_input``), colorized
at the model's render size (and each ``--gains`` chroma gain; default: the model's own), and scored against its
crop. Prints, per region of ``colorkit.regions.REGIONS`` in the truth (vegetation, sky, skin tones), the share
of its true-colour pixels whose predicted hue is within 45 degrees of the truth's (with chroma >= 5), and the
mean predicted chroma there against the truth's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--valid", type=Path, default=SHARED / "photos" / "valid")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--gains", type=float, nargs="+", default=None, help="chroma gains (default: the model's)")
    a = ap.parse_args()

    import torch

    from colorkit import load_colorizer
    from colorkit._tensors import image_to_tensor
    from colorkit.evaluate import evaluation_crop, gray_input
    from colorkit.io import find_images, load_image
    from colorkit.regions import REGIONS, region_hues

    files = find_images(a.valid)
    crops = [evaluation_crop(load_image(f), a.size) for f in files]
    truth = torch.stack([image_to_tensor(c) for c in crops])
    grays = [gray_input(c) for c in crops]
    print(f"{len(files)} photos of {a.valid} at {a.size} px; per region: hue right / predicted chroma / true chroma")
    print(f"{'model':<40} {'gain':>5} " + " ".join(f"{r:>22}" for r in REGIONS))
    for m in a.models:
        clr = load_colorizer(m, precision="auto")
        for gain in a.gains or [clr.model.chroma_gain]:
            clr.model.chroma_gain = float(gain)
            pred = torch.stack([image_to_tensor(clr.colorize(g)) for g in grays])
            h = region_hues(pred, truth)
            cells = [f"{h[f'{r}_hit']:.2f} / {h[f'{r}_chroma']:.1f} / {h[f'{r}_true_chroma']:.1f}"
                     if f"{r}_hit" in h else "-" for r in REGIONS]
            print(f"{str(m):<40} {gain:>5.2f} " + " ".join(f"{c:>22}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
