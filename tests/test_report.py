"""Reports and grids (the evaluation reports themselves are exercised end to end in test_evaluate.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from colorkit.report import image_grid, json_safe


def test_image_grid_scales_rows_to_one_height_and_keeps_aspect():
    small = Image.new("RGB", (32, 32), (255, 0, 0))
    wide = Image.new("RGB", (200, 100), (0, 0, 255))
    grid = image_grid([[small, wide], [small, small]], ["left", "right"], height=64, labels=["one", "two"])
    pad, head = 8, 28
    assert grid.size == (pad + 64 + pad + 128 + pad, head + 2 * (64 + pad) + pad)
    arr = np.asarray(grid)
    assert tuple(arr[head + 30, pad + 60]) == (255, 0, 0)  # enlarged cell, nearest neighbour: pure colour
    assert tuple(arr[head + 30, pad + 64 + pad + 100]) == (0, 0, 255)
    with pytest.raises(ValueError, match="one per title"):
        image_grid([[small]], ["a", "b"])


def test_json_safe():
    assert json_safe({"a": (1.0, math.inf, -math.inf, math.nan), 2: np.float32(0.5)}) == {
        "a": [1.0, "inf", "-inf", None], "2": 0.5}
