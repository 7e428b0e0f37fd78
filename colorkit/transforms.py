"""The network input's types and the batch transforms that make it: gray (:class:`ToGray`) and, for training,
old-photo degradations (:class:`OldPhotoDegrade`). Used by :func:`colorkit.data.colorize_block`.

Both transforms act on :class:`TensorGrayInput` only (fastai dispatches on the type), so the colour target
of a batch is never touched. Everything here is module-level, so ``Learner.export`` can pickle it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from fastai.torch_core import TensorImage
from fastai.vision.core import PILImage
from fasttransform import Transform
from torch import Tensor

from .color import to_gray

__all__ = ["OldPhotoDegrade", "PILGrayInput", "TensorGrayInput", "ToGray"]


# ----------------------------------------------------------------------------------------------
# types


class TensorGrayInput(TensorImage):
    """The network input: a gray (or degraded / sepia) photo ``(3, H, W)`` / ``(B, 3, H, W)``.

    A ``TensorImage`` subclass, so fastai's geometric batch augmentations treat it exactly like the
    colour target and ``show_batch`` shows it; :class:`ToGray` and :class:`OldPhotoDegrade` act on
    this type only.
    """


class PILGrayInput(PILImage):
    """PIL form of the network input; ``ToTensor`` turns it into a :class:`TensorGrayInput`."""


PILGrayInput._tensor_cls = TensorGrayInput


# ----------------------------------------------------------------------------------------------
# batch transforms


class ToGray(Transform):
    """Batch transform: :class:`TensorGrayInput` ``(B, 3, H, W)`` -> ``color.to_gray`` of it.

    Runs after the geometric augmentations (order 80), so the input is exactly the gray of the
    augmented target. Both the input and a plain ``TensorImage`` target are first clipped to
    ``[0, 1]`` (bilinear warps can overshoot by a rounding error), so ``x == to_gray(y)`` exactly.
    """

    order = 80

    def encodes(self, x: TensorGrayInput) -> TensorGrayInput:
        return to_gray(x.as_subclass(Tensor).clamp(0, 1)).as_subclass(type(x))

    def encodes(self, x: TensorImage) -> TensorImage:  # noqa: F811 - fastai dispatches on the type
        return x.clamp(0, 1)


_SEPIA = torch.tensor([1.351, 1.203, 0.937]) / 1.19  # classic sepia matrix on gray, luminance ~ kept


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Blur each image of ``x`` ``(B, C, H, W)`` with its own gaussian ``sigma`` ``(B,)`` (pixels)."""
    b, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    radius = min(radius, (min(h, w) - 1) // 2) if min(h, w) > 2 else 0
    if radius == 0:
        return x
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp(min=1e-2).view(b, 1)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * s**2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w)


class OldPhotoDegrade(Transform):
    """Make gray inputs look like old photos, on the training split only (order 85, after ToGray).

    Each image of the batch is degraded with probability ``p``; a degraded image gets each effect
    with probability ``p_each``, at a random strength of its own: gaussian blur (sigma up to
    ``blur`` px at 64 px, scaled with the image), downscale-upscale (factor up to ``downscale``,
    blocky or smooth), fading (contrast loss up to ``fade``), a sepia tint (probability ``sepia``)
    that stays sepia with probability ``keep_sepia`` and otherwise goes back to gray, and grain
    (gaussian noise, std up to ``noise``, the same on the three channels). Only
    :class:`TensorGrayInput` is touched, so the colour target stays as it is. Vectorised over the
    batch, on the batch's device; ``(B, 3, H, W)`` in ``[0, 1]`` in and out.
    """

    split_idx, order = 0, 85

    def __init__(
        self,
        p: float = 0.5,
        noise: float = 0.08,
        blur: float = 1.2,
        downscale: float = 3.0,
        fade: float = 0.5,
        sepia: float = 0.3,
        keep_sepia: float = 0.5,
        p_each: float = 0.5,
    ) -> None:
        super().__init__()
        for name, v in dict(p=p, sepia=sepia, keep_sepia=keep_sepia, p_each=p_each, fade=fade).items():
            if not 0 <= v <= 1:
                raise ValueError(f"OldPhotoDegrade: {name} must be in [0, 1], got {v}")
        if noise < 0 or blur < 0 or downscale < 1:
            raise ValueError(
                "OldPhotoDegrade: need noise >= 0, blur >= 0 and downscale >= 1, "
                f"got noise={noise}, blur={blur}, downscale={downscale}"
            )
        self.p, self.noise, self.blur, self.downscale = p, noise, blur, downscale
        self.fade, self.sepia, self.keep_sepia, self.p_each = fade, sepia, keep_sepia, p_each

    def encodes(self, x: TensorGrayInput) -> TensorGrayInput:
        t = x.as_subclass(Tensor)
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"OldPhotoDegrade expects a batch (B, 3, H, W), got {tuple(t.shape)}")
        b, _, h, w = t.shape
        dev, dt = t.device, t.dtype
        on = torch.rand(b, device=dev) < self.p
        if not bool(on.any()):
            return x

        def chosen(prob: float) -> Tensor:  # (B,) bool: degraded images that get this effect
            return on & (torch.rand(b, device=dev) < prob)

        def col(v: Tensor) -> Tensor:
            return v.to(dt).view(b, 1, 1, 1)

        out = t
        if self.blur > 0:
            sigma = torch.rand(b, device=dev) * self.blur * (min(h, w) / 64) * chosen(self.p_each)
            if bool((sigma > 0.05).any()):
                out = _gaussian_blur(out, sigma)
        if self.downscale > 1:
            m = chosen(self.p_each)
            if bool(m.any()):
                f = 1 + torch.rand(()).item() * (self.downscale - 1)
                small = (max(1, round(h / f)), max(1, round(w / f)))
                down = F.interpolate(out, size=small, mode="area")
                if torch.rand(()).item() < 0.5:  # blocky
                    up = F.interpolate(down, size=(h, w), mode="nearest")
                else:
                    up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False)
                out = torch.where(col(m) > 0, up, out)
        if self.fade > 0:
            c = torch.rand(b, device=dev) * self.fade * chosen(self.p_each)
            lo = c * torch.rand(b, device=dev) * 0.6
            hi = 1 - c * torch.rand(b, device=dev) * 0.4
            out = col(lo) + (col(hi) - col(lo)) * out
        if self.sepia > 0:
            m = chosen(self.sepia)
            if bool(m.any()):
                s = col((0.5 + 0.5 * torch.rand(b, device=dev)) * m)
                tinted = (out * _SEPIA.to(device=dev, dtype=dt).view(1, 3, 1, 1)).clamp(0, 1)
                sep = (1 - s) * out + s * tinted
                back = col(torch.rand(b, device=dev) >= self.keep_sepia)
                out = torch.where(back > 0, to_gray(sep.clamp(0, 1)), sep)
        if self.noise > 0:
            sd = torch.rand(b, device=dev) * self.noise * chosen(self.p_each)
            out = out + col(sd) * torch.randn(b, 1, h, w, device=dev, dtype=dt)
        return out.clamp(0, 1).as_subclass(type(x))
