"""The generator learner (``colorize_learner``), ``Learner.colorize`` and the safe saved-model format.

A saved colorizer is a folder with ``model.safetensors`` (weights only) and ``config.json`` (what to
rebuild and how it was trained), plus ``metrics.json`` when known. Loading it never unpickles code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastai.callback.progress  # noqa: F401  (progress bars)
import fastai.callback.schedule  # noqa: F401  (attaches fit_one_cycle, lr_find)
import torch
from fastai.learner import Learner
from fastai.vision.learner import unet_learner
from fastcore.basics import patch
from fastcore.meta import delegates
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .infer import DEFAULT_RENDER_SIZE, colorize_image, colorize_images
from .io import atomic_write, write_json_atomic
from .colorclass import ColorClassLoss
from .loss import make_loss
from .precision import BF16Training, resolve_precision
from .metrics import colorize_metrics
from .models import (
    ARCHS,
    ColorizerNet,
    GeneratorConfig,
    create_generator,
    encoder_state_dict,
    generator_split,
    load_encoder_weights,
)

__all__ = ["Colorizer", "STARTER_MODEL", "colorize_learner", "load_colorizer", "save_colorizer", "FORMAT_VERSION"]

FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE = "model.safetensors", "config.json", "metrics.json"
# the starter model shipped inside the package (see docs/starter-model.md)
STARTER_MODEL: Path = Path(__file__).resolve().parent / "weights" / "starter"


@delegates(unet_learner, but=["normalize", "n_out", "splitter", "weights", "pretrained"])
def colorize_learner(
    dls,
    arch: str = "resnet34",
    pretrained: bool = True,
    weights: str | Path | None = None,
    mode: str = "lab",
    loss_func: nn.Module | None = None,
    loss_pretrained: bool | None = None,
    metrics: Any = None,
    self_attention: bool = True,
    blur: bool = True,
    spectral: bool = True,
    wd: float = 1e-3,
    loss: str = "feature",
    class_weight: float = 0.0,
    rebalance: float = 0.0,
    temperature: float = 0.38,
    precision: str = "fp32",
    **kwargs: Any,
) -> Learner:
    """A fastai ``Learner`` for a ResNet U-Net colorizer, built with ``unet_learner``.

    ``dls`` yields (gray, colour) batches ``(B, 3, H, W)`` in [0, 1] (see :func:`colorkit.colorize_dls`).
    ``pretrained`` loads ImageNet encoder weights (torchvision cache under ``TORCH_HOME``; ``weights``
    gives a local file instead) and freezes the encoder. ``loss`` names the generator loss
    (``"feature"``: VGG16-bn feature loss, pretrained when ``loss_pretrained`` (default: ``pretrained``)
    is true; ``"l1"``: L1 on Lab chroma); ``loss_func`` overrides it. ``class_weight > 0`` gives the
    network a colour-class head (a distribution over ab bins, decoded with the annealed mean at
    ``temperature``) and adds ``class_weight`` times its cross-entropy to the loss, class-rebalanced by
    ``rebalance`` (0..1) (see :mod:`colorkit.colorclass`). ``precision`` is ``"fp32"``, ``"bf16"``
    (autocast + channels_last) or ``"auto"`` (bf16 where the hardware has it, see :mod:`colorkit.precision`).
    Parameter groups: encoder stem+layer1-2, encoder layer3-4, decoder, so ``slice(lo, hi)`` works.
    """
    size = int(dls.one_batch()[0].shape[-1])
    head = "classes" if class_weight > 0 else "regress"
    cfg = GeneratorConfig(arch, mode, self_attention, blur, spectral, img_size=size, chroma_head=head,
                          temperature=temperature)
    enc_sd = encoder_state_dict(cfg.arch, pretrained, weights)  # fails early and clearly when offline
    loss_name = "custom" if loss_func is not None else loss
    if loss_func is None:
        loss_func = make_loss(loss, pretrained=pretrained if loss_pretrained is None else loss_pretrained)
    if metrics is None:
        metrics = colorize_metrics()
    prec = resolve_precision(precision, getattr(dls, "device", None))
    cbs = list(kwargs.pop("cbs", None) or [])
    if prec == "bf16":
        cbs.append(BF16Training())
    if head == "classes":
        cbs.append(ColorClassLoss(class_weight, rebalance))
    ctor, _ = ARCHS[cfg.arch]
    learn = unet_learner(
        dls, ctor, normalize=False, n_out=cfg.n_out, pretrained=False, loss_func=loss_func,
        splitter=generator_split, metrics=metrics, wd=wd, cbs=cbs, **cfg.unet_kwargs(), **kwargs,
    )
    if enc_sd is not None:
        load_encoder_weights(learn.model, cfg.arch, enc_sd)
    learn.model = ColorizerNet(learn.model, cfg.mode, cfg.chroma_head, cfg.bin_step, cfg.temperature)
    learn.model.config = cfg
    learn.colorizer_config = cfg
    learn.pretrained = enc_sd is not None
    learn.precision = prec
    learn.loss_name = loss_name
    if learn.pretrained:
        learn.freeze()
    return learn


def _generator(obj: Any) -> ColorizerNet:
    model = obj.model if isinstance(obj, (Learner, Colorizer)) else obj
    if isinstance(model, ColorizerNet):
        return model
    # a GANLearner's model wraps the generator
    gen = getattr(model, "generator", None)
    if isinstance(gen, ColorizerNet):
        return gen
    raise TypeError(f"expected a colorize_learner, Colorizer or ColorizerNet, got {type(model).__name__}")


@patch
def colorize(self: Learner, img: Any, render_size: int | None = None, bs: int = 4, strength: float = 1.0) -> Any:
    """Colorize a photo (path, PIL image, array or tensor) or a list of them -> PIL image(s), full size.

    ``strength`` scales the predicted colour (0 gray, 1 as predicted, up to 2 for more saturated)."""
    rs = render_size or getattr(self, "render_size", DEFAULT_RENDER_SIZE)
    model = _generator(self)
    if isinstance(img, (list, tuple)):
        return colorize_images(model, img, render_size=rs, bs=bs, strength=strength)
    return colorize_image(model, img, render_size=rs, strength=strength)


def save_colorizer(
    obj: Any,
    path: str | Path,
    *,
    half: bool = True,
    render_size: int | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> Path:
    """Save a learner's (or Colorizer's / ColorizerNet's) generator as ``path/model.safetensors`` + JSON.

    ``half`` stores float16 weights (half the size; loading casts back to float32). ``training`` and
    ``metrics`` are recorded in ``config.json`` and ``metrics.json``.
    """
    model = _generator(obj)
    cfg: GeneratorConfig = model.config
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in model.state_dict().items()}
    atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(sd, tmp, metadata={"format": "colorkit"}))
    prev = getattr(obj, "config", {}) if isinstance(obj, Colorizer) else {}
    config = {
        "format_version": FORMAT_VERSION,
        "colorkit_version": __version__,
        "generator": cfg.to_dict(),
        "render_size": render_size or getattr(obj, "render_size", None) or DEFAULT_RENDER_SIZE,
        "dtype": "float16" if half else "float32",
        "n_params": sum(p.numel() for p in model.parameters()),
        "training": training if training is not None else prev.get("training", {}),
    }
    write_json_atomic(path / CONFIG_FILE, config)
    if metrics is not None:
        write_json_atomic(path / METRICS_FILE, metrics)
    return path


class Colorizer:
    """A loaded colorizer: ``clr.colorize(img)`` -> PIL image at the input's size."""

    def __init__(self, model: ColorizerNet, config: dict, metrics: dict | None = None, path: Path | None = None):
        self.model, self.config, self.metrics, self.path = model.eval(), config, metrics or {}, path
        self.render_size = int(config.get("render_size", DEFAULT_RENDER_SIZE))

    def colorize(self, img: Any, render_size: int | None = None, bs: int = 4,
                 strength: float = 1.0) -> Image.Image | list[Image.Image]:
        """Colorize a photo or a list of photos (paths, PIL images, arrays or tensors).

        ``strength`` scales the predicted colour (0 gray, 1 as predicted, up to 2 for more saturated)."""
        rs = render_size or self.render_size
        if isinstance(img, (list, tuple)):
            return colorize_images(self.model, img, render_size=rs, bs=bs, strength=strength)
        return colorize_image(self.model, img, render_size=rs, strength=strength)

    def to(self, device: str | torch.device) -> Colorizer:
        self.model.to(device)
        return self

    def save(self, path: str | Path, half: bool = True) -> Path:
        return save_colorizer(self, path, half=half, metrics=self.metrics or None)

    def __repr__(self) -> str:
        g = self.config.get("generator", {})
        return (f"Colorizer(arch={g.get('arch')}, mode={g.get('mode')}, "
                f"render_size={self.render_size}, path={self.path})")


