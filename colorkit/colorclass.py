"""Colour classes: the Lab ``ab`` plane quantised into bins, the annealed-mean decoding, and the class loss.

A generator with a class head (``GeneratorConfig(chroma_head="classes")``) predicts, at every pixel, a
distribution over ``K`` ab bins (logits ``(B, K, H, W)``) instead of one ab value. Regressing ab alone
averages the plausible colours of a pixel into brown; a distribution keeps them apart, and decoding it
with the *annealed mean* (Zhang, Isola and Efros 2016, "Colorful Image Colorization") picks between the
mean (temperature 1: safe, faint) and the mode (temperature -> 0: vivid, riskier). The temperature is
stored in the model's config and chosen on held-out photos after training.

:class:`ColorClassLoss` is a fastai callback in the style of fastai's ``RNNRegularizer``: the model
returns ``(rgb, logits)`` while it is attached; the callback hands ``rgb`` to the usual loss and adds
``weight * cross_entropy(logits, bin of the target)``, optionally class-rebalanced.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from torch import Tensor

from .color import lab_to_rgb, rgb_to_lab

__all__ = ["AB_RANGE", "ColorClassLoss", "ab_bins", "ab_to_bin", "annealed_mean", "bin_prior", "rebalance_weights"]

AB_RANGE = 110.0  # bin centres lie on a grid of multiples of ``step`` within [-AB_RANGE, AB_RANGE]


@functools.cache
def _bins(step: float) -> tuple[Tensor, Tensor]:
    """(centres ``(K, 2)``, lookup ``(G, G)`` grid cell -> nearest in-gamut bin) for ``step``."""
    n = int(round(AB_RANGE / step))
    grid = torch.arange(-n, n + 1, dtype=torch.float64) * step
    a, b = torch.meshgrid(grid, grid, indexing="ij")  # (G, G)
    L = torch.linspace(2, 98, 49, dtype=torch.float64)
    lab = torch.stack(torch.broadcast_tensors(L[:, None, None], a[None], b[None]), dim=1)  # (nL, 3, G, G)
    rgb = lab_to_rgb(lab, clip=False)
    in_gamut = ((rgb >= -1e-6) & (rgb <= 1 + 1e-6)).all(dim=1).any(dim=0)  # (G, G): in gamut at some L
    centres = torch.stack([a[in_gamut], b[in_gamut]], dim=1)  # (K, 2)
    cells = torch.stack([a.flatten(), b.flatten()], dim=1)
    nearest = torch.cdist(cells, centres).argmin(dim=1).reshape(a.shape)
    return centres.float(), nearest


def ab_bins(step: float = 10.0) -> Tensor:
    """Centres ``(K, 2)`` of the ab bins that are in the sRGB gamut at some lightness (K = 222 for step 10)."""
    return _bins(float(step))[0].clone()


def ab_to_bin(ab: Tensor, step: float = 10.0) -> Tensor:
    """Index of the nearest in-gamut bin for chroma ``ab`` ``(B, 2, H, W)`` (Lab units) -> ``(B, H, W)`` long."""
    centres, nearest = _bins(float(step))
    n = nearest.shape[0]
    idx = torch.round(ab.detach().float() / step + (n - 1) / 2).long().clamp_(0, n - 1)
    return nearest.to(ab.device)[idx[:, 0], idx[:, 1]]


def annealed_mean(logits: Tensor, centres: Tensor, temperature: float = 1.0) -> Tensor:
    """Decode logits ``(B, K, H, W)`` to ab ``(B, 2, H, W)``: the mean of ``softmax(logits / T)`` over the bins.

    ``T = 1`` is the distribution's mean; smaller ``T`` moves towards its mode (more saturated colour).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bkhw,kc->bchw", p, centres.to(device=logits.device, dtype=p.dtype))


def bin_prior(ab: Tensor, step: float = 10.0) -> Tensor:
    """Empirical distribution ``(K,)`` of the bins of chroma ``ab`` ``(B, 2, H, W)``."""
    k = _bins(float(step))[0].shape[0]
    counts = torch.bincount(ab_to_bin(ab, step).flatten().cpu(), minlength=k).float()
    return counts / counts.sum().clamp(min=1)


