"""Conditional GAN training for the pix2pix-style presets, on fastai's ``GANLearner``.

:func:`cgan_learner` turns a generator learner (``colorize_learner``, its loss the reconstruction term) into a
:class:`CGANLearner`: the generator against a PatchGAN critic (:func:`colorkit.critics.patch_critic`), the
generator loss ``BCE(critic(fake), real) + l1_weight * reconstruction``, the critic loss ``(BCE(real, 1) +
BCE(fake, 0)) / 2``, one critic step then one generator step (``FixedGANSwitcher``), Adam with ``betas``.
As in pix2pix, both networks stay in training mode throughout (the generator's dropout is its noise, the
critic's BatchNorm sees the fakes), and the network not being trained is never stepped
(:class:`~colorkit.gan_callbacks.GANStepHygiene`).

Its :meth:`CGANLearner.fit_stage` is pix2pix's schedule: the learning rate flat for the first half of the
epochs, then linearly to 0 (:func:`flat_linear`); :func:`colorkit.train.fit_progressive` calls it for every
stage. The generator stays an ordinary :class:`~colorkit.models.ColorizerNet` (``learn.model.generator``),
so ``learn.colorize``, ``save_colorizer`` and ``load_colorizer`` work unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from fastai.callback.schedule import ParamScheduler, SchedLin, SchedNo, combine_scheds
from fastai.learner import Learner
from fastai.vision.gan import FixedGANSwitcher, GANLearner, gan_loss_from_func
from torch import nn

from .callbacks import BF16Training
from .critics import CriticNet, critic_loss, patch_critic
from .gan_callbacks import GANStepHygiene
from .nogan import gan_opt_func
from .precision import resolve_precision

__all__ = ["BF16GANTraining", "CGANLearner", "cgan_learner", "flat_linear"]


def flat_linear(lr_max: Any, pct_flat: float = 0.5) -> Callable[[float], Any]:
    """pix2pix's learning-rate schedule as a function of the fraction of training done: ``lr_max`` (a float
    or one value per parameter group) for the first ``pct_flat``, then linearly down to 0."""
    if not 0 <= pct_flat < 1:
        raise ValueError(f"pct_flat must be in [0, 1), got {pct_flat}")
    if pct_flat == 0:
        return SchedLin(lr_max, 0 * lr_max)
    return combine_scheds([pct_flat, 1 - pct_flat], [SchedNo(lr_max, lr_max), SchedLin(lr_max, 0 * lr_max)])


class CGANLearner(GANLearner):
    """A fastai ``GANLearner`` for a conditional GAN preset (build it with :func:`cgan_learner`)."""

    pct_flat = 0.5

    def fit_stage(self, epochs: int, lr: float | slice) -> None:
        """Train ``epochs`` epochs with pix2pix's schedule from ``lr`` (see :func:`flat_linear`)."""
        if self.opt is None:
            self.create_opt()
        self.opt.set_hyper("lr", lr)
        lr_max = np.array([h["lr"] for h in self.opt.hypers])
        with warnings.catch_warnings():
            # fastai's own GANTrainer sets attributes (generator, critic, gen_mode) that it then warns about
            warnings.filterwarnings("ignore", message="You are shadowing an attribute")
            self.fit(epochs, cbs=ParamScheduler({"lr": flat_linear(lr_max, self.pct_flat)}))


class BF16GANTraining(BF16Training):
    """:class:`~colorkit.precision.BF16Training` for GANs: autocast stays on through the loss, which runs the
    other network (the critic on the fakes, or the generator making them); the losses themselves compute
    in float32 (the reconstruction loss disables autocast, BCE is float32 under autocast)."""

    def after_pred(self) -> None:
        pass

    def after_loss(self) -> None:
        self._exit()


def cgan_learner(
    gen_learn: Learner,
    critic: nn.Module | None = None,
    *,
    l1_weight: float = 100.0,
    betas: tuple[float, float] = (0.5, 0.999),
    wd: float = 0.0,
    critic_settings: Mapping[str, Any] | None = None,
    precision: str = "fp32",
    switcher: Any = None,
    cbs: Any = None,
    **kwargs: Any,
) -> CGANLearner:
    """The conditional GAN of ``gen_learn``'s generator and ``critic`` (default: :func:`patch_critic` with
    ``critic_settings``, e.g. ``{"nf": 64, "n_layers": 3, "norm": "batch", "conditional": True}``).

    Generator loss: ``BCE(critic(fake), 1) + l1_weight * gen_learn.loss_func(fake, target)``; Adam with
    ``betas``, weight decay ``wd``; ``switcher`` defaults to one critic step, then one generator step.
    ``precision`` ``"bf16"``/``"auto"`` trains under bf16 autocast where the hardware has it. The learner
    keeps ``gen_learn``'s data, metrics (computed on the generator's output at validation) and colorkit
    attributes (``colorizer_config``, ``preset``); other keywords go to fastai's ``GANLearner``.
    """
    if l1_weight < 0:
        raise ValueError(f"l1_weight must be >= 0, got {l1_weight}")
    if critic is None:
        critic = patch_critic(**dict(critic_settings or {}))
    elif critic_settings:
        raise TypeError("critic_settings are only used when no critic is given")
    gen_loss, crit_loss = gan_loss_from_func(gen_learn.loss_func, critic_loss(), weights_gen=(1.0, float(l1_weight)))
    prec = resolve_precision(precision, getattr(gen_learn.dls, "device", None))
    callbacks = [GANStepHygiene(), *(cbs or [])]
    if prec == "bf16":
        callbacks.append(BF16GANTraining())
    learn = CGANLearner(
        gen_learn.dls, gen_learn.model, critic, gen_loss, crit_loss,
        switcher=switcher if switcher is not None else FixedGANSwitcher(n_crit=1, n_gen=1),
        switch_eval=False, show_img=False, opt_func=gan_opt_func(betas), wd=wd, metrics=list(gen_learn.metrics),
        cbs=callbacks, **kwargs,
    )
    learn.colorizer_config = gen_learn.colorizer_config
    learn.pretrained = False
    learn.precision = prec
    learn.loss_name = f"bce + {l1_weight:g} x {getattr(gen_learn, 'loss_name', 'custom')}"
    learn.preset = getattr(gen_learn, "preset", None)
    learn.critic_config = dict(critic.config) if isinstance(critic, CriticNet) else {}
    learn.gan_settings = {"l1_weight": float(l1_weight), "betas": [float(b) for b in betas], "wd": float(wd)}
    return learn
