"""Colorization metrics on RGB batches, and fastai ``Metric`` wrappers for a learner.

Every function takes ``pred`` and ``targ`` shaped ``(B, 3, H, W)``, sRGB in ``[0, 1]``, and returns
one value per image ``(B,)`` (computed in float64, returned in ``pred``'s dtype):

- :func:`colorfulness` (Hasler & Suesstrunk 2003) and the corpus-level :func:`colorfulness_gap`;
- :func:`psnr`, :func:`ssim` (Gaussian window, matches ``skimage.metrics.structural_similarity``);
- :func:`ciede2000` (matches ``skimage.color.deltaE_ciede2000``) and :func:`ab_error`.

FID is implemented (:func:`frechet_distance`, :func:`fid`, :func:`inception_features`) but needs
InceptionV3 weights that cannot be downloaded here: :func:`fid_available` says whether they are on
disk. LPIPS is *not* computed by colorkit; :func:`lpips_available` only reports whether the ``lpips``
package and its backbone weights are present.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from fastai.learner import Metric
from torch import Tensor

from ._tensors import plain
from ._weights import local_weights_file
from .color import imagenet_normalize, rgb_to_lab

__all__ = [
    "colorfulness",
    "colorfulness_gap",
    "psnr",
    "ssim",
    "delta_e_ciede2000",
    "ciede2000",
    "ab_error",
    "score_batch",
    "summarize",
    "PSNRMetric",
    "SSIMMetric",
    "CIEDE2000Metric",
    "ColorfulnessGap",
    "colorize_metrics",
    "frechet_distance",
    "fid",
    "fid_available",
    "inception_features",
    "lpips_available",
]


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_batch(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(
            f"{name} must be an RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}"
            + (" (add a batch dimension with .unsqueeze(0))" if x.ndim == 3 and x.shape[0] == 3 else "")
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor in [0, 1], got {x.dtype}")
    return plain(x)


def _check_pair(pred: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    pred, targ = _check_batch(pred, "pred"), _check_batch(targ, "targ")
    if pred.shape != targ.shape:
        raise ValueError(
            f"pred and targ must have the same shape, got {tuple(pred.shape)} and {tuple(targ.shape)}"
        )
    return pred, targ.to(pred.device)


def _f64(x: Tensor) -> Tensor:
    """Detached float64 copy for exact metrics (on the CPU for MPS, which has no float64)."""
    x = x.detach()
    return (x.cpu() if x.device.type == "mps" else x).double()


def _out_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


# ----------------------------------------------------------------------------------------------
# colourfulness
# ----------------------------------------------------------------------------------------------


def colorfulness(rgb: Tensor) -> Tensor:
    """Hasler & Suesstrunk (2003) colourfulness of each image of ``rgb`` (B, 3, H, W) -> (B,).

    On the 0..255 scale: ``rg = R - G``, ``yb = (R + G) / 2 - B`` and
    ``CF = sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)`` (population std).
    A gray image scores 0.
    """
    rgb = _check_batch(rgb, "rgb")
    x = _f64(rgb) * 255
    r, g, b = x.unbind(1)
    rg = (r - g).flatten(1)
    yb = (0.5 * (r + g) - b).flatten(1)
    std = torch.sqrt(rg.var(dim=1, correction=0) + yb.var(dim=1, correction=0))
    mean = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return (std + 0.3 * mean).to(_out_dtype(rgb))


def colorfulness_gap(pred: Tensor, targ: Tensor) -> float:
    """Corpus-level colourfulness gap ``|mean CF(pred) - mean CF(targ)|`` (the published dCF).

    ``pred`` and ``targ`` are (B, 3, H, W) batches; they may hold different numbers of images.
    """
    return abs(colorfulness(pred).double().mean().item() - colorfulness(targ).double().mean().item())


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM
# ----------------------------------------------------------------------------------------------


def psnr(pred: Tensor, targ: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB of each image, on RGB: (B, 3, H, W) x 2 -> (B,).

    Identical images give ``inf``.
    """
    pred, targ = _check_pair(pred, targ)
    mse = (_f64(pred) - _f64(targ)).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).to(_out_dtype(pred))


