"""Colour science: sRGB <-> CIE Lab (D65), gray conversion and network-range helpers.

All functions are pure, differentiable and work on tensors shaped ``(*, 3, H, W)`` (any number of
leading batch dimensions), float32 or float64, on any device. RGB is sRGB in ``[0, 1]``; Lab has
``L`` in ``[0, 100]`` and ``a``, ``b`` roughly in ``[-128, 127]``. Constants follow scikit-image
(D65 white, 2-degree observer) so results agree with ``skimage.color.rgb2lab``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "lab_to_rgb_keep_lightness",
    "rgb_to_luminance",
    "to_gray",
    "merge_luminance",
    "normalize_lab",
    "denormalize_lab",
    "imagenet_normalize",
    "imagenet_denormalize",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AB_SCALE",
]

# sRGB (linear) -> XYZ, as in scikit-image.
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS = (6 / 29) ** 3  # 0.008856
_KAPPA = 1 / (3 * (6 / 29) ** 2)  # 7.787
_DELTA = 6 / 29

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AB_SCALE = 110.0  # a/b divided by this lands in about [-1, 1]


def _check(x: Tensor, name: str = "input") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name} must have shape (*, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {x.dtype}")


def _mix(x: Tensor, m: Tensor) -> Tensor:
    """Apply a 3x3 matrix to the channel dimension of ``x`` (*, 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", m.to(dtype=x.dtype, device=x.device), x)


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c > 0.04045, ((c.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: Tensor) -> Tensor:
    return torch.where(c > 0.0031308, 1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, c * 12.92)


def _f(t: Tensor) -> Tensor:
    return torch.where(t > _EPS, t.clamp(min=_EPS) ** (1 / 3), _KAPPA * t + 4 / 29)


def _f_inv(f: Tensor) -> Tensor:
    return torch.where(f > _DELTA, f.clamp(min=_DELTA) ** 3, (f - 4 / 29) / _KAPPA)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> CIE Lab ``(*, 3, H, W)`` (L in [0, 100])."""
    _check(rgb, "rgb")
    xyz = _mix(_srgb_to_linear(rgb), _XYZ_FROM_RGB)
    xyz = xyz / _WHITE_D65.to(dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    fx, fy, fz = _f(xyz).unbind(-3)
    L = 116 * fy - 16
    a = 500 * (fx - fy)
    b = 200 * (fy - fz)
    return torch.stack([L, a, b], dim=-3)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """CIE Lab ``(*, 3, H, W)`` -> sRGB ``(*, 3, H, W)``; out-of-gamut colours are clipped to [0, 1]."""
    _check(lab, "lab")
    L, a, b = lab.unbind(-3)
    fy = (L + 16) / 116
    fx = fy + a / 500
    fz = (fy - b / 200).clamp(min=0)  # as scikit-image: negative Z is clipped
    xyz = _f_inv(torch.stack([fx, fy, fz], dim=-3))
    xyz = xyz * _WHITE_D65.to(dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    rgb = _linear_to_srgb(_mix(xyz, _RGB_FROM_XYZ))
    return rgb.clamp(0, 1) if clip else rgb


@torch.no_grad()
def lab_to_rgb_keep_lightness(lab: Tensor, steps: int = 10, tol: float = 1e-4) -> Tensor:
    """Lab ``(*, 3, H, W)`` -> sRGB in [0, 1], bringing out-of-gamut colours into gamut by reducing their
    chroma (same L and hue) rather than clipping RGB, which would change the lightness.

    Out-of-gamut pixels get the largest chroma scale in [0, 1] that fits, found by ``steps`` bisections.
    Not differentiable (inference only).
    """
    _check(lab, "lab")
    rgb = lab_to_rgb(lab, clip=False)
    bad = ((rgb < -tol) | (rgb > 1 + tol)).any(dim=-3)  # (*, H, W)
    if not bool(bad.any()):
        return rgb.clamp(0, 1)
    px = lab.movedim(-3, -1)[bad]  # (N, 3)
    lo = torch.zeros(px.shape[0], dtype=lab.dtype, device=lab.device)
    hi = torch.ones_like(lo)

    def convert(scale: Tensor) -> Tensor:  # (N,) -> (N, 3) rgb, unclipped
        t = torch.cat([px[:, :1], px[:, 1:] * scale[:, None]], dim=1)
        return lab_to_rgb(t.T.reshape(3, -1, 1), clip=False).reshape(3, -1).T

    for _ in range(steps):
        mid = (lo + hi) / 2
        c = convert(mid)
        inside = ((c >= -tol) & (c <= 1 + tol)).all(dim=1)
        lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
    out = rgb.movedim(-3, -1).clone()
    out[bad] = convert(lo)
    return out.movedim(-1, -3).clamp(0, 1)


def rgb_to_luminance(rgb: Tensor) -> Tensor:
    """The Lab lightness ``L`` (in [0, 100]) of sRGB ``(*, 3, H, W)`` -> ``(*, 1, H, W)``."""
    _check(rgb, "rgb")
    y = _mix(_srgb_to_linear(rgb), _XYZ_FROM_RGB)[..., 1:2, :, :]
    return 116 * _f(y) - 16


def to_gray(rgb: Tensor, channels: int = 3) -> Tensor:
    """Gray version of sRGB ``(*, 3, H, W)``: the sRGB gray with the same Lab ``L``.

    Returns ``(*, channels, H, W)`` in [0, 1] (``channels`` is 1 or 3; 3 repeats the gray value, the
    form a network pretrained on colour images expects). Gray inputs come back unchanged.
    """
    _check(rgb, "rgb")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    y = _mix(_srgb_to_linear(rgb), _XYZ_FROM_RGB)[..., 1:2, :, :]  # relative luminance Y
    gray = _linear_to_srgb(y).clamp(0, 1)
    return gray.expand(*gray.shape[:-3], channels, *gray.shape[-2:]).contiguous() if channels == 3 else gray


def merge_luminance(L: Tensor, rgb: Tensor) -> Tensor:
    """Keep the chroma (a, b) of ``rgb`` ``(*, 3, H, W)`` and replace its lightness with ``L`` ``(*, 1, H, W)``."""
    _check(rgb, "rgb")
    if not isinstance(L, Tensor):
        raise TypeError(f"L must be a torch.Tensor, got {type(L).__name__}")
    if L.ndim != rgb.ndim or L.shape[-3] != 1 or L.shape[-2:] != rgb.shape[-2:]:
        raise ValueError(f"L must have shape (*, 1, H, W) matching rgb {tuple(rgb.shape)}, got {tuple(L.shape)}")
    ab = rgb_to_lab(rgb)[..., 1:, :, :]
    return lab_to_rgb(torch.cat([L.to(ab.dtype), ab], dim=-3))


def normalize_lab(lab: Tensor) -> Tensor:
    """Lab -> network range: L to [-1, 1], a and b divided by ``AB_SCALE`` (about [-1, 1])."""
    _check(lab, "lab")
    L, ab = lab[..., :1, :, :], lab[..., 1:, :, :]
    return torch.cat([L / 50 - 1, ab / AB_SCALE], dim=-3)


def denormalize_lab(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize_lab`."""
    _check(x, "x")
    L, ab = x[..., :1, :, :], x[..., 1:, :, :]
    return torch.cat([(L + 1) * 50, ab * AB_SCALE], dim=-3)


def _stats(x: Tensor) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return mean, std


def imagenet_normalize(rgb: Tensor) -> Tensor:
    """sRGB ``(*, 3, H, W)`` in [0, 1] -> ImageNet-normalised, as torchvision's pretrained nets expect."""
    _check(rgb, "rgb")
    mean, std = _stats(rgb)
    return (rgb - mean) / std


def imagenet_denormalize(x: Tensor) -> Tensor:
    """Inverse of :func:`imagenet_normalize`."""
    _check(x, "x")
    mean, std = _stats(x)
    return x * std + mean
