"""Inference: photo in, colour photo out, at the input's full resolution.

The pipeline (a few small steps, each a function):

1. :func:`render_shape` picks a render size of about ``render_size**2`` pixels with the photo's aspect
   ratio, in multiples of 32. The network never sees more pixels than that, whatever the photo's size.
2. :func:`prepare_image` resizes the photo down to that shape: the network's input ``(3, h, w)``.
3. :func:`predict_chroma` runs the network on a batch of those and returns the Lab chroma
   ``(B, 2, h, w)`` of its prediction, in fp32 or under bf16 autocast (``precision``, see
   :mod:`colorkit.precision`; :func:`inference_format` puts the model in the matching memory format).
4. :func:`merge_chroma` upsamples the chroma to full size and recombines it with the ORIGINAL
   full-resolution lightness, strip by strip so memory stays the output plus a few strips.

Steps 2 and 4 use only numpy and PIL (no torch threads), so a batch job can run them on background
threads while the network works on the next photo (:mod:`colorkit.pipeline` does, for many photos).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ._tensors import device_of, image_to_tensor
from .color import _set_chroma_planes, rgb_to_lab
from .io import as_pil
from .precision import autocast, resolve_precision

__all__ = ["DEFAULT_RENDER_SIZE", "colorize_image", "colorize_images", "inference_format", "merge_chroma",
           "predict_chroma", "predict_rgb", "prepare_image", "render_shape"]

DEFAULT_RENDER_SIZE = 256
_STRIP_PIXELS = 1 << 17  # rows are merged in strips of about 128k pixels (a few MB of work arrays)


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


def _prepare(img: Image.Image, shape: tuple[int, int]) -> Tensor:
    rh, rw = shape
    if img.mode != "RGB":
        img = img.convert("RGB")
    small = img.resize((rw, rh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return image_to_tensor(small)


def prepare_image(img: Image.Image, render_size: int = DEFAULT_RENDER_SIZE) -> Tensor:
    """The network input for photo ``img`` (PIL): resized to :func:`render_shape`, ``(3, h, w)`` in [0, 1].

    Uses only PIL and numpy, so it can run on a background thread while the network runs.
    """
    return _prepare(img, render_shape(*img.size, render_size=render_size))


def _is_channels_last(model: nn.Module) -> bool:
    """Whether ``model``'s first 4-d weight is stored ``channels_last`` (False for a model without one)."""
    w = next((p for p in model.parameters() if p.ndim == 4), None)
    return w is not None and not w.is_contiguous() and w.is_contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def inference_format(model: nn.Module, precision: str = "fp32") -> Iterator[str]:
    """Resolve ``precision`` on ``model``'s device and, for the ``with`` block, store ``model`` in the memory
    format that precision runs fastest in (``channels_last`` for bf16); yields ``"bf16"`` or ``"fp32"``.

    A model already in that format is left alone (free); otherwise it is converted and restored after."""
    prec = resolve_precision(precision, device_of(model))
    want_cl = prec == "bf16"
    was_cl = _is_channels_last(model)
    if want_cl != was_cl:
        model.to(memory_format=torch.channels_last if want_cl else torch.contiguous_format)
    try:
        yield prec
    finally:
        if want_cl != was_cl:
            model.to(memory_format=torch.channels_last if was_cl else torch.contiguous_format)


@torch.no_grad()
def predict_rgb(model: nn.Module, batch: Tensor, precision: str = "fp32") -> Tensor:
    """The generator's output for ``batch`` (B, 3, h, w) in [0, 1] -> RGB ``(B, 3, h, w)`` in [0, 1], float32 on
    the CPU. Runs in eval mode on the model's device; the model's mode is restored after.

    ``precision`` ``"fp32"``, ``"bf16"`` (autocast, ``channels_last`` input; colour conversions stay float32)
    or ``"auto"`` (bf16 where the hardware has it, :func:`colorkit.precision.resolve_precision`). For bf16's
    full speed the model should be ``channels_last`` too (:func:`inference_format`, or a
    :class:`~colorkit.Colorizer` loaded with that precision)."""
    device = device_of(model)
    prec = resolve_precision(precision, device)
    x = batch.to(device)
    if prec == "bf16" and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    try:
        with autocast(prec, device):
            out = model(x)
    finally:
        model.train(was_training)
    return out.float().clamp(0, 1).contiguous().cpu()


