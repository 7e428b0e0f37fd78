"""Learners from presets: :func:`preset_learner` builds what a preset (:mod:`colorkit.presets`) trains.

``colorize_learner(dls, preset="fusion")`` and ``colorkit train --preset fusion`` come here. A preset's
network is a registered generator kind (:mod:`colorkit.archs`) inside the usual
:class:`~colorkit.models.ColorizerNet`; its loss is :class:`ReconLoss` (or a named loss of
:data:`colorkit.loss.LOSSES`); a conditional-GAN preset's learner is a :class:`~colorkit.cgan.CGANLearner`
around the generator learner. Every default of the preset can be overridden by keyword: the network's
settings (``nf=32``, ``n_down=6``, ``global_size=64``, ...) and the GAN's (``l1_weight``, ``betas``, ``wd``,
``critic`` settings).
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from fastai.learner import Learner
from torch import Tensor, nn

from ._tensors import plain
from .color import AB_SCALE, rgb_to_lab
from .loss import LOSSES, make_loss
from .models import generator_kind
from .presets import DEFAULT_PRESET, Preset, get_preset
from .train import DEFAULT_STAGES, Stage

__all__ = ["RECON_LOSSES", "ReconLoss", "preset_config", "preset_learner", "preset_stages", "recon_loss"]

RECON_LOSSES = ("l1", "mse")
_GAN_SETTINGS = ("l1_weight", "betas", "wd", "critic")
# the ResNet U-Net's own settings of colorize_learner, with their defaults: a preset network has none of them
_UNET_DEFAULTS = {"self_attention": True, "blur": True, "spectral": True, "class_weight": 0.0, "rebalance": 0.0,
                  "temperature": 0.38}


class ReconLoss(nn.Module):
    """Mean ``metric`` (``"l1"`` or ``"mse"``) between RGB batches ``(B, 3, H, W)`` in [0, 1], measured in
    ``space``: ``"ab"``, the Lab chroma divided by ``AB_SCALE`` (about [-1, 1]; in lab mode the lightness is
    the input's, so this is all a colorizer can get wrong), or ``"rgb"``, RGB scaled to [-1, 1] (pix2pix's
    image range). Computed in float32, also under autocast."""

    def __init__(self, metric: str = "l1", space: str = "ab"):
        super().__init__()
        if metric not in RECON_LOSSES or space not in ("ab", "rgb"):
            raise ValueError(f"ReconLoss: metric must be one of {RECON_LOSSES} and space 'ab' or 'rgb', "
                             f"got {metric!r}, {space!r}")
        self.metric, self.space = metric, space

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = plain(pred), plain(targ).detach()
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, targ = pred.float(), targ.float()
            if self.space == "ab":
                pred, targ = rgb_to_lab(pred)[:, 1:] / AB_SCALE, rgb_to_lab(targ)[:, 1:] / AB_SCALE
            else:
                pred, targ = pred * 2 - 1, targ * 2 - 1
            return F.l1_loss(pred, targ) if self.metric == "l1" else F.mse_loss(pred, targ)

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, space={self.space!r}"


def recon_loss(name: str, mode: str = "lab", pretrained: bool = False) -> nn.Module:
    """The loss ``name``: ``"l1"`` / ``"mse"`` -> :class:`ReconLoss` on the chroma (lab ``mode``) or on RGB
    (rgb ``mode``); any other name -> :func:`colorkit.loss.make_loss` (``pretrained`` for its weights)."""
    if name in RECON_LOSSES:
        return ReconLoss(name, "ab" if mode == "lab" else "rgb")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(dict.fromkeys((*RECON_LOSSES, *LOSSES)))}")
    return make_loss(name, pretrained=pretrained)


def preset_stages(preset: str | Preset) -> list[Stage]:
    """The default training schedule of ``preset`` (deoldify: :data:`colorkit.train.DEFAULT_STAGES`)."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    if p.stages is None:
        return list(DEFAULT_STAGES)
    return [Stage(size, epochs, lr=lr, bs=bs, frozen=frozen) for size, epochs, lr, bs, frozen in p.stages]


def _config_fields(p: Preset) -> set[str]:
    return {f.name for f in fields(generator_kind(p.kind).config)}


