"""The two encoder-decoder colorizers of Emil Wallner's colorization blog post (2017), written for colorkit.

- ``"conv_autoencoder"`` (the post's "beta" network): 3x3 convs with ReLU, three of stride 2 down to 1/8 of
  the input (``nf .. 8nf`` filters), then convs with three nearest-neighbour upsamplings back to full size;
  no skip connections, no normalisation.
- ``"autoencoder_fusion"`` (the post's "full" network): an encoder like the beta's; a global embedding of
  the whole photo (the post used Inception-ResNet-v2's class scores; we use a torchvision ResNet's pooled
  features on a ``global_size`` copy, ImageNet weights when ``pretrained``) appended to the bottleneck
  features at every location and fused by a 1x1 conv; then the decoder.

Both take the lightness and predict the chroma (or RGB); inputs are padded to a multiple of 8 and the output
cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import ARCHS, arch_name, encoder_state_dict, register_generator, resnet_with_weights
from .blocks import OutputHead, PresetConfig, conv_relu, gray_channel, one_group, pad_to_multiple

__all__ = ["AutoencoderConfig", "AutoencoderFusionConfig", "autoencoder_fusion", "conv_autoencoder",
           "fusion_split"]


def _up() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")


def _check_nf(cfg: PresetConfig, nf: int) -> None:
    if nf < 4:
        raise ValueError(f"{type(cfg).__name__}: nf must be at least 4, got {nf}")


@dataclass
class AutoencoderConfig(PresetConfig):
    """The plain autoencoder's config (kind ``"conv_autoencoder"``): ``nf`` sets every width (64 in the post)."""

    kind: ClassVar[str] = "conv_autoencoder"

    nf: int = 64
    preset: str = "autoencoder"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nf(self, self.nf)


class _Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        nf = cfg.nf
        self.encoder = nn.Sequential(
            conv_relu(1, nf), conv_relu(nf, nf, 2), conv_relu(nf, 2 * nf), conv_relu(2 * nf, 2 * nf, 2),
            conv_relu(2 * nf, 4 * nf), conv_relu(4 * nf, 4 * nf, 2), conv_relu(4 * nf, 8 * nf),
            conv_relu(8 * nf, 4 * nf), conv_relu(4 * nf, 2 * nf),
        )
        self.decoder = nn.Sequential(
            _up(), conv_relu(2 * nf, nf), _up(), conv_relu(nf, nf // 2),
            nn.Conv2d(nf // 2, cfg.n_out, 3, padding=1), OutputHead(cfg.mode), _up(),
        )

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(gray_channel(x), 8)
        return self.decoder(self.encoder(x))[..., :h, :w]


@register_generator("conv_autoencoder", AutoencoderConfig, split=one_group)
def conv_autoencoder(config: AutoencoderConfig, encoder_state_dict: dict | None = None) -> nn.Module:
    """The plain autoencoder for ImageNet-normalised gray ``(B, 3, H, W)`` -> ``(B, n_out, H, W)`` (trained
    from scratch: ``encoder_state_dict`` is always None)."""
    return _Autoencoder(config)


@dataclass
class AutoencoderFusionConfig(PresetConfig):
    """The autoencoder with a global embedding (kind ``"autoencoder_fusion"``): ``nf`` sets the widths, ``arch``
    the torchvision ResNet whose pooled features are the embedding, ``global_size`` the side of its input."""

    kind: ClassVar[str] = "autoencoder_fusion"

    nf: int = 64
    arch: str = "resnet34"
    global_size: int = 224
    preset: str = "autoencoder-fusion"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_nf(self, self.nf)
        self.arch = arch_name(self.arch)
        if self.global_size < 32:
            raise ValueError(f"AutoencoderFusionConfig: global_size must be at least 32, got {self.global_size}")


class _AutoencoderFusion(nn.Module):
    def __init__(self, cfg: AutoencoderFusionConfig, state_dict: dict | None = None):
        super().__init__()
        nf, self.global_size = cfg.nf, cfg.global_size
        if state_dict is not None:
            resnet = resnet_with_weights(cfg.arch, state_dict)
        else:
            resnet = ARCHS[cfg.arch][0](weights=None)
        n_embed = resnet.fc.in_features
        self.embedding = nn.Sequential(*list(resnet.children())[:-1], nn.Flatten())  # (B, n_embed)
        self.encoder = nn.Sequential(
            conv_relu(1, nf, 2), conv_relu(nf, 2 * nf), conv_relu(2 * nf, 2 * nf, 2), conv_relu(2 * nf, 4 * nf),
            conv_relu(4 * nf, 4 * nf, 2), conv_relu(4 * nf, 8 * nf), conv_relu(8 * nf, 8 * nf),
            conv_relu(8 * nf, 4 * nf),
        )
        self.fuse = nn.Sequential(nn.Conv2d(4 * nf + n_embed, 4 * nf, 1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            conv_relu(4 * nf, 2 * nf), _up(), conv_relu(2 * nf, nf), _up(), conv_relu(nf, nf // 2),
            conv_relu(nf // 2, nf // 4), nn.Conv2d(nf // 4, cfg.n_out, 3, padding=1), OutputHead(cfg.mode), _up(),
        )

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, 8)
        big = x.shape[-1] > self.global_size or x.shape[-2] > self.global_size
        copy = F.interpolate(x, size=(self.global_size, self.global_size), mode="bilinear", align_corners=False,
                             antialias=big)
        e = self.embedding(copy)  # the ResNet sees the ImageNet-normalised gray it was trained on
        f = self.encoder(gray_channel(x))  # (B, 4nf, H/8, W/8)
        f = self.fuse(torch.cat([f, e[:, :, None, None].expand(-1, -1, *f.shape[-2:])], dim=1))
        return self.decoder(f)[..., :h, :w]


def fusion_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups of the autoencoder with embedding: the ResNet, then the rest (so ``learn.freeze()``
    keeps a pretrained embedding fixed, as the post's frozen Inception)."""
    net = model.unet
    emb = list(net.embedding.parameters())
    ids = {id(p) for p in emb}
    return [emb, [p for p in net.parameters() if id(p) not in ids]]


def _fusion_weights(config: AutoencoderFusionConfig, pretrained: bool = False,
                    weights: str | Path | None = None) -> dict | None:
    return encoder_state_dict(config.arch, pretrained, weights)


@register_generator("autoencoder_fusion", AutoencoderFusionConfig, split=fusion_split, encoder_weights=_fusion_weights)
def autoencoder_fusion(config: AutoencoderFusionConfig, encoder_state_dict: dict | None = None) -> nn.Module:
    """The autoencoder with a ResNet embedding for ImageNet-normalised gray ``(B, 3, H, W)`` ->
    ``(B, n_out, H, W)``; ``encoder_state_dict``: torchvision ImageNet weights for the ResNet, or None."""
    return _AutoencoderFusion(config, encoder_state_dict)
