"""Critics for NoGAN: networks that tell real colour photos from generated ones, one logit per patch.

Critics take RGB ``(B, 3, H, W)`` in ``[0, 1]`` (as the generator produces) and return logits ``(B, N)``,
one per patch; they ImageNet-normalise internally. :data:`CRITICS` names the kinds (``"spectral"``, the
published NoGAN critic; ``"patch"``, a pix2pix PatchGAN, optionally conditioned on the gray photo; ``"resnet"``, a
ResNet body); :func:`create_critic`
builds one by name. Training them is the job of :mod:`colorkit.nogan` and, for the conditional GAN presets,
:mod:`colorkit.cgan`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fastai.layers import ConvLayer, NormType, SelfAttention
from fastai.vision.gan import AdaptiveLoss
from torch import Tensor, nn

from ._tensors import plain
from .color import imagenet_denormalize, imagenet_normalize, rgb_to_luminance
from .models import ARCHS, arch_name, encoder_state_dict, resnet_with_weights

__all__ = ["CRITICS", "CriticNet", "WithGray", "create_critic", "critic_loss", "patch_critic", "resnet_critic",
           "spectral_critic"]


class CriticNet(nn.Module):
    """RGB ``(B, 3, H, W)`` in [0, 1] -> real/fake logits ``(B, N)``, one per patch of the image.

    ``body`` maps an ImageNet-normalised batch to ``(B, 1, h, w)`` (or ``(B, N)``). ``min_size`` is
    the smallest side the body accepts; smaller inputs raise a ValueError saying so.
    """

    def __init__(self, body: nn.Module, min_size: int = 8, config: dict[str, Any] | None = None):
        super().__init__()
        self.body, self.min_size = body, int(min_size)
        self.config: dict[str, Any] = dict(config or {})

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"the critic expects RGB (B, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"the critic {self.config.get('kind', '')!r} needs images of at least "
                             f"{self.min_size} px a side, got {tuple(x.shape[-2:])}")
        x = plain(x)
        x = x.float() if not x.is_floating_point() else x
        return self.body(imagenet_normalize(x)).flatten(1)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _conv(ni: int, nf: int, ks: int = 3, stride: int = 1, norm: NormType | None = NormType.Spectral,
          act: bool = True, attention: bool = False, padding: int | None = None) -> nn.Module:
    return ConvLayer(ni, nf, ks=ks, stride=stride, padding=padding, norm_type=norm,
                     act_cls=_leaky if act else None, xtra=SelfAttention(nf) if attention else None)


def spectral_critic(
    nf: int = 256, n_blocks: int = 3, p: float = 0.15, self_attention: bool = True
) -> CriticNet:
    """The published NoGAN critic: spectral-norm convolutions, LeakyReLU 0.2, dropout ``p``, self-attention.

    A stride-2 4x4 stem to ``nf`` filters, then ``n_blocks`` blocks (3x3 conv, dropout, stride-2 4x4
    conv doubling the filters; self-attention after the first block's when ``self_attention``), a 3x3
    conv and a 3x3 conv to one logit per position. A ``S`` px input gives ``(S / 2**(n_blocks+1))**2``
    patch logits; the smallest input is ``2**(n_blocks+1)`` px.
    """
    if nf < 1 or n_blocks < 0 or not 0 <= p < 1:
        raise ValueError(f"spectral_critic: need nf >= 1, n_blocks >= 0 and 0 <= p < 1, "
                         f"got nf={nf}, n_blocks={n_blocks}, p={p}")
    cfg = dict(kind="spectral", nf=nf, n_blocks=n_blocks, p=p, self_attention=self_attention)
    layers: list[nn.Module] = [_conv(3, nf, ks=4, stride=2), nn.Dropout2d(p / 2)]
    for i in range(n_blocks):
        layers += [_conv(nf, nf), nn.Dropout2d(p),
                   _conv(nf, nf * 2, ks=4, stride=2, attention=self_attention and i == 0)]
        nf *= 2
    layers += [_conv(nf, nf), _conv(nf, 1, act=False)]
    return CriticNet(nn.Sequential(*layers), min_size=2 ** (n_blocks + 1), config=cfg)


_NORMS: dict[str | None, NormType | None] = {
    "spectral": NormType.Spectral, "batch": NormType.Batch, "instance": NormType.Instance, None: None,
}


class WithGray(nn.Module):
    """ImageNet-normalised RGB ``(B, 3, H, W)`` -> ``(B, 4, H, W)``: the same plus its Lab lightness scaled to
    [-1, 1]. A critic reading it judges the colours given the gray photo (pix2pix's conditional critic; the
    gray of a real photo is its generator input, and so is a lab-mode generator's output's)."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            lum = rgb_to_luminance(imagenet_denormalize(x.float()).clamp(0, 1)) / 50 - 1
        return torch.cat([x, lum.to(x.dtype)], dim=1)


def patch_critic(nf: int = 64, n_layers: int = 3, norm: str | None = "spectral",
                 conditional: bool = False) -> CriticNet:
    """A pix2pix-style PatchGAN: 4x4 convs, ``n_layers`` of stride 2, filters doubling up to ``8 * nf``.

    With ``n_layers=3`` each logit sees a 70x70 px patch. ``norm`` is ``"spectral"``, ``"batch"``,
    ``"instance"`` or None. ``conditional`` also feeds it the image's gray (:class:`WithGray`), as pix2pix's
    critic sees the input next to the output. The smallest input is ``3 * 2**n_layers`` px.
    """
    if norm not in _NORMS:
        raise ValueError(f"patch_critic: norm must be one of {list(_NORMS)}, got {norm!r}")
    if nf < 1 or n_layers < 1:
        raise ValueError(f"patch_critic: need nf >= 1 and n_layers >= 1, got {nf}, {n_layers}")
    nt = _NORMS[norm]
    layers: list[nn.Module] = [WithGray()] if conditional else []
    layers.append(_conv(4 if conditional else 3, nf, ks=4, stride=2, norm=None))
    mult = 1
    for i in range(1, n_layers + 1):
        prev, mult = mult, min(2**i, 8)
        layers.append(_conv(nf * prev, nf * mult, ks=4, stride=2 if i < n_layers else 1, norm=nt))
    layers.append(_conv(nf * mult, 1, ks=4, stride=1, norm=None, act=False, padding=1))
    cfg = dict(kind="patch", nf=nf, n_layers=n_layers, norm=norm, conditional=conditional)
    return CriticNet(nn.Sequential(*layers), min_size=3 * 2**n_layers, config=cfg)


def resnet_critic(arch: str = "resnet34", pretrained: bool = True, weights: str | Path | None = None,
                  p: float = 0.15) -> CriticNet:
    """A critic on a torchvision ResNet body (ImageNet weights when ``pretrained``) + a 1x1 conv head.

    Weights follow the generator's rules: torchvision's cache (``TORCH_HOME``) or a local ``weights``
    file; offline and uncached -> :class:`~colorkit.models.WeightsUnavailableError` naming the file to
    place, or pass ``pretrained=False``. One logit per 32x32 px cell; the smallest input is 32 px.
    """
    name = arch_name(arch)
    sd = encoder_state_dict(name, pretrained, weights)
    full = resnet_with_weights(name, sd) if sd is not None else ARCHS[name][0](weights=None)
    n_feat = full.fc.in_features
    body = nn.Sequential(*list(full.children())[:-2], nn.Dropout2d(p), nn.Conv2d(n_feat, 1, 1))
    cfg = dict(kind="resnet", arch=name, pretrained=sd is not None, p=p)
    return CriticNet(body, min_size=32, config=cfg)


CRITICS: dict[str, Callable[..., CriticNet]] = {
    "spectral": spectral_critic,
    "patch": patch_critic,
    "resnet": resnet_critic,
}


def create_critic(kind: str = "spectral", **kwargs: Any) -> CriticNet:
    """Build a critic by name (``"spectral"``, ``"patch"``, ``"resnet"``); ``kwargs`` go to its builder."""
    if kind not in CRITICS:
        raise ValueError(f"unknown critic {kind!r}; choose one of {', '.join(CRITICS)}")
    return CRITICS[kind](**kwargs)


def critic_loss() -> nn.Module:
    """Binary cross-entropy on every patch logit against the image's label (real 1, fake 0)."""
    return AdaptiveLoss(nn.BCEWithLogitsLoss())
