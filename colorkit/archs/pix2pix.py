"""The pix2pix generator (Isola et al. 2017): the U-Net-256, written for colorkit.

An encoder of ``n_down`` 4x4 stride-2 convolutions (LeakyReLU 0.2 before each but the first, BatchNorm after
each but the first and the innermost), filters ``nf, 2nf, 4nf, 8nf, 8nf, ...``; a mirror decoder of 4x4
stride-2 transposed convolutions (ReLU before, BatchNorm after, dropout in the first ``dropout_blocks``),
each fed the previous block's output concatenated with the encoder's output at that size. With
``n_down=8`` a 256 px input reaches 1x1 at the bottleneck, as in the paper. ``n_down=None`` picks the depth
from the training size (:func:`unet_depth`). Inputs whose sides are not multiples of ``2**n_down`` are
padded and the output cropped back, so the network renders any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..models import register_generator
from .blocks import OutputHead, PresetConfig, gray_channel, init_normal, one_group, pad_to_multiple

__all__ = ["Pix2PixConfig", "UNetGenerator", "pix2pix_unet", "unet_depth"]

_NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}


def unet_depth(size: int, max_depth: int = 8, max_pad: float = 0.125) -> int:
    """The deepest U-Net (at most ``max_depth`` downsamplings, bottleneck at least 1 px) for ``size`` px
    inputs whose padding to a multiple of ``2**depth`` adds at most ``max_pad`` of the side: 256 -> 8,
    64 -> 6, 144 -> 5, 224 -> 5."""
    size = int(size)
    if size < 2:
        raise ValueError(f"unet_depth: size must be at least 2, got {size}")
    for depth in range(max_depth, 0, -1):
        m = 2**depth
        if m <= size and (-size) % m <= max_pad * size:
            return depth
    return 1


@dataclass
class Pix2PixConfig(PresetConfig):
    """The pix2pix U-Net's config (kind ``"pix2pix_unet"``): ``nf`` filters in the first layer, ``n_down``
    downsamplings (None: :func:`unet_depth` of ``img_size``, saved resolved), ``dropout`` probability in the
    first ``dropout_blocks`` decoder blocks, ``norm`` ``"batch"`` or ``"instance"``."""

    kind: ClassVar[str] = "pix2pix_unet"

    nf: int = 64
    n_down: int | None = None
    dropout: float = 0.5
    dropout_blocks: int = 3
    norm: str = "batch"
    preset: str = "pix2pix"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_down is None:
            self.n_down = unet_depth(self.img_size)
        if self.nf < 1 or not 1 <= self.n_down <= 12 or not 0 <= self.dropout < 1 or self.dropout_blocks < 0:
            raise ValueError(f"Pix2PixConfig: need nf >= 1, 1 <= n_down <= 12, 0 <= dropout < 1 and "
                             f"dropout_blocks >= 0, got {self}")
        if self.norm not in _NORMS:
            raise ValueError(f"Pix2PixConfig: norm must be one of {list(_NORMS)}, got {self.norm!r}")


def _norm(kind: str, nf: int) -> nn.Module:
    return nn.InstanceNorm2d(nf, affine=True) if kind == "instance" else nn.BatchNorm2d(nf)


class UNetGenerator(nn.Module):
    """Gray ``(B, 1, H, W)`` in [-1, 1] -> raw ``(B, n_out, H, W)`` (before the output head); see the module."""

    def __init__(self, n_in: int, n_out: int, nf: int = 64, n_down: int = 8, dropout: float = 0.5,
                 dropout_blocks: int = 3, norm: str = "batch"):
        super().__init__()
        widths = [nf * min(2**i, 8) for i in range(n_down)]
        self.multiple = 2**n_down
        downs: list[nn.Module] = [nn.Conv2d(n_in, widths[0], 4, 2, 1)]
        for i in range(1, n_down):
            inner = i == n_down - 1
            # not in place: its input is also a skip connection
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=inner)]
            downs.append(nn.Sequential(*layers) if inner else nn.Sequential(*layers, _norm(norm, widths[i])))
        ups: list[nn.Module] = []
        for j, i in enumerate(range(n_down - 1, 0, -1)):  # decoder block j brings level i back to level i - 1
            ni = widths[i] if j == 0 else 2 * widths[i]
            layers = [nn.ReLU(inplace=True), nn.ConvTranspose2d(ni, widths[i - 1], 4, 2, 1, bias=False),
                      _norm(norm, widths[i - 1])]
            if j < dropout_blocks and dropout > 0:
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        ni = widths[0] if n_down == 1 else 2 * widths[0]
        ups.append(nn.Sequential(nn.ReLU(inplace=True), nn.ConvTranspose2d(ni, n_out, 4, 2, 1)))
        self.downs, self.ups = nn.ModuleList(downs), nn.ModuleList(ups)
        init_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, self.multiple)
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        x = self.ups[0](skips[-1])
        for j, up in enumerate(self.ups[1:]):
            x = up(torch.cat([x, skips[-2 - j]], dim=1))
        return x[..., :h, :w]


class _Pix2PixNet(nn.Module):
    def __init__(self, cfg: Pix2PixConfig):
        super().__init__()
        self.unet = UNetGenerator(1, cfg.n_out, cfg.nf, int(cfg.n_down or 1), cfg.dropout, cfg.dropout_blocks,
                                  cfg.norm)
        self.head = OutputHead(cfg.mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.unet(gray_channel(x)))


@register_generator("pix2pix_unet", Pix2PixConfig, split=one_group)
def pix2pix_unet(config: Pix2PixConfig, encoder_state_dict: dict | None = None) -> nn.Module:
    """The pix2pix U-Net for ImageNet-normalised gray ``(B, 3, H, W)`` -> ``(B, n_out, H, W)`` (no pretrained
    part: ``encoder_state_dict`` is always None)."""
    return _Pix2PixNet(config)
