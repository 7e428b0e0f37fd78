"""``colorkit demo``: colorize the bundled sample photos (:mod:`colorkit.samples`) and write a before/after grid."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

HELP = "colorize the bundled sample photos"
DESCRIPTION = """\
Turn the bundled sample photos gray, colorize them with the starter model (or --model) and
write the results and a before/after grid PNG (gray | colorized | original) to OUT. Runs
offline on a CPU in seconds.
"""
EPILOG = """\
Example:
  colorkit demo
  colorkit demo -o /tmp/demo --model my_model/
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "demo", HELP, DESCRIPTION, EPILOG)
    p.add_argument("-o", "--output", default="colorkit-demo", metavar="OUT", help="output folder")
    p.add_argument("--model", default=None, metavar="M", help="model folder (default: the starter model)")
    common.add_threads(p)
    return p


def run(args: argparse.Namespace) -> int:
    out, path = Path(args.output), common.model_path(args.model)
    t0 = time.monotonic()
    with common.torch_threads(args.threads):
        clr = common.load_model(path, "cpu")
        from ..evaluate import gray_input
        from ..io import save_image
        from ..report import image_grid
        from ..samples import load_samples

        samples = load_samples()
        if not samples:
            raise CLIError("no demo samples are available", EXIT_FAILED)
        rows, written = [], []
        for s in samples:
            gray = gray_input(s.image)
            colorized = clr.colorize(gray)
            written.append(save_image(gray, out / f"{s.name}_gray.png"))
            written.append(save_image(colorized, out / f"{s.name}_colorized.png"))
            rows.append([gray, colorized, s.image])
        grid = save_image(image_grid(rows, ["black & white input", "colorkit", "original colour"]),
                          out / "demo_grid.png")
    print(f"colorkit: colorized {len(samples)} sample photo(s) with {path} in {time.monotonic() - t0:.1f} s")
    for p in written:
        print(f"  {p}")
    print(f"colorkit: before/after grid: {grid}")
    return EXIT_OK
