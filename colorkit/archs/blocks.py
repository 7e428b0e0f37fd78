"""Pieces the preset networks share: their config's head fields, the gray input, the output head, padding.

Every preset network (:mod:`colorkit.archs`) is wrapped by :class:`colorkit.models.ColorizerNet`, which hands
it ImageNet-normalised gray ``(B, 3, H, W)`` and expects ``(B, n_out, H, W)`` back: Lab chroma in
``(-1, 1)`` (times ``AB_SCALE`` gives ``a, b``) in lab mode, RGB in ``(-0.05, 1.05)`` in rgb mode. These
networks were published on the lightness alone, so :func:`gray_channel` gives them one channel in
``[-1, 1]``, and :class:`OutputHead` squashes their last layer into the range the wrapper expects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from ..color import IMAGENET_MEAN, IMAGENET_STD
from ..models import check_head

__all__ = ["OutputHead", "PresetConfig", "conv_relu", "gray_channel", "init_normal", "one_group", "pad_to_multiple"]


@dataclass
class PresetConfig:
    """The head fields every preset network's config has (see :class:`colorkit.models.GeneratorConfig`), and
    ``preset``: the recipe the network was made for (recorded in ``config.json``; ``colorkit info`` shows
    it). Preset networks regress the chroma (``chroma_head="regress"``); the colour-class head is the
    ResNet U-Net's."""

    kind: ClassVar[str] = ""

    mode: str = "lab"
    img_size: int = 64
    chroma_head: str = "regress"
    bin_step: float = 10.0
    temperature: float = 0.38
    preset: str = ""

    def __post_init__(self) -> None:
        check_head(self.mode, self.chroma_head, self.bin_step, self.temperature)
        if self.chroma_head != "regress":
            raise ValueError(f"{type(self).__name__}: the preset networks regress the chroma "
                             f"(chroma_head='regress'), got {self.chroma_head!r}")
        if int(self.img_size) < 8:
            raise ValueError(f"{type(self).__name__}: img_size must be at least 8, got {self.img_size}")

    @property
    def n_out(self) -> int:
        return 3 if self.mode == "rgb" else 2

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


def gray_channel(x: Tensor) -> Tensor:
    """ImageNet-normalised gray ``(B, 3, H, W)`` (three equal channels) -> gray ``(B, 1, H, W)`` in [-1, 1]."""
    return (x[:, :1] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 2 - 1


class OutputHead(nn.Module):
    """The last activation: ``tanh`` for Lab chroma (lab mode), a sigmoid stretched to (-0.05, 1.05) for RGB."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh() if self.mode == "lab" else x.sigmoid() * 1.1 - 0.05

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` at the bottom and right (edge values repeated) so both sides are multiples of
    ``multiple``; returns the padded batch and the original ``(H, W)`` to crop the output back to."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def conv_relu(ni: int, nf: int, stride: int = 1, bn: bool = False) -> nn.Sequential:
    """3x3 convolution (padding 1, ``stride``), BatchNorm when ``bn``, ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(nf))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix's initialisation: conv weights ~ N(0, ``std``), norm weights ~ N(1, ``std``), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def one_group(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups of a network trained as a whole (no pretrained part): one group."""
    return [list(model.parameters())]