def predict_chroma(model: nn.Module, batch: Tensor, precision: str = "fp32") -> Tensor:
    """Network prediction for ``batch`` (B, 3, h, w) in [0, 1] -> Lab chroma ``(B, 2, h, w)`` (see
    :func:`predict_rgb` for ``precision``)."""
    return rgb_to_lab(predict_rgb(model, batch, precision))[:, 1:]


def _interp_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear (align_corners=False, edges clamped, as F.interpolate) source indices i0, i1 and weight of i1."""
    pos = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def merge_chroma(img: Image.Image, ab: Tensor, strength: float = 1.0) -> Image.Image:
    """Combine low-resolution chroma ``ab`` (2, h, w) with ``img``'s full-resolution lightness.

    ``strength`` scales the chroma (colour strength: 0 gray, 1 as predicted, 2 twice as saturated).
    The chroma is upsampled bilinearly; out-of-gamut colours lose chroma rather than lightness
    (:func:`colorkit.color.set_chroma_uint8`). Works in horizontal strips of about ``_STRIP_PIXELS``
    pixels: the extra memory is two copies of the pixels (input planes, output) plus a few strips.
    Numpy only (no torch or BLAS threads): safe and efficient on background threads.
    """
    if ab.ndim != 3 or ab.shape[0] != 2:
        raise ValueError(f"ab must have shape (2, h, w), got {tuple(ab.shape)}")
    if not 0 <= strength <= 4:
        raise ValueError(f"strength must be in [0, 4], got {strength}")
    if img.mode != "RGB":
        img = img.convert("RGB")
    w, h = img.size
    planes = [np.asarray(c) for c in img.split()]  # 3 x (h, w) uint8
    out = np.empty((3, h, w), np.uint8)
    # offsets of f_x and f_z from f_y at low resolution, widened to full width once: (2, h_small, w)
    gain = np.float32(strength) * np.array([1 / 500, -1 / 200], np.float32)[:, None, None]
    small = ab.detach().float().cpu().numpy() * gain
    x0, x1, wx = _interp_weights(w, small.shape[-1])
    wide = small[..., x0] * (1 - wx)
    wide += small[..., x1] * wx
    y0, y1, wy = _interp_weights(h, small.shape[-2])
    strip = max(1, _STRIP_PIXELS // max(w, 1))
    for r0 in range(0, h, strip):
        r1 = min(h, r0 + strip)
        t = wy[r0:r1, None]
        offsets = wide[:, y0[r0:r1]]  # (2, rows, w)
        offsets *= 1 - t
        offsets += wide[:, y1[r0:r1]] * t
        _set_chroma_planes([p[r0:r1] for p in planes], offsets[0], offsets[1], out[:, r0:r1])
    channels = [Image.frombuffer("L", (w, h), out[c], "raw", "L", 0, 1) for c in range(3)]
    return Image.merge("RGB", channels)


def colorize_image(model: nn.Module, img: Any, render_size: int = DEFAULT_RENDER_SIZE,
                   strength: float = 1.0, precision: str = "fp32") -> Image.Image:
    """Colorize one photo (path, PIL image, numpy array or tensor) -> RGB PIL image of the same size.

    ``strength`` scales the predicted chroma (see :func:`merge_chroma`); ``precision`` as :func:`predict_rgb`."""
    pil = as_pil(img)
    ab = predict_chroma(model, prepare_image(pil, render_size).unsqueeze(0), precision)[0]
    return merge_chroma(pil, ab, strength)


def colorize_images(
    model: nn.Module, imgs: Sequence[Any], render_size: int = DEFAULT_RENDER_SIZE, bs: int = 4,
    strength: float = 1.0, precision: str = "fp32",
) -> list[Image.Image]:
    """Colorize several photos, batching those that share a render shape. Returns images in input order."""
    pils = [as_pil(i) for i in imgs]
    shapes = [render_shape(*p.size, render_size=render_size) for p in pils]
    results: list[Image.Image | None] = [None] * len(pils)
    for shape in dict.fromkeys(shapes):
        idx = [i for i, s in enumerate(shapes) if s == shape]
        for k in range(0, len(idx), bs):
            chunk = idx[k : k + bs]
            abs_ = predict_chroma(model, torch.stack([_prepare(pils[i], shape) for i in chunk]), precision)
            for i, ab in zip(chunk, abs_, strict=True):
                results[i] = merge_chroma(pils[i], ab, strength)
    return [r for r in results if r is not None]