def rebalance_weights(prior: Tensor, lam: float = 0.5, sigma: float = 5.0, step: float = 10.0) -> Tensor:
    """Zhang et al.'s class weights ``(K,)``: ``((1 - lam) * smoothed prior + lam / K) ** -1``, mean 1 under the prior.

    The prior is smoothed with a Gaussian of ``sigma`` (Lab units) over the bin centres.
    """
    centres = _bins(float(step))[0]
    k = centres.shape[0]
    kernel = torch.exp(-torch.cdist(centres, centres) ** 2 / (2 * sigma**2))
    smooth = kernel @ prior.float().cpu()
    smooth = smooth / smooth.sum().clamp(min=1e-12)
    w = 1.0 / ((1 - lam) * smooth + lam / k)
    return w / (w * smooth).sum()


class ColorClassLoss(Callback):
    """Add ``weight * cross_entropy(logits, bin(target ab))`` to the learner's loss (train and valid).

    The generator must have a class head; while this callback is attached it returns ``(rgb, logits)``
    and the callback passes ``rgb`` on as the prediction. ``rebalance`` (0..1, Zhang et al.'s lambda)
    weights rare colours up, using the bin prior of up to ``prior_batches`` training batches; 0 = off.
    The class term is computed on logits and targets average-pooled by ``pool`` (colour is low-frequency).
    """

    order = 20  # after BF16Training has closed autocast on the prediction

    def __init__(self, weight: float = 1.0, rebalance: float = 0.0, pool: int = 2, prior_batches: int = 16):
        if weight < 0 or not 0 <= rebalance <= 1 or pool < 1:
            raise ValueError(f"need weight >= 0, 0 <= rebalance <= 1, pool >= 1; got {weight}, {rebalance}, {pool}")
        self.weight, self.rebalance, self.pool = float(weight), float(rebalance), int(pool)
        self.prior_batches = prior_batches
        self.class_weights: Tensor | None = None
        self.last_ce: float | None = None

    def _generator(self):  # noqa: ANN202
        m = self.learn.model
        m = getattr(m, "module", m)  # DistributedDataParallel wraps the model
        return getattr(m, "generator", m)

    def before_fit(self) -> None:
        gen = self._generator()
        if getattr(gen, "bin_centres", None) is None:
            raise ValueError("ColorClassLoss needs a generator with a class head (chroma_head='classes')")
        gen.return_logits = True
        if self.rebalance > 0 and self.class_weights is None:
            abs_ = []
            for i, (_, y) in enumerate(self.dls.train):
                abs_.append(rgb_to_lab(y.float().cpu().as_subclass(Tensor))[:, 1:])
                if i + 1 >= self.prior_batches:
                    break
            prior = bin_prior(torch.cat(abs_), gen.bin_step)
            self.class_weights = rebalance_weights(prior, self.rebalance, step=gen.bin_step)

    def after_pred(self) -> None:
        if isinstance(self.pred, tuple):
            self.learn.pred, self.logits = self.pred
        else:
            self.logits = None

    def after_loss(self) -> None:
        if self.logits is None or not self.weight:
            return
        gen = self._generator()
        y = self.yb[0].as_subclass(Tensor).float()
        logits = self.logits.float()
        if self.pool > 1:
            logits, y = F.avg_pool2d(logits, self.pool), F.avg_pool2d(y, self.pool)
        target = ab_to_bin(rgb_to_lab(y)[:, 1:], gen.bin_step)
        w = self.class_weights.to(logits.device) if self.class_weights is not None else None
        ce = F.cross_entropy(logits, target, weight=w)
        self.last_ce = float(ce.detach())
        self.learn.loss_grad = self.loss_grad + self.weight * ce
        self.learn.loss = self.learn.loss_grad.detach().clone()

    def after_fit(self) -> None:
        self._generator().return_logits = False
