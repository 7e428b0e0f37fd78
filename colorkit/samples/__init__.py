"""Sample photos for ``colorkit demo`` and the tutorials, listed in ``samples.json``; no photo file is shipped.

``"matplotlib"`` samples come from matplotlib's own sample data (a runtime dependency), ``"synthetic"`` ones
are drawn here (:func:`synthetic_scene`), ``"file"`` ones would be read from this folder. Importing this
module is cheap: PIL and numpy load when a sample is made.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["SAMPLES_DIR", "SamplePhoto", "load_samples", "synthetic_scene"]

SAMPLES_DIR: Path = Path(__file__).resolve().parent
"""This folder: ``samples.json`` and any sample files."""

_BUILT_IN = [
    {"name": "grace_hopper", "source": "matplotlib", "file": "grace_hopper.jpg", "credit": ""},
    {"name": "synthetic_scene", "source": "synthetic", "seed": 0, "credit": ""},
]


class SamplePhoto(NamedTuple):
    """A sample colour photo: ``name``, the RGB PIL ``image`` and its ``credit``."""

    name: str
    image: Any
    credit: str


def synthetic_scene(w: int = 320, h: int = 240, seed: int = 0) -> Any:
    """A colourful made-up scene (sky, sun, hills, house) as an RGB PIL image ``w`` x ``h``, the same for a seed."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = (1 - yy) * np.array([70, 130, 220], np.float32) + yy * np.array([190, 220, 250], np.float32)
    arr = np.broadcast_to(sky, (h, w, 3)).copy()
    arr += rng.normal(0, 3, arr.shape).astype(np.float32)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.72, h * 0.08, w * 0.86, h * 0.27), fill=(250, 200, 40))
    d.polygon([(0, h * 0.62), (w * 0.3, h * 0.45), (w * 0.62, h * 0.6), (w, h * 0.5), (w, h), (0, h)],
              fill=(60, 150, 60))
    d.rectangle((w * 0.0, h * 0.82, w, h), fill=(40, 110, 40))
    d.rectangle((w * 0.2, h * 0.55, w * 0.4, h * 0.78), fill=(200, 60, 50))
    d.polygon([(w * 0.18, h * 0.56), (w * 0.3, h * 0.42), (w * 0.42, h * 0.56)], fill=(110, 60, 40))
    d.rectangle((w * 0.27, h * 0.66, w * 0.33, h * 0.78), fill=(90, 50, 30))
    return img


def load_samples(folder: str | Path = SAMPLES_DIR) -> list[SamplePhoto]:
    """The samples listed in ``folder/samples.json`` (or the built-in list), as :class:`SamplePhoto` s.

    A matplotlib sample that is unavailable is left out with a warning; the others still load.
    """
    from ..io import load_image

    folder = Path(folder)
    manifest = folder / "samples.json"
    entries = json.loads(manifest.read_text())["samples"] if manifest.is_file() else _BUILT_IN
    out = []
    for e in entries:
        credit = e.get("credit", "")
        if e.get("source") == "matplotlib":
            try:
                from matplotlib import cbook

                path = cbook.get_sample_data(e["file"], asfileobj=False)
                out.append(SamplePhoto(e["name"], load_image(path), credit))
            except Exception as err:  # matplotlib without its sample data: the others still load
                warnings.warn(f"sample {e['file']} is unavailable ({err}); skipped", stacklevel=2)
        elif e.get("source") == "synthetic":
            out.append(SamplePhoto(e["name"], synthetic_scene(seed=int(e.get("seed", 0))), credit))
        elif e.get("source") == "file":
            out.append(SamplePhoto(e["name"], load_image(folder / e["file"]), credit))
    return out
