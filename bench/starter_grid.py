"""The starter model's picture for its card: 12 photos of photos/valid (input / colorkit / truth) and 8 historic
photos of bw/ (input / colorkit), as two pictures (JPEG by default).

    python bench/starter_grid.py [--model colorkit/weights/starter] [--out docs/img] [--height 200] [--ext jpg]

The photos are chosen evenly spaced in sorted order (not picked by result). Uses the model as shipped
(its render size and temperature) through ``Colorizer.colorize``, the same call as ``colorkit colorize``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402


def _spread(files: list[Path], n: int) -> list[Path]:
    step = max(1, len(files) // n)
    return files[::step][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--height", type=int, default=200)
    ap.add_argument("--name", default="starter")
    ap.add_argument("--ext", default="jpg", help="file type of the two pictures (jpg keeps the docs small)")
    a = ap.parse_args()

    from colorkit import find_images, load_colorizer
    from colorkit.evaluate import gray_input
    from colorkit.io import load_image, save_image
    from colorkit.report import image_grid

    clr = load_colorizer(a.model)
    a.out.mkdir(parents=True, exist_ok=True)
    valid = _spread(find_images(SHARED / "photos" / "valid"), 12)
    rows = []
    for f in valid:
        truth = load_image(f)
        gray = gray_input(truth)
        rows.append([gray, clr.colorize(gray), truth])
    # two photos per grid row keep the picture readable: 6 rows x (input, colorkit, truth) x 2
    pairs = [rows[i] + rows[i + 1] for i in range(0, len(rows), 2)]
    g = image_grid(pairs, ["input", "colorkit", "truth"] * 2, height=a.height)
    print(save_image(g, a.out / f"{a.name}_valid.{a.ext}"))
    bw = _spread(find_images(SHARED / "bw"), 8)
    rows = [[load_image(f).convert("RGB"), clr.colorize(f)] for f in bw]
    pairs = [rows[i] + rows[i + 1] for i in range(0, len(rows), 2)]
    g = image_grid(pairs, ["historic photo", "colorkit"] * 2, height=a.height)
    print(save_image(g, a.out / f"{a.name}_bw.{a.ext}"))


if __name__ == "__main__":
    main()