def load_colorizer(path: str | Path | None = None, device: str | torch.device | None = None) -> Colorizer:
    """Load a colorizer saved by :func:`save_colorizer` (no pickles: safetensors + JSON).

    Without ``path``, loads the starter model shipped with colorkit (:data:`STARTER_MODEL`).
    """
    path = Path(path) if path is not None else STARTER_MODEL
    cfg_file, w_file = path / CONFIG_FILE, path / WEIGHTS_FILE
    for f in (cfg_file, w_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: not found; a colorizer folder holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(cfg_file.read_text())
        gen = dict(config["generator"])
        gen.setdefault("mode", "rgb")  # configs from before lab became the default always meant rgb
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{cfg_file}: not a colorkit config ({e})") from None
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{cfg_file}: format version {config['format_version']} is newer than this colorkit "
                         f"({FORMAT_VERSION}); upgrade colorkit")
    model = create_generator(pretrained=False, **gen)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(w_file)).items()}
    model.load_state_dict(sd)
    metrics_file = path / METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    clr = Colorizer(model, config, metrics, path)
    return clr.to(device) if device is not None else clr


def _learner_save_colorizer(self: Learner, path: str | Path, **kwargs: Any) -> Path:
    """``learn.save_colorizer("model/")``: see :func:`colorkit.learner.save_colorizer`."""
    return save_colorizer(self, path, **kwargs)


# attached by hand rather than with @patch, which would rebind this module's ``save_colorizer`` name
Learner.save_colorizer = _learner_save_colorizer
