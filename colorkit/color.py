"""Colour science: sRGB <-> CIE Lab (D65), gray conversion and network-range helpers.

All functions are pure, differentiable and work on tensors shaped ``(*, 3, H, W)`` (any number of
leading batch dimensions), float32 or float64, on any device. RGB is sRGB in ``[0, 1]``; Lab has
``L`` in ``[0, 100]`` and ``a``, ``b`` roughly in ``[-128, 127]``. Constants follow scikit-image
(D65 white, 2-degree observer) so results agree with ``skimage.color.rgb2lab``.

One exception, for inference on big photos: :func:`set_chroma_uint8` works on 8-bit numpy pixels with
look-up tables, about ten times faster than the tensor functions and within 1-2 levels of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "rgb_to_lab",
    "lab_to_rgb",
    "lab_to_rgb_keep_lightness",
    "set_chroma_uint8",
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


# ----------------------------------------------------------------------------------------------
# The uint8 fast path: sRGB bytes in, sRGB bytes out, numpy with look-up tables (inference only).
#
# Per pixel: the lightness comes from the photo, as f_y = f(Y) (Y from a 256-entry table of the sRGB
# level); the chroma comes as offsets of f_x and f_z from f_y (a/500 and -b/200). Then
# X, Z = f^-1(f_x), f^-1(f_z), linear RGB = M (X, Y, Z), and a 65536-entry table maps linear RGB to
# the output byte. Out-of-gamut pixels (a few percent in real photos) get their chroma scaled down
# by bisection (6 steps) plus a final per-channel linear interpolation, which is closer to the exact
# answer than lab_to_rgb_keep_lightness's 10 plain bisection steps (more steps change nothing).
#
# Everything is element-wise numpy on planes (3, N) of a strip: no BLAS call, whose thread pool would
# fight the network's threads when this runs on a background thread.

_Q = 65535  # linear RGB is quantised to 16 bits before the output table: error < 0.05 of a level


def _np_srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.04045, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4, c / 12.92)


def _np_linear_to_srgb(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.0031308, 1.055 * np.maximum(c, 0.0031308) ** (1 / 2.4) - 0.055, c * 12.92)


def _np_f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPS, np.cbrt(np.maximum(t, _EPS)), _KAPPA * t + 4 / 29)


def _tables() -> dict[str, Any]:
    xyz = _XYZ_FROM_RGB.numpy()
    lin = _np_srgb_to_linear(np.arange(256) / 255.0)
    gray_y = lin * xyz[1].sum()  # Y of the gray (v, v, v)
    # linear RGB = m @ (f^-1(f_x), Y, f^-1(f_z)): the white point folded into the columns
    m = _RGB_FROM_XYZ.numpy() * _WHITE_D65.numpy()[None, :]
    return {
        "y_of_level": [(lin * w).astype(np.float32) for w in xyz[1]],  # Y contribution of R, G, B levels
        "gray_y": gray_y.astype(np.float32),
        "gray_fy": _np_f(gray_y).astype(np.float32),
        "fy_of_y16": _np_f(np.arange(_Q + 1) / _Q).astype(np.float32),
        # truncating x * _Q picks the bin [i, i+1) / _Q: the sRGB byte of its centre
        "byte_of_linear16": np.clip(np.round(_np_linear_to_srgb((np.arange(_Q + 1) + 0.5) / _Q) * 255), 0, 255)
        .astype(np.uint8),
        "m": [[np.float32(v) for v in row] for row in m],
    }


_T = _tables()
_DELTA32 = np.float32(_DELTA)
_SLOPE32 = np.float32(3 * _DELTA**2)  # 1 / kappa: the slope of f^-1's linear part


def _f_inv_np(f: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """f^-1 without a branch: its linear part is the tangent of the cube at delta, so
    f^-1(f) = m**3 + 3 delta**2 (f - m) with m = max(f, delta). Writes into ``out``."""
    np.maximum(f, _DELTA32, out=tmp)
    np.multiply(tmp, tmp, out=out)
    out *= tmp
    np.subtract(f, tmp, out=tmp)
    tmp *= _SLOPE32
    out += tmp
    return out


def _set_xz(p: np.ndarray, scale: np.ndarray | np.float32, fy: np.ndarray, dfx: np.ndarray, dfz: np.ndarray,
            tmp: np.ndarray) -> None:
    """Fill rows 0 and 2 of ``p`` (3, N) with f^-1 of f_y + scale * (dfx, dfz) (f_z clipped at 0, as lab_to_rgb)."""
    fx = np.multiply(scale, dfx, dtype=np.float32)
    fx += fy
    fz = np.multiply(scale, dfz, dtype=np.float32)
    fz += fy
    np.maximum(fz, 0, out=fz)
    _f_inv_np(fx, p[0], tmp)
    _f_inv_np(fz, p[2], tmp)


def _to_linear_rgb(p: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """(3, N) (f^-1(f_x), Y, f^-1(f_z)) -> linear RGB (3, N) into ``out``, element-wise (no BLAS)."""
    for c, (m0, m1, m2) in enumerate(_T["m"]):
        o = out[c]
        np.multiply(p[0], m0, out=o)
        np.multiply(p[1], m1, out=tmp)
        o += tmp
        np.multiply(p[2], m2, out=tmp)
        o += tmp
    return out


def _violation(rgb: np.ndarray) -> np.ndarray:
    """(3, N) linear RGB -> (N,) how far the pixel is outside [0, 1] (<= 0: inside)."""
    lo = np.minimum(rgb[0], rgb[1])
    np.minimum(lo, rgb[2], out=lo)
    hi = np.maximum(rgb[0], rgb[1])
    np.maximum(hi, rgb[2], out=hi)
    hi -= 1
    np.negative(lo, out=lo)
    return np.maximum(hi, lo, out=hi)


def _fit_chroma(y: np.ndarray, fy: np.ndarray, dfx: np.ndarray, dfz: np.ndarray, steps: int) -> np.ndarray:
    """For out-of-gamut pixels (N,): linear RGB (3, N) at the largest chroma scale in [0, 1] that fits.

    ``steps`` bisections, then per channel the crossing of its bound by linear interpolation between
    the last in-gamut and out-of-gamut scales; the earliest crossing wins.
    """
    n = y.size
    p = np.empty((3, n), np.float32)
    p[1] = y
    rgb = np.empty((3, n), np.float32)
    tmp = np.empty(n, np.float32)
    lo = np.zeros(n, np.float32)
    step = np.float32(1)
    for _ in range(steps):
        step *= np.float32(0.5)
        _set_xz(p, lo + step, fy, dfx, dfz, tmp)
        inside = _violation(_to_linear_rgb(p, rgb, tmp)) <= 0
        lo += inside * step
    _set_xz(p, lo, fy, dfx, dfz, tmp)
    at_lo = _to_linear_rgb(p, np.empty((3, n), np.float32), tmp)
    _set_xz(p, lo + step, fy, dfx, dfz, tmp)
    change = _to_linear_rgb(p, rgb, tmp)  # at the out-of-gamut end for now
    frac = np.clip(change, 0, 1)  # the bound a channel crosses, or its own value when it stays inside
    frac -= at_lo
    change -= at_lo
    with np.errstate(invalid="ignore", divide="ignore"):
        frac /= change  # 1 for channels that stay inside, nan for channels that do not move
        t = np.fmin(np.fmin(frac[0], frac[1]), frac[2])
    np.nan_to_num(t, copy=False, nan=0.0)
    np.clip(t, 0, 1, out=t)
    change *= t  # linear over the interval, as the crossing estimate: the limiting channel lands on its bound
    change += at_lo
    return change


def _set_chroma_planes(rgb8: Sequence[np.ndarray] | np.ndarray, dfx: np.ndarray, dfz: np.ndarray, out: np.ndarray,
                       steps: int = 6, tol: float = 1e-4) -> np.ndarray:
    """The kernel of :func:`set_chroma_uint8` on planes: ``rgb8`` 3 x (r, w) uint8, ``dfx`` = a / 500 and
    ``dfz`` = -b / 200 (r, w) float32 -> ``out`` (3, r, w) uint8 (each plane C-contiguous), returned."""
    red, green, blue = rgb8
    r, w = red.shape
    n = r * w
    p = np.empty((3, n), np.float32)  # f^-1(f_x), Y, f^-1(f_z)
    y = p[1].reshape(r, w)
    if np.array_equal(red, green) and np.array_equal(red, blue):  # gray rows: two table look-ups
        np.take(_T["gray_y"], red, out=y)
        fy = np.take(_T["gray_fy"], red)
    else:
        wr, wg, wb = _T["y_of_level"]
        np.take(wr, red, out=y)
        y += np.take(wg, green)
        y += np.take(wb, blue)
        q = y * np.float32(_Q)
        q += 0.5
        fy = np.take(_T["fy_of_y16"], q.astype(np.uint16), mode="clip")
    fy, dfx, dfz = fy.reshape(n), dfx.reshape(n), dfz.reshape(n)
    tmp = np.empty(n, np.float32)
    _set_xz(p, np.float32(1), fy, dfx, dfz, tmp)
    rgb = _to_linear_rgb(p, np.empty((3, n), np.float32), tmp)
    bad = np.flatnonzero(_violation(rgb) > tol)
    if bad.size > n // 2:  # mostly out of gamut: fit every pixel (those inside come back at scale 1)
        rgb = _fit_chroma(p[1], fy, dfx, dfz, steps)
    elif bad.size:
        rgb[:, bad] = _fit_chroma(p[1, bad], fy[bad], dfx[bad], dfz[bad], steps)
    rgb *= np.float32(_Q)
    np.clip(rgb, 0, _Q, out=rgb)
    idx = rgb.astype(np.uint16)
    for c in range(3):
        np.take(_T["byte_of_linear16"], idx[c].reshape(r, w), out=out[c], mode="clip")
    return out


def set_chroma_uint8(rgb8: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Give 8-bit sRGB pixels ``rgb8`` (H, W, 3) the Lab chroma ``ab`` (2, H, W), keeping their lightness.

    The uint8 counterpart of ``lab_to_rgb_keep_lightness(cat([L, ab]))`` with ``L`` the lightness of
    ``rgb8``: out-of-gamut colours lose chroma (same L and hue) until they fit. Results are within
    1-2 levels of the exact (many-step) answer. Returns a new (H, W, 3) uint8 array.
    """
    rgb8 = np.asarray(rgb8)
    ab = np.asarray(ab, dtype=np.float32)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise ValueError(f"rgb8 must be a (H, W, 3) uint8 array, got {rgb8.dtype} {rgb8.shape}")
    if ab.shape != (2, *rgb8.shape[:2]):
        raise ValueError(f"ab must have shape (2, H, W) = {(2, *rgb8.shape[:2])}, got {ab.shape}")
    out = np.empty((3, *rgb8.shape[:2]), np.uint8)
    _set_chroma_planes(rgb8.transpose(2, 0, 1), ab[0] / np.float32(500), ab[1] / np.float32(-200), out)
    return np.ascontiguousarray(out.transpose(1, 2, 0))
