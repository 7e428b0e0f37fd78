"""How long ``POST /api/colorize`` takes for photos of a few sizes (starter model, local HTTP, best of 3).

Run: ``OMP_NUM_THREADS=1 python bench/serve_speed.py``. Prints one line per size and output format.
"""

from __future__ import annotations

import io
import os
import time

import httpx
import torch
from matplotlib import cbook
from PIL import Image

from colorkit import load_colorizer
from colorkit.serve import ServerThread, create_app


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        src = im.convert("L")
    with ServerThread(create_app(load_colorizer())) as url:
        for w, h in [(640, 480), (2000, 1500), (4000, 3000)]:
            buf = io.BytesIO()
            src.resize((w, h)).save(buf, "JPEG", quality=90)
            for fmt in ("jpeg", "png"):
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    r = httpx.post(f"{url}api/colorize", files={"file": ("a.jpg", buf.getvalue())},
                                   data={"format": fmt}, timeout=300)
                    r.raise_for_status()
                    times.append(time.perf_counter() - t)
                print(f"{w}x{h} -> {fmt}: best {min(times):.2f} s, on the model {r.headers['x-colorkit-seconds']} s, "
                      f"{len(r.content) / 1e6:.1f} MB out")


if __name__ == "__main__":
    main()
