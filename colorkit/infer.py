"""Inference: photo in, colour photo out, at the input's full resolution.

The pipeline (a few small steps, each a function):

1. :func:`render_shape` picks a render size of about ``render_size**2`` pixels with the photo's aspect
   ratio, in multiples of 32. The network never sees more pixels than that, whatever the photo's size.
2. :func:`predict_chroma` resizes the photo down, runs the network, and returns the Lab chroma
   ``(2, h, w)`` of its prediction.
3. :func:`merge_chroma` upsamples the chroma to full size and recombines it with the ORIGINAL
   full-resolution lightness, strip by strip so memory stays a small multiple of the image itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .color import lab_to_rgb_keep_lightness, rgb_to_lab, rgb_to_luminance
from .io import as_pil

__all__ = ["DEFAULT_RENDER_SIZE", "colorize_image", "colorize_images", "merge_chroma", "predict_chroma",
           "render_shape"]

DEFAULT_RENDER_SIZE = 256
_STRIP_PIXELS = 1 << 21  # rows are merged in strips of about 2 MP


def render_shape(w: int, h: int, render_size: int = DEFAULT_RENDER_SIZE, multiple: int = 32) -> tuple[int, int]:
    """(height, width) to render a ``w`` x ``h`` photo at: about ``render_size**2`` pixels, same aspect."""
    if w < 1 or h < 1:
        raise ValueError(f"image size must be positive, got {w}x{h}")
    if render_size < multiple:
        raise ValueError(f"render_size must be at least {multiple}, got {render_size}")
    scale = render_size / math.sqrt(w * h)
    rh = max(multiple, round(h * scale / multiple) * multiple)
    rw = max(multiple, round(w * scale / multiple) * multiple)
    return rh, rw


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _to_tensor(img: Image.Image) -> Tensor:
    """PIL RGB -> (3, H, W) float32 in [0, 1]."""
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255)


def _prepare(img: Image.Image, shape: tuple[int, int]) -> Tensor:
    rh, rw = shape
    small = img.resize((rw, rh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return _to_tensor(small)


@torch.no_grad()
def predict_chroma(model: nn.Module, batch: Tensor) -> Tensor:
    """Network prediction for ``batch`` (B, 3, h, w) in [0, 1] -> Lab chroma ``(B, 2, h, w)``."""
    was_training = model.training
    model.eval()
    try:
        out = model(batch.to(_device_of(model)))
    finally:
        model.train(was_training)
    return rgb_to_lab(out.float().clamp(0, 1).cpu())[:, 1:]


@torch.no_grad()
def merge_chroma(img: Image.Image, ab: Tensor) -> Image.Image:
    """Combine low-resolution chroma ``ab`` (2, h, w) with ``img``'s full-resolution lightness.

    Works in horizontal strips so the peak extra memory is a few copies of one strip, not of the photo.
    """
    w, h = img.size
    full = np.asarray(img, dtype=np.uint8)
    out = np.empty_like(full)
    ab = ab.unsqueeze(0).float()
    strip = max(1, _STRIP_PIXELS // max(w, 1))
    src_h = ab.shape[-2]
    for r0 in range(0, h, strip):
        r1 = min(h, r0 + strip)
        # bilinear upsampling (align_corners=False) of just the source rows this strip needs
        y = (torch.arange(r0, r1, dtype=torch.float32) + 0.5) * src_h / h - 0.5
        y = y.clamp(0, src_h - 1)
        y0 = y.floor().long()
        y1 = (y0 + 1).clamp(max=src_h - 1)
        wy = (y - y0).view(1, 1, -1, 1)
        rows = ab[:, :, y0] * (1 - wy) + ab[:, :, y1] * wy  # (1, 2, r, w_small)
        ab_strip = F.interpolate(rows, size=(r1 - r0, w), mode="bilinear", align_corners=False)  # widthwise
        rgb = torch.from_numpy(np.array(full[r0:r1])).permute(2, 0, 1).float().div_(255).unsqueeze(0)
        L = rgb_to_luminance(rgb)
        merged = lab_to_rgb_keep_lightness(torch.cat([L, ab_strip], dim=1))[0]
        out[r0:r1] = merged.mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(out, "RGB")


def colorize_image(model: nn.Module, img: Any, render_size: int = DEFAULT_RENDER_SIZE) -> Image.Image:
    """Colorize one photo (path, PIL image, numpy array or tensor) -> RGB PIL image of the same size."""
    pil = as_pil(img)
    shape = render_shape(*pil.size, render_size=render_size)
    ab = predict_chroma(model, _prepare(pil, shape).unsqueeze(0))[0]
    return merge_chroma(pil, ab)


def colorize_images(
    model: nn.Module, imgs: Sequence[Any], render_size: int = DEFAULT_RENDER_SIZE, bs: int = 4
) -> list[Image.Image]:
    """Colorize several photos, batching those that share a render shape. Returns images in input order."""
    pils = [as_pil(i) for i in imgs]
    shapes = [render_shape(*p.size, render_size=render_size) for p in pils]
    results: list[Image.Image | None] = [None] * len(pils)
    for shape in dict.fromkeys(shapes):
        idx = [i for i, s in enumerate(shapes) if s == shape]
        for k in range(0, len(idx), bs):
            chunk = idx[k : k + bs]
            abs_ = predict_chroma(model, torch.stack([_prepare(pils[i], shape) for i in chunk]))
            for i, ab in zip(chunk, abs_, strict=True):
                results[i] = merge_chroma(pils[i], ab)
    return [r for r in results if r is not None]
