"""In-memory training data: every photo decoded once, kept small as uint8, augmented with crops and flips.

At the small sizes where a colorizer spends most of its training (32-64 px), decoding JPEGs costs more
than the network step. :func:`memory_dls` decodes each photo once (JPEG draft scaling, two threads) to
a shorter side just large enough for the stage's random crops, keeps them as ``uint8`` tensors, and
returns fastai ``DataLoaders`` with the same batches, types and ``colorize_info`` as
:func:`colorkit.colorize_dls`: ``(TensorGrayInput, TensorImage)`` ``(B, 3, size, size)`` in [0, 1].
Augmentation: random resized crop (area ``min_scale``..1, aspect 3/4..4/3) and horizontal flip;
validation: centre square crop. The decoded set of the last size is cached in-process, so rebuilding
loaders for the next epoch or a same-size stage costs nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fastai.data.core import DataLoaders
from fastai.torch_core import TensorImage
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .color import to_gray
from .data import TensorGrayInput, open_photo, select_photos

__all__ = ["MemoryPhotos", "decode_photos", "memory_dls", "store_side"]

_CACHE: dict[tuple[int, tuple[str, ...]], list[Tensor]] = {}


def store_side(size: int, min_scale: float = 0.35) -> int:
    """Shorter side to keep photos at so a random crop of area ``min_scale`` still has ``size`` px (multiple of 8)."""
    return int(math.ceil(size / math.sqrt(min_scale) / 8) * 8)


def _decode(path: Path, side: int) -> Tensor:
    img = open_photo(path, min_side=side)
    w, h = img.size
    scale = side / min(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC,
                         reducing_gap=2.0)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy())


def decode_photos(paths: Sequence[Path], side: int, num_threads: int | None = None) -> list[Tensor]:
    """Decode ``paths`` once to ``uint8`` ``(3, h, w)`` tensors with shorter side ``side`` (never upscaled).

    The result for the last ``(side, paths)`` asked for is cached in-process.
    """
    key = (int(side), tuple(str(p) for p in paths))
    if key not in _CACHE:
        _CACHE.clear()  # one decoded set at a time: the previous size's copy is freed first
        n = num_threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(n) as pool:
            _CACHE[key] = list(pool.map(lambda p: _decode(Path(p), side), paths))
    return _CACHE[key]


def _crop_resize(img: Tensor, top: int, left: int, h: int, w: int, size: int) -> Tensor:
    crop = img[:, top : top + h, left : left + w].float().unsqueeze(0) / 255
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp_(0, 1)


class MemoryPhotos(Dataset):
    """Photos held as ``uint8`` tensors -> ``(TensorGrayInput, TensorImage)`` items ``(3, size, size)``."""

    def __init__(self, photos: Sequence[Tensor], size: int, train: bool = True, min_scale: float = 0.35):
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
        self.photos, self.size, self.train, self.min_scale = list(photos), int(size), train, float(min_scale)

    def __len__(self) -> int:
        return len(self.photos)

    def _random_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        area = h * w
        for _ in range(10):
            target = area * float(torch.empty(()).uniform_(self.min_scale, 1.0))
            ratio = math.exp(float(torch.empty(()).uniform_(math.log(3 / 4), math.log(4 / 3))))
            cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, ()))
                left = int(torch.randint(0, w - cw + 1, ()))
                return top, left, ch, cw
        s = min(h, w)
        return (h - s) // 2, (w - s) // 2, s, s

    def __getitem__(self, i: int) -> tuple[TensorGrayInput, TensorImage]:
        img = self.photos[i]
        _, h, w = img.shape
        if self.train:
            y = _crop_resize(img, *self._random_box(h, w), self.size)
            if bool(torch.rand(()) < 0.5):
                y = y.flip(-1)
        else:
            s = min(h, w)
            y = _crop_resize(img, (h - s) // 2, (w - s) // 2, s, s, self.size)
        return TensorGrayInput(to_gray(y, channels=3)), TensorImage(y)


def memory_dls(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    size: int = 64,
    bs: int = 16,
    valid_pct: float = 0.1,
    valid_folder: str | os.PathLike | None = None,
    seed: int = 42,
    min_chroma: float | None = None,
    augment: bool = True,
    min_scale: float = 0.35,
    device: Any = None,
    max_items: int | None = None,
    **kwargs: Any,
) -> DataLoaders:
    """In-memory ``DataLoaders`` of (gray, colour) batches; the same photo selection as
    :func:`~colorkit.data.colorize_dls`.

    Other keywords go to ``DataLoaders.from_dsets`` (e.g. ``num_workers``).
    """
    if bs < 1:
        raise ValueError(f"bs must be >= 1, got {bs}")
    split = select_photos(source, valid_pct, valid_folder, seed, min_chroma, max_items, stacklevel=3)
    bs = split.batch_size(bs)
    side = store_side(size, min_scale if augment else 1.0)
    photos = decode_photos([*split.train, *split.valid], side)
    n = len(split.train)
    train = MemoryPhotos(photos[:n], size, train=augment, min_scale=min_scale)
    valid = MemoryPhotos(photos[n:], size, train=False)
    kwargs.setdefault("num_workers", 0)
    dls = DataLoaders.from_dsets(train, valid, bs=bs, device=device, **kwargs)
    dls.colorize_info = {**split.info(size), "in_memory": True, "store_side": side}
    return dls