_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage with truncate=3.5: an 11-tap filter


def _gaussian_1d(sigma: float, radius: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _symmetric_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices extending ``range(n)`` by ``pad`` each side, mirrored about the edges (d c b a | a b c d)."""
    i = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _gaussian_filter(x: Tensor, w: Tensor) -> Tensor:
    """Separable Gaussian blur of ``x`` (N, 1, H, W) with mirrored borders; same size out."""
    r = (w.numel() - 1) // 2
    h, wd = x.shape[-2:]
    x = x.index_select(-2, _symmetric_index(h, r, x.device)).index_select(
        -1, _symmetric_index(wd, r, x.device)
    )
    x = F.conv2d(x, w.view(1, 1, -1, 1))
    return F.conv2d(x, w.view(1, 1, 1, -1))


def ssim(pred: Tensor, targ: Tensor, data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean structural similarity of each image, on RGB: (B, 3, H, W) x 2 -> (B,).

    Gaussian window (sigma 1.5, 11 x 11), population covariances, the per-channel SSIM maps averaged
    after cropping the 5-pixel border: the same as ``skimage.metrics.structural_similarity(...,
    channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. Images smaller
    than 11 pixels on a side keep the Gaussian filter but crop a smaller border, ``(w - 1) // 2`` with
    ``w`` the largest odd number <= min(H, W) (what scikit-image does with ``win_size=w``).
    """
    pred, targ = _check_pair(pred, targ)
    B, C, H, W = pred.shape
    x = _f64(pred).reshape(B * C, 1, H, W)
    y = _f64(targ).reshape(B * C, 1, H, W)
    w = _gaussian_1d(_SSIM_SIGMA, _SSIM_RADIUS, x.dtype, x.device)
    ux, uy = _gaussian_filter(x, w), _gaussian_filter(y, w)
    vx = _gaussian_filter(x * x, w) - ux * ux
    vy = _gaussian_filter(y * y, w) - uy * uy
    vxy = _gaussian_filter(x * y, w) - ux * uy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    win = min(2 * _SSIM_RADIUS + 1, min(H, W) if min(H, W) % 2 else min(H, W) - 1)
    crop = (win - 1) // 2
    s = s[..., crop : H - crop, crop : W - crop]
    return s.reshape(B, -1).mean(dim=1).to(_out_dtype(pred))


# ----------------------------------------------------------------------------------------------
# colour differences in Lab
# ----------------------------------------------------------------------------------------------


def delta_e_ciede2000(lab1: Tensor, lab2: Tensor) -> Tensor:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of Lab ``(*, 3, H, W)`` pairs -> ``(*, H, W)``.

    Follows Sharma, Wu & Dalal (2005), as ``skimage.color.deltaE_ciede2000``.
    """
    for name, t in (("lab1", lab1), ("lab2", lab2)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 3 or t.shape[-3] != 3:
            raise ValueError(f"{name} must have shape (*, 3, H, W), got {tuple(t.shape)}")
    if lab1.shape != lab2.shape:
        raise ValueError(
            f"lab1 and lab2 must have the same shape, got {tuple(lab1.shape)} and {tuple(lab2.shape)}"
        )
    L1, a1, b1 = plain(lab1).unbind(-3)
    L2, a2, b2 = plain(lab2).unbind(-3)
    two_pi = 2 * math.pi
    p25 = 25.0**7

    # stretch a by the mean chroma, then work in the primed (L, C', h') coordinates
    c_bar7 = ((torch.hypot(a1, b1) + torch.hypot(a2, b2)) / 2) ** 7
    g = 0.5 * (1 - torch.sqrt(c_bar7 / (c_bar7 + p25)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1, c2 = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1 = torch.remainder(torch.atan2(b1, a1p), two_pi)
    h2 = torch.remainder(torch.atan2(b2, a2p), two_pi)
    cc = c1 * c2
    achromatic = cc == 0

    # differences
    dL = L2 - L1
    dC = c2 - c1
    dh = h2 - h1
    dh = torch.where(dh > math.pi, dh - two_pi, torch.where(dh < -math.pi, dh + two_pi, dh))
    dh = torch.where(achromatic, torch.zeros_like(dh), dh)
    dH = 2 * torch.sqrt(cc) * torch.sin(dh / 2)

    # means; the mean hue goes the short way round the circle
    L_bar = (L1 + L2) / 2
    c_bar = (c1 + c2) / 2
    h_sum = h1 + h2
    far = (h2 - h1).abs() > math.pi
    h_bar = torch.where(far, torch.where(h_sum < two_pi, h_sum + two_pi, h_sum - two_pi), h_sum) / 2
    h_bar = torch.where(achromatic, h_sum, h_bar)

    t = (
        1
        - 0.17 * torch.cos(h_bar - math.radians(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + math.radians(6))
        - 0.20 * torch.cos(4 * h_bar - math.radians(63))
    )
    l50 = (L_bar - 50) ** 2
    s_l = 1 + 0.015 * l50 / torch.sqrt(20 + l50)
    s_c = 1 + 0.045 * c_bar
    s_h = 1 + 0.015 * c_bar * t
    c_bar7p = c_bar**7
    r_c = 2 * torch.sqrt(c_bar7p / (c_bar7p + p25))
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275) / 25) ** 2))
    r_t = -torch.sin(2 * d_theta) * r_c

    lt, ct, ht = dL / s_l, dC / s_c, dH / s_h
    return torch.sqrt((lt**2 + ct**2 + ht**2 + r_t * ct * ht).clamp(min=0))


def ciede2000(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean CIEDE2000 colour difference of each image pair (B, 3, H, W) x 2 -> (B,)."""
    pred, targ = _check_pair(pred, targ)
    de = delta_e_ciede2000(rgb_to_lab(_f64(pred)), rgb_to_lab(_f64(targ)))
    return de.flatten(1).mean(dim=1).to(_out_dtype(pred))


def ab_error(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean Euclidean distance in the Lab ``a, b`` plane of each image pair (B, 3, H, W) x 2 -> (B,)."""
    pred, targ = _check_pair(pred, targ)
    ab_p = rgb_to_lab(_f64(pred))[:, 1:]
    ab_t = rgb_to_lab(_f64(targ))[:, 1:]
    return (ab_p - ab_t).pow(2).sum(dim=1).sqrt().flatten(1).mean(dim=1).to(_out_dtype(pred))


# ----------------------------------------------------------------------------------------------
# batch summaries
# ----------------------------------------------------------------------------------------------


def score_batch(pred: Tensor, targ: Tensor) -> dict[str, list[float]]:
    """Every per-image metric of a (B, 3, H, W) pair, as lists of B floats.

    Keys: ``psnr``, ``ssim``, ``ciede2000``, ``ab_error``, ``colorfulness`` (of ``pred``) and
    ``colorfulness_target``.
    """
    pred, targ = _check_pair(pred, targ)
    return {
        "psnr": psnr(pred, targ).tolist(),
        "ssim": ssim(pred, targ).tolist(),
        "ciede2000": ciede2000(pred, targ).tolist(),
        "ab_error": ab_error(pred, targ).tolist(),
        "colorfulness": colorfulness(pred).tolist(),
        "colorfulness_target": colorfulness(targ).tolist(),
    }


def summarize(pred: Tensor, targ: Tensor) -> dict[str, float]:
    """Means over the batch of :func:`score_batch`, plus the corpus-level ``colorfulness_gap``."""
    scores = score_batch(pred, targ)
    out = {k: sum(v) / len(v) for k, v in scores.items()}
    out["colorfulness_gap"] = abs(out["colorfulness"] - out["colorfulness_target"])
    return out


# ----------------------------------------------------------------------------------------------
# fastai metrics
# ----------------------------------------------------------------------------------------------


def _learn_pair(learn) -> tuple[Tensor, Tensor]:
    """``learn.pred`` (clamped to [0, 1]) and ``learn.y`` as plain, detached tensors."""
    pred = plain(learn.pred).detach().float().clamp(0, 1)
    targ = plain(learn.y).detach().float()
    return pred, targ


class _MeanPerImage(Metric):
    """Mean over all validation images of a per-image metric ``(pred, targ) -> (B,)``."""

    _name = "metric"

    def __init__(self):
        self.reset()

    def _score(self, pred: Tensor, targ: Tensor) -> Tensor:
        raise NotImplementedError

    def reset(self):
        self.total, self.count = 0.0, 0

    def accumulate(self, learn):
        pred, targ = _learn_pair(learn)
        with torch.no_grad():
            vals = self._score(pred, targ).double()
        self.total += vals.sum().item()
        self.count += vals.numel()

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def name(self) -> str:
        return self._name


class PSNRMetric(_MeanPerImage):
    """PSNR (dB) averaged over validation images (``inf`` if any image is reproduced exactly)."""

    _name = "psnr"

    def _score(self, pred: Tensor, targ: Tensor) -> Tensor:
        return psnr(pred, targ)


class SSIMMetric(_MeanPerImage):
    """SSIM averaged over validation images."""

    _name = "ssim"

    def _score(self, pred: Tensor, targ: Tensor) -> Tensor:
        return ssim(pred, targ)


class CIEDE2000Metric(_MeanPerImage):
    """Per-image mean CIEDE2000, averaged over validation images (lower is better)."""

    _name = "ciede2000"

    def _score(self, pred: Tensor, targ: Tensor) -> Tensor:
        return ciede2000(pred, targ)


class ColorfulnessGap(Metric):
    """Corpus-level ``|mean CF(pred) - mean CF(targ)|`` over the whole validation set.

    Sums of colourfulness and image counts are accumulated, so the value is the gap of the corpus
    means, not an average of per-batch gaps.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.sum_pred, self.sum_targ, self.n_pred, self.n_targ = 0.0, 0.0, 0, 0

    def accumulate(self, learn):
        pred, targ = _learn_pair(learn)
        cf_p, cf_t = colorfulness(pred).double(), colorfulness(targ).double()
        self.sum_pred += cf_p.sum().item()
        self.sum_targ += cf_t.sum().item()
        self.n_pred += cf_p.numel()
        self.n_targ += cf_t.numel()

    @property
    def value(self) -> float | None:
        if not (self.n_pred and self.n_targ):
            return None
        return abs(self.sum_pred / self.n_pred - self.sum_targ / self.n_targ)

    @property
    def name(self) -> str:
        return "colorfulness_gap"


def colorize_metrics() -> list[Metric]:
    """The default metrics of a colorization learner: PSNR, CIEDE2000 and the colourfulness gap."""
    return [PSNRMetric(), CIEDE2000Metric(), ColorfulnessGap()]


# ----------------------------------------------------------------------------------------------
# FID and LPIPS
# ----------------------------------------------------------------------------------------------


def _to_numpy(x):
    if isinstance(x, Tensor):
        x = plain(x).detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``; means ``(D,)``, covariances
    ``(D, D)`` (tensors or arrays). A near-singular product gets ``eps`` added to both diagonals.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(_to_numpy(mu1)), np.atleast_1d(_to_numpy(mu2))
    s1, s2 = np.atleast_2d(_to_numpy(sigma1)), np.atleast_2d(_to_numpy(sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            "frechet_distance needs means (D,) and covariances (D, D) of one D, got "
            f"mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"frechet_distance: sqrt of sigma1 @ sigma2 has a large imaginary part "
                f"({np.abs(covmean.imag).max():.3g}); are the covariances positive semi-definite?"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid(pred_feats, targ_feats, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets ``(N, D)`` and ``(M, D)``.

    Sample covariances (``N - 1``), as the usual FID code. Features normally come from
    :func:`inception_features`.
    """
    stats = []
    for name, f in (("pred_feats", pred_feats), ("targ_feats", targ_feats)):
        f = _to_numpy(f)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {f.shape}")
        stats.append((f.mean(axis=0), np.cov(f, rowvar=False)))
    (mu1, s1), (mu2, s2) = stats
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"pred_feats and targ_feats have different widths: {mu1.shape[0]} and {mu2.shape[0]}"
        )
    return frechet_distance(mu1, s1, mu2, s2, eps=eps)


def fid_available(weights: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether InceptionV3 weights for FID are on disk, and why (not): ``(ok, reason)``.

    Checks ``weights`` (a local state-dict file) if given, else the file torchvision's
    ``Inception_V3_Weights.IMAGENET1K_V1`` would cache under ``TORCH_HOME``. Never downloads.
    torchvision's weights differ from the TF-Inception used by published FID numbers, so scores are
    comparable only with each other.
    """
    from torchvision.models import Inception_V3_Weights

    path, reason = local_weights_file(weights, Inception_V3_Weights.IMAGENET1K_V1, "InceptionV3")
    return path is not None, reason


def inception_features(
    images: Tensor, weights: str | os.PathLike | None = None, batch_size: int = 32
) -> Tensor:
    """2048-d pooled InceptionV3 features of RGB ``images`` (N, 3, H, W) in [0, 1] -> (N, 2048).

    Images are resized to 299 x 299 (bilinear). ``weights`` as in :func:`fid_available`; raises
    ``FileNotFoundError`` with the reason when they are missing.
    """
    from torchvision.models import Inception_V3_Weights, inception_v3

    images = _check_batch(images, "images")
    path, reason = local_weights_file(weights, Inception_V3_Weights.IMAGENET1K_V1, "InceptionV3")
    if path is None:
        raise FileNotFoundError(f"inception_features: {reason}")
    model = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.fc = torch.nn.Identity()
    model = model.eval().to(images.device)
    feats = []
    with torch.no_grad():
        for chunk in images.split(batch_size):
            x = F.interpolate(chunk.float(), size=(299, 299), mode="bilinear", align_corners=False)
            feats.append(model(imagenet_normalize(x.clamp(0, 1))))
    return torch.cat(feats)


def lpips_available(weights: str | os.PathLike | None = None, net: str = "alex") -> tuple[bool, str]:
    """Whether LPIPS could be computed here, and why (not): ``(ok, reason)``.

    colorkit does not compute LPIPS: it needs the learned linear layers shipped with the ``lpips``
    package and an ImageNet backbone (``net`` "alex" or "vgg"). This checks that the package is
    importable and that the backbone weights are at ``weights`` or in the torchvision cache. Never
    downloads.
    """
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    enums = {
        "alex": (AlexNet_Weights.IMAGENET1K_V1, "AlexNet"),
        "vgg": (VGG16_Weights.IMAGENET1K_V1, "VGG16"),
    }
    if net not in enums:
        raise ValueError(f"lpips_available: net must be 'alex' or 'vgg', got {net!r}")
    path, reason = local_weights_file(weights, *enums[net])
    missing = [] if path is not None else [reason]
    if importlib.util.find_spec("lpips") is None:
        missing.append("the `lpips` package (learned linear layers) is not installed")
    if missing:
        return False, "LPIPS unavailable: " + "; ".join(missing)
    return True, f"LPIPS possible with the `lpips` package ({reason}); colorkit does not compute it itself"