def preset_config(preset: str, img_size: int, mode: str = "lab", arch: str | None = None, **settings: Any) -> Any:
    """The generator config of ``preset`` for ``img_size`` px training, with ``mode``, ``arch`` (kinds with a
    ResNet; ``"resnet34"``, the default, is accepted by every kind) and network ``settings`` overriding the
    preset's. Unknown settings are a ValueError listing the known ones."""
    p = get_preset(preset)
    names = _config_fields(p)
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ValueError(f"preset {p.name!r} ({p.kind}) has no setting(s) {unknown}; known: {sorted(names)}")
    values = {**p.config, **settings, "img_size": int(img_size), "mode": mode}
    if arch is not None and "arch" in names:
        values["arch"] = arch
    elif arch not in (None, "resnet34"):
        raise ValueError(f"preset {p.name!r} has no ResNet encoder: arch={arch!r} does not apply")
    return generator_kind(p.kind).config(**values)


def preset_learner(
    dls: Any,
    preset: str,
    *,
    pretrained: bool = True,
    weights: str | Path | None = None,
    mode: str = "lab",
    arch: str | None = None,
    loss: str | None = None,
    loss_func: nn.Module | None = None,
    metrics: Any = None,
    precision: str = "fp32",
    config: Any = None,
    unet_settings: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Learner:
    """A learner training ``preset`` (a name in :data:`colorkit.presets.PRESETS`) on ``dls``.

    The network is built for ``dls``'s image size in ``mode`` (``"lab"``: Lab chroma out, ``"rgb"``: RGB)
    from the preset's config, with the network settings in ``kwargs`` (e.g. ``nf=32``) overriding it, or is
    ``config`` itself. ``pretrained`` loads ImageNet weights into the part that has them
    (autoencoder-fusion's ResNet, from torchvision's cache or ``weights``; offline that is a
    :class:`~colorkit.models.WeightsUnavailableError`) and is ignored by networks trained from scratch.
    ``loss`` overrides the preset's reconstruction loss by name (:func:`recon_loss`), ``loss_func`` by
    module. Conditional-GAN presets return a :class:`~colorkit.cgan.CGANLearner`; their settings
    ``l1_weight``, ``betas``, ``wd`` and ``critic`` (a dict of :func:`~colorkit.critics.patch_critic` keywords
    merged into the preset's) can be given here too. Other keywords go to fastai's ``Learner``.
    ``unet_settings`` are the ResNet U-Net options ``colorize_learner`` passes on: any not at its default is
    a ValueError (they do not apply to a preset network).
    """
    from .learner import colorize_learner

    p = get_preset(preset)
    if p.name == DEFAULT_PRESET:
        raise ValueError(f"preset {DEFAULT_PRESET!r} is colorize_learner's own recipe: call colorize_learner(dls)")
    bad = [f"{k}={v!r}" for k, v in (unet_settings or {}).items() if v != _UNET_DEFAULTS.get(k, v)]
    if bad:
        raise ValueError(f"{', '.join(bad)}: settings of the deoldify preset's ResNet U-Net, not of {p.name!r}")
    net = {k: kwargs.pop(k) for k in list(kwargs) if k in _config_fields(p)}
    gan = {k: kwargs.pop(k) for k in list(kwargs) if k in _GAN_SETTINGS and (p.is_gan or k != "wd")}
    unknown = sorted(set(kwargs) - set(inspect.signature(Learner.__init__).parameters))
    if unknown:
        known = sorted(_config_fields(p) | (set(_GAN_SETTINGS) if p.is_gan else set()))
        raise ValueError(f"preset {p.name!r} has no setting(s) {unknown}; its settings: {known} (and fastai "
                         "Learner's keywords)")
    if gan and not p.is_gan:
        raise ValueError(f"{sorted(gan)}: GAN settings, but preset {p.name!r} is not a GAN")
    if config is None:
        size = int(dls.one_batch()[0].shape[-1])
        config = preset_config(p.name, size, mode=mode, arch=arch, **net)
    elif net or config.kind != p.kind:
        raise ValueError(f"preset {p.name!r} needs a {p.kind} config and no network settings with it, got a "
                         f"{config.kind} config and {sorted(net)}")
    loss_name = loss or p.loss
    if loss_func is None:
        loss_func = recon_loss(loss_name, config.mode, pretrained=pretrained)
    else:
        loss_name = "custom"
    learn = colorize_learner(dls, pretrained=pretrained and p.pretrained_encoder, weights=weights,
                             loss_func=loss_func, metrics=metrics, precision="fp32" if p.is_gan else precision,
                             config=config, **({} if p.is_gan else kwargs))
    learn.loss_name, learn.preset = loss_name, p.name
    if not p.is_gan:
        return learn
    from .cgan import cgan_learner

    settings = {k: v for k, v in {**p.gan, **gan}.items() if k != "critic"}
    critic = {**p.gan.get("critic", {}), **(gan.get("critic") or {})}
    return cgan_learner(learn, critic_settings=critic, precision=precision, **settings, **kwargs)
