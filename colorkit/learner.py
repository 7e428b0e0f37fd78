"""The generator learner (``colorize_learner``), ``Learner.colorize`` and saving / loading colorizers.

A saved colorizer is a folder with ``model.safetensors`` (weights only) and ``config.json`` (a
:class:`~colorkit.modelcard.ModelCard`: what to rebuild and how it was trained), plus ``metrics.json`` when
known. Loading it rebuilds the generator's registered kind (:func:`colorkit.models.build_generator`) and
never unpickles code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastai.callback.progress  # noqa: F401  (progress bars)
import fastai.callback.schedule  # noqa: F401  (attaches fit_one_cycle, lr_find)
import torch
from fastai.learner import Learner
from fastcore.basics import patch
from fastcore.meta import delegates
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from ._tensors import device_of
from .callbacks import BF16Training
from .colorclass import ColorClassLoss
from .infer import DEFAULT_RENDER_SIZE, colorize_image, colorize_images, inference_format
from .io import atomic_write, write_json_atomic
from .loss import make_loss
from .metrics import colorize_metrics
from .modelcard import FORMAT_VERSION, METRICS_FILE, STARTER_MODEL, WEIGHTS_FILE, ModelCard, read_metrics
from .models import ColorizerNet, GeneratorConfig, generator_config, generator_kind
from .precision import resolve_precision, to_precision
from .presets import DEFAULT_PRESET
from .train import fit_progressive  # noqa: F401  (attaches Learner.fit_progressive, as fastai's fine_tune)

__all__ = ["Colorizer", "FORMAT_VERSION", "STARTER_MODEL", "colorize_learner", "generator_of", "load_colorizer",
           "save_colorizer"]


@delegates(Learner, but=["dls", "model", "loss_func", "splitter", "metrics", "wd"])
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
    wd: float | None = None,
    loss: str | None = None,
    class_weight: float = 0.0,
    rebalance: float = 0.0,
    temperature: float = 0.38,
    precision: str = "fp32",
    config: Any = None,
    preset: str = DEFAULT_PRESET,
    **kwargs: Any,
) -> Learner:
    """A fastai ``Learner`` for a colorizer: by default a ResNet U-Net, or any registered kind's ``config``.

    ``dls`` yields (gray, colour) batches ``(B, 3, H, W)`` in [0, 1] (see :func:`colorkit.colorize_dls`).
    ``arch``, ``mode``, ``self_attention``, ``blur``, ``spectral`` and ``temperature`` describe the ResNet
    U-Net (:class:`colorkit.models.GeneratorConfig`); ``config`` (a config of any kind registered in
    :data:`colorkit.models.GENERATORS`) replaces them. ``pretrained`` loads ImageNet encoder weights
    (torchvision cache under ``TORCH_HOME``; ``weights`` gives a local file instead) and freezes the encoder.
    ``loss`` names the generator loss in :data:`colorkit.loss.LOSSES` (``"feature"``: VGG16-bn feature loss,
    pretrained when ``loss_pretrained`` (default: ``pretrained``) is true; ``"l1"``: L1 on Lab chroma);
    ``loss_func`` overrides it. ``class_weight > 0`` gives the ResNet U-Net a colour-class head (a
    distribution over ab bins, decoded with the annealed mean at ``temperature``) and adds ``class_weight``
    times its cross-entropy to the loss, class-rebalanced by ``rebalance`` (0..1) (see
    :mod:`colorkit.colorclass`); without a class term, ``rebalance`` weights the ``"l1"`` loss's pixels instead
    (:class:`colorkit.loss.ChromaL1Loss`). ``wd``: weight decay (default 1e-3). ``precision`` is ``"fp32"``, ``"bf16"``
    (autocast + channels_last) or ``"auto"`` (bf16 where the hardware has it, see :mod:`colorkit.precision`).
    Parameter groups come from the kind (ResNet U-Net: encoder stem+layer1-2, encoder layer3-4, decoder), so
    ``slice(lo, hi)`` works. Other keywords go to fastai's ``Learner`` (``cbs``, ``opt_func``, ``path``, ...).

    ``preset`` (a name in :data:`colorkit.presets.PRESETS`, default ``"deoldify"``: all of the above) trains
    another published recipe instead: see :func:`colorkit.recipes.preset_learner`, which takes ``pretrained``,
    ``weights``, ``mode``, ``arch``, ``loss`` (default: the preset's), ``loss_func``, ``metrics``,
    ``precision``, ``config`` and the preset's own settings as keywords (``nf=32``, ``l1_weight=50``, ...).
    """
    if preset != DEFAULT_PRESET:
        from .recipes import preset_learner

        unet = dict(self_attention=self_attention, blur=blur, spectral=spectral, class_weight=class_weight,
                    rebalance=rebalance, temperature=temperature)
        return preset_learner(dls, preset, pretrained=pretrained, weights=weights, mode=mode, arch=arch, loss=loss,
                              loss_func=loss_func, metrics=metrics, precision=precision, config=config,
                              unet_settings=unet, **({} if wd is None else {"wd": wd}), **kwargs)
    loss, wd = loss or "feature", 1e-3 if wd is None else wd
    if config is None:
        size = int(dls.one_batch()[0].shape[-1])
        head = "classes" if class_weight > 0 else "regress"
        config = GeneratorConfig(arch, mode, self_attention, blur, spectral, img_size=size, chroma_head=head,
                                 temperature=temperature)
    cfg = generator_config(config)
    kind = generator_kind(cfg.kind)
    enc_sd = kind.encoder_weights(cfg, pretrained, weights)  # fails early and clearly when offline
    loss_name = "custom" if loss_func is not None else loss
    if loss_func is None:
        l1_rebalance = rebalance if class_weight == 0 else 0.0  # else it is the class term's
        loss_func = make_loss(loss, pretrained=pretrained if loss_pretrained is None else loss_pretrained,
                              rebalance=l1_rebalance)
    if metrics is None:
        metrics = colorize_metrics()
    prec = resolve_precision(precision, getattr(dls, "device", None))
    cbs = list(kwargs.pop("cbs", None) or [])
    if prec == "bf16":
        cbs.append(BF16Training())
    if cfg.chroma_head == "classes" and class_weight > 0:
        cbs.append(ColorClassLoss(class_weight, rebalance))
    model = kind.create(cfg, enc_sd)
    learn = Learner(dls, model, loss_func=loss_func, splitter=kind.split, metrics=metrics, wd=wd, cbs=cbs, **kwargs)
    learn.colorizer_config = cfg
    learn.pretrained = enc_sd is not None
    learn.precision = prec
    learn.loss_name = loss_name
    if learn.pretrained:
        learn.freeze()
    return learn


def generator_of(obj: Any) -> ColorizerNet:
    """The :class:`ColorizerNet` of a ``colorize_learner``, a GAN learner, a :class:`Colorizer` or itself."""
    model = obj.model if isinstance(obj, (Learner, Colorizer)) else obj
    if isinstance(model, ColorizerNet):
        return model
    gen = getattr(model, "generator", None)  # a GANLearner's model wraps the generator
    if isinstance(gen, ColorizerNet):
        return gen
    raise TypeError(f"expected a colorize_learner, Colorizer or ColorizerNet, got {type(model).__name__}")


@patch
def colorize(self: Learner, img: Any, render_size: int | None = None, bs: int = 4, strength: float = 1.0,
             precision: str | None = None) -> Any:
    """Colorize a photo (path, PIL image, array or tensor) or a list of them -> PIL image(s), full size.

    ``strength`` scales the predicted colour (0 gray, 1 as predicted, up to 2 for more saturated).
    ``precision`` (``"auto"``, ``"bf16"``, ``"fp32"``; default: the learner's training precision) is the
    inference precision (:func:`colorkit.infer.predict_rgb`)."""
    rs = render_size or getattr(self, "render_size", DEFAULT_RENDER_SIZE)
    model = generator_of(self)
    with inference_format(model, precision or getattr(self, "precision", "fp32")) as prec:
        if isinstance(img, (list, tuple)):
            return colorize_images(model, img, render_size=rs, bs=bs, strength=strength, precision=prec)
        return colorize_image(model, img, render_size=rs, strength=strength, precision=prec)


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
    ``metrics`` are recorded in ``config.json`` (the :class:`~colorkit.modelcard.ModelCard`) and
    ``metrics.json``; a Colorizer keeps its own training record when ``training`` is None.
    """
    model = generator_of(obj)
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise ValueError("this ColorizerNet has no config to save: build it with create_generator, "
                         "build_generator or ColorizerNet(..., config=...)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sd = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
          for k, v in model.state_dict().items()}
    atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(sd, tmp, metadata={"format": "colorkit"}))
    prev = obj.card.training if isinstance(obj, Colorizer) else {}
    ModelCard(
        generator=cfg.to_dict(),
        render_size=render_size or getattr(obj, "render_size", None) or DEFAULT_RENDER_SIZE,
        dtype="float16" if half else "float32",
        n_params=sum(p.numel() for p in model.parameters()),
        training=training if training is not None else prev,
    ).write(path)
    if metrics is not None:
        write_json_atomic(path / METRICS_FILE, metrics)
    return path


class Colorizer:
    """A loaded colorizer: ``clr.colorize(img)`` -> PIL image at the input's size.

    ``card`` is its :class:`~colorkit.modelcard.ModelCard`; ``config`` the same as a dict (``config.json``).
    ``precision`` (``"auto"``, ``"bf16"`` or ``"fp32"``) is how it runs the network: ``"auto"`` is bf16 +
    ``channels_last`` where the device has fast bf16 (a CUDA GPU that supports it, a CPU with AMX or
    AVX-512 bf16), fp32 elsewhere (:mod:`colorkit.precision`). ``clr.precision`` is the resolved one
    (``"bf16"`` or ``"fp32"``); front-ends pass it on (``predict_chroma(clr.model, x, clr.precision)``).
    """

    def __init__(self, model: ColorizerNet, config: dict | ModelCard, metrics: dict | None = None,
                 path: Path | None = None, precision: str = "fp32"):
        if isinstance(config, ModelCard):
            self.card, config = config, config.to_dict()
        else:  # a config dict as in config.json; its generator section defaults to the model's own
            gen = getattr(model, "config", None)
            self.card = ModelCard.from_dict({"generator": gen.to_dict() if gen is not None else {}, **config})
        self.model, self.config, self.metrics, self.path = model.eval(), config, metrics or {}, path
        self.render_size = int(self.card.render_size)
        self.requested_precision = precision
        self.precision = self._apply_precision()

    def _apply_precision(self) -> str:
        """Resolve the requested precision on the model's device and set the model's memory format for it."""
        prec = resolve_precision(self.requested_precision, device_of(self.model))
        to_precision(self.model, prec)
        return prec

    def colorize(self, img: Any, render_size: int | None = None, bs: int = 4,
                 strength: float = 1.0) -> Image.Image | list[Image.Image]:
        """Colorize a photo or a list of photos (paths, PIL images, arrays or tensors).

        ``strength`` scales the predicted colour (0 gray, 1 as predicted, up to 2 for more saturated)."""
        rs = render_size or self.render_size
        if isinstance(img, (list, tuple)):
            return colorize_images(self.model, img, render_size=rs, bs=bs, strength=strength,
                                   precision=self.precision)
        return colorize_image(self.model, img, render_size=rs, strength=strength, precision=self.precision)

    def to(self, device: str | torch.device) -> Colorizer:
        """Move the model to ``device``; ``"auto"`` precision is resolved again for it."""
        self.model.to(device)
        self.precision = self._apply_precision()
        return self

    def save(self, path: str | Path, half: bool = True) -> Path:
        return save_colorizer(self, path, half=half, metrics=self.metrics or None)

    def __repr__(self) -> str:
        return (f"Colorizer({self.card.kind}, arch={self.card.arch}, mode={self.card.mode}, "
                f"render_size={self.render_size}, precision={self.precision}, path={self.path})")


def load_colorizer(path: str | Path | None = None, device: str | torch.device | None = None,
                   precision: str = "fp32") -> Colorizer:
    """Load a colorizer saved by :func:`save_colorizer` (no pickles: safetensors + JSON), of any registered
    generator kind. Without ``path``, loads the starter model shipped with colorkit (:data:`STARTER_MODEL`).
    ``precision``: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 where ``device`` has it; see :class:`Colorizer`).
    """
    resolve_precision(precision)  # a bad value fails before the weights are read
    from . import modelcard

    path = Path(path) if path is not None else modelcard.STARTER_MODEL  # looked up now: tests may move it
    card = ModelCard.from_dir(path)
    try:
        model = _new_generator(card)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: not a colorkit config ({e})") from None
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
    model.load_state_dict(sd)
    clr = Colorizer(model, card, read_metrics(path), path, precision=precision)
    return clr.to(device) if device is not None else clr


def _new_generator(card: ModelCard) -> ColorizerNet:
    """A freshly initialised generator of the card's kind and settings (no weights loaded)."""
    cfg = generator_config(card.generator)
    return generator_kind(cfg.kind).create(cfg)


@delegates(save_colorizer, but=["obj", "path"])
def _learner_save_colorizer(self: Learner, path: str | Path, **kwargs: Any) -> Path:
    """``learn.save_colorizer("model/")``: see :func:`colorkit.learner.save_colorizer`."""
    return save_colorizer(self, path, **kwargs)


# attached by hand rather than with @patch, which would rebind this module's ``save_colorizer`` name
Learner.save_colorizer = _learner_save_colorizer
