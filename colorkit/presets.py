"""The preset table: the published colorization recipes colorkit can train, by name (standard library only).

A preset is a generator kind (:mod:`colorkit.archs`, registered in :data:`colorkit.models.GENERATORS`)
plus the recipe it was published with: the reconstruction loss, the default schedule, and for the
conditional GANs the critic and the adversarial settings. :func:`colorkit.recipes.preset_learner` builds a
learner from a preset (``colorize_learner(dls, preset=...)`` calls it), ``colorkit train --preset NAME``
trains one, and ``colorkit info`` names the preset of a saved model (:func:`preset_of`).

This module imports nothing heavy, so the command line can list the presets without loading torch.
docs/presets.md describes each preset, its source, and what we changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_PRESET", "PRESETS", "PRESET_NAMES", "Preset", "get_preset", "preset_of"]

DEFAULT_PRESET = "deoldify"
"""The preset of ``colorize_learner`` and ``colorkit train`` without ``preset``: today's ResNet U-Net recipe."""


@dataclass(frozen=True)
class Preset:
    """One published recipe.

    ``kind``: the generator kind; ``config``: its settings that differ from the kind's defaults;
    ``loss``: the reconstruction loss (``"l1"`` / ``"mse"``: on Lab chroma in lab mode, on RGB in rgb mode,
    see :class:`colorkit.recipes.ReconLoss`; any other name is one of :data:`colorkit.loss.LOSSES`);
    ``stages``: the default schedule as ``(size, epochs, lr, bs, frozen)`` rows (None: the ResNet U-Net's
    ``colorkit.train.DEFAULT_STAGES``); ``gan``: for conditional GANs, the adversarial settings
    (``l1_weight``, ``betas``, ``wd``, ``critic``: :func:`colorkit.critics.patch_critic` keywords);
    ``pretrained_encoder``: whether ``pretrained=True`` loads ImageNet weights into part of the network.
    ``source``, ``network``, ``training`` and ``changes`` are one-line descriptions (``colorkit train --help``,
    docs/presets.md).
    """

    name: str
    kind: str
    source: str
    network: str
    training: str
    loss: str = "feature"
    config: Mapping[str, Any] = field(default_factory=dict)
    stages: tuple[tuple[int, int, float, int, bool], ...] | None = None
    gan: Mapping[str, Any] | None = None
    pretrained_encoder: bool = False
    changes: str = ""

    @property
    def is_gan(self) -> bool:
        return self.gan is not None


_PATCH_GAN = {"nf": 64, "n_layers": 3, "norm": "batch", "conditional": True}  # 70x70 receptive field

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "deoldify", "resnet_unet",
        source="ResNet34 U-Net GAN paper; DeOldify's NoGAN",
        network="ResNet U-Net (ImageNet encoder), self-attention, blur, spectral norm",
        training="VGG16 feature loss, discriminative learning rates, progressive 64->128->220 px, NoGAN with --gan",
        loss="feature", pretrained_encoder=True,
        changes="lab output by default (measured better than rgb); NoGAN is the optional --gan phase",
    ),
    Preset(
        "pix2pix", "pix2pix_unet",
        source="Isola, Zhu, Zhou, Efros 2017, 'Image-to-Image Translation with Conditional Adversarial Networks'",
        network="U-Net-256: 8 down / 8 up 4x4 convs with skips, BatchNorm, dropout in the first 3 up blocks",
        training="conditional GAN, 70x70 PatchGAN, BCE + 100 x L1, Adam 2e-4 betas (0.5, 0.999), 256 px, "
                 "batch 1, 100 epochs flat + 100 decaying to 0",
        loss="l1", config={"nf": 64, "n_down": None, "preset": "pix2pix"},
        stages=((256, 200, 2e-4, 1, False),),
        gan={"l1_weight": 100.0, "betas": (0.5, 0.999), "wd": 0.0, "critic": _PATCH_GAN},
        changes="predicts Lab chroma from L (the authors' colorization mode; rgb available); dropout off at "
                "inference (deterministic output); the critic sees the image and its gray (= the input in lab "
                "mode); n_down=None picks the depth from the training size (8 at 256 px, 6 at 64 px) and "
                "inputs are padded to a multiple of 2**n_down",
    ),
    Preset(
        "landscape-cgan", "pix2pix_unet",
        source="a student project: pix2pix trained on 17.6k landscape photos",
        network="the pix2pix U-Net (as deep as 144 px allows: 5 down / 5 up) + 70x70 PatchGAN",
        training="BCE + 80 x MAE, Adam 2.5e-4 betas (0.5, 0.999), batch 99, 144 px, 60 epochs",
        loss="l1", config={"nf": 64, "n_down": None, "preset": "landscape-cgan"},
        stages=((144, 60, 2.5e-4, 99, False),),
        gan={"l1_weight": 80.0, "betas": (0.5, 0.999), "wd": 0.0, "critic": _PATCH_GAN},
        changes="the U-Net's depth follows the training size (5 at 144 px, see pix2pix); otherwise as pix2pix",
    ),
    Preset(
        "fusion", "fusion_net",
        source="Iizuka, Simo-Serra, Ishikawa 2016, 'Let there be Color!'",
        network="shared low-level net; mid-level net; global net on a 112x112 copy (4 conv + 3 FC -> 256-d) "
                "fused at every location (256+256 -> 256); colourisation net with nearest upsampling",
        training="MSE on Lab chroma (no class labels, so no classification branch)",
        loss="mse", config={"preset": "fusion"}, stages=((224, 10, 1e-3, 32, False),),
        changes="Adam + one-cycle instead of Adadelta; no classification branch; schedule is ours",
    ),
    Preset(
        "autoencoder", "conv_autoencoder",
        source="the 'beta' network of Emil Wallner's colorization blog post (2017)",
        network="plain conv encoder-decoder without skips (3 stride-2 convs, 3 nearest upsamplings)",
        training="MSE on Lab chroma",
        loss="mse", config={"preset": "autoencoder"}, stages=((256, 50, 1e-3, 16, False),),
        changes="Adam + one-cycle instead of RMSprop; schedule is ours",
    ),
    Preset(
        "autoencoder-fusion", "autoencoder_fusion",
        source="the 'full' network of the same blog post",
        network="the autoencoder plus a global embedding fused at the bottleneck: a ResNet's pooled features "
                "on a 224 px copy (in place of Inception-ResNet-v2)",
        training="MSE on Lab chroma; the embedding is frozen when pretrained",
        loss="mse", config={"preset": "autoencoder-fusion"}, stages=((256, 50, 1e-3, 16, True),),
        pretrained_encoder=True,
        changes="ResNet (default resnet34) pooled features instead of Inception-ResNet-v2 class scores; "
                "Adam + one-cycle; trained with the rest when not pretrained",
    ),
)}
"""The presets by name; :data:`DEFAULT_PRESET` first."""

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name`` (ValueError listing the valid names)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    return PRESETS[name]


def preset_of(generator: Mapping[str, Any]) -> str | None:
    """The preset a saved generator config (``config.json``'s ``generator`` section) was made with.

    Preset networks record it in their config (``"preset"``); a ResNet U-Net, also one saved before presets
    existed, is ``"deoldify"``; anything else is None.
    """
    name = generator.get("preset")
    if name:
        return str(name)
    return DEFAULT_PRESET if generator.get("kind", "resnet_unet") == "resnet_unet" else None
