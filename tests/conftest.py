"""Shared fixtures: tiny synthetic photos made in tmp_path, and the location of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_photo(h: int = 24, w: int = 32, seed: int = 0) -> Image.Image:
    """A small colourful RGB image: smooth gradients plus a saturated square, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 1, size=3).astype(np.float32)
    arr = np.stack(
        [
            base[0] * 255 * (xx / max(w - 1, 1)),
            base[1] * 255 * (yy / max(h - 1, 1)),
            255 * (0.3 + 0.5 * base[2]) * np.ones_like(xx),
        ],
        axis=-1,
    )
    arr[h // 4 : h // 2, w // 4 : w // 2] = rng.integers(0, 256, size=3)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of 12 small colour JPEG/PNG photos, two of them in a sub-folder."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(12):
        folder = root / "sub" if i >= 10 else root
        ext = ".png" if i % 3 == 0 else ".jpg"
        make_photo(24 + 4 * (i % 3), 32, seed=i).save(folder / f"img_{i:02d}{ext}")
    return root


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip when it is absent (a clean clone without the shared folder)."""
    if not (SHARED_DATA / "photos" / "valid").is_dir():
        pytest.skip(f"real photos not available: {SHARED_DATA} is absent")
    return SHARED_DATA
