"""The global + local fusion network of Iizuka, Simo-Serra and Ishikawa 2016 ("Let there be Color!"),
written for colorkit, without the classification branch (we have no class labels).

- a low-level network (six 3x3 convs, three of stride 2: ``nf .. 8nf`` filters, 1/8 of the input size),
  shared by the two paths below;
- a mid-level network (two 3x3 convs -> ``4nf`` features at 1/8 size);
- a global network on a ``global_size`` copy of the input (the low-level net, four 3x3 convs, two of stride
  2, then three fully connected layers ``16nf -> 8nf -> 4nf``): one ``4nf``-d vector per image;
- the fusion layer: the global vector appended to the mid-level features at every location, then a 1x1
  conv ``8nf -> 4nf`` (256 + 256 -> 256 with ``nf=64``);
- the colourisation network: 3x3 convs with two nearest-neighbour upsamplings, the chroma (or RGB) out at
  1/2 size, upsampled to the input size.

Every conv is followed by BatchNorm and ReLU (the output layer by :class:`~colorkit.archs.blocks.OutputHead`).
Inputs are padded to a multiple of 8 and the output cropped back, so any size renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import register_generator
from .blocks import OutputHead, PresetConfig, conv_relu, gray_channel, one_group, pad_to_multiple

__all__ = ["FusionConfig", "FusionNet", "fusion_net"]


@dataclass
class FusionConfig(PresetConfig):
    """The fusion network's config (kind ``"fusion_net"``): ``nf`` sets every width (64 in the paper),
    ``global_size`` the side of the global network's copy of the input (at least 32 px)."""

    kind: ClassVar[str] = "fusion_net"

    nf: int = 64
    global_size: int = 112
    preset: str = "fusion"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nf < 2 or self.global_size < 32:
            raise ValueError(f"FusionConfig: need nf >= 2 and global_size >= 32, got "
                             f"nf={self.nf}, global_size={self.global_size}")


class FusionNet(nn.Module):
    """Gray ``(B, 1, H, W)`` in [-1, 1] -> ``(B, n_out, H, W)`` after ``head``; see the module."""

    def __init__(self, n_out: int, nf: int = 64, global_size: int = 112, mode: str = "lab"):
        super().__init__()
        self.global_size = int(global_size)
        self.low = nn.Sequential(
            conv_relu(1, nf, 2, bn=True), conv_relu(nf, 2 * nf, bn=True),
            conv_relu(2 * nf, 2 * nf, 2, bn=True), conv_relu(2 * nf, 4 * nf, bn=True),
            conv_relu(4 * nf, 4 * nf, 2, bn=True), conv_relu(4 * nf, 8 * nf, bn=True),
        )
        self.mid = nn.Sequential(conv_relu(8 * nf, 8 * nf, bn=True), conv_relu(8 * nf, 4 * nf, bn=True))
        cells = math.ceil(self.global_size / 32) ** 2  # five stride-2 convs, each ceil(n / 2)
        self.glob = nn.Sequential(
            conv_relu(8 * nf, 8 * nf, 2, bn=True), conv_relu(8 * nf, 8 * nf, bn=True),
            conv_relu(8 * nf, 8 * nf, 2, bn=True), conv_relu(8 * nf, 8 * nf, bn=True), nn.Flatten(),
            nn.Linear(8 * nf * cells, 16 * nf), nn.ReLU(inplace=True),
            nn.Linear(16 * nf, 8 * nf), nn.ReLU(inplace=True),
            nn.Linear(8 * nf, 4 * nf), nn.ReLU(inplace=True),
        )
        self.fuse = nn.Sequential(nn.Conv2d(8 * nf, 4 * nf, 1), nn.ReLU(inplace=True))
        self.color = nn.Sequential(
            conv_relu(4 * nf, 2 * nf, bn=True), nn.Upsample(scale_factor=2, mode="nearest"),
            conv_relu(2 * nf, nf, bn=True), conv_relu(nf, nf, bn=True), nn.Upsample(scale_factor=2, mode="nearest"),
            conv_relu(nf, nf // 2, bn=True), nn.Conv2d(nf // 2, n_out, 3, padding=1), OutputHead(mode),
        )

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, 8)
        small = F.interpolate(x, size=(self.global_size, self.global_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.global_size or x.shape[-2] > self.global_size)
        g = self.glob(self.low(small))  # (B, 4nf)
        m = self.mid(self.low(x))  # (B, 4nf, H/8, W/8)
        fused = self.fuse(torch.cat([m, g[:, :, None, None].expand(-1, -1, *m.shape[-2:])], dim=1))
        out = self.color(fused)  # (B, n_out, H/2, W/2)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=False)
        return out[..., :h, :w]


class _FusionColorizer(nn.Module):
    def __init__(self, cfg: FusionConfig):
        super().__init__()
        self.net = FusionNet(cfg.n_out, cfg.nf, cfg.global_size, cfg.mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(gray_channel(x))


@register_generator("fusion_net", FusionConfig, split=one_group)
def fusion_net(config: FusionConfig, encoder_state_dict: dict | None = None) -> nn.Module:
    """The fusion network for ImageNet-normalised gray ``(B, 3, H, W)`` -> ``(B, n_out, H, W)`` (trained
    from scratch: ``encoder_state_dict`` is always None)."""
    return _FusionColorizer(config)
