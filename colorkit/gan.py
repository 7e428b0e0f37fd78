"""Compatibility: the names ``colorkit.gan`` held before it was split (same objects, new homes).

- :mod:`colorkit.critics`: the critic networks (``CriticNet``, ``create_critic``, ``spectral_critic``, ...);
- :mod:`colorkit.nogan`: the NoGAN procedure (render cache, critic pretraining, ``gan_finetune``, ``nogan``,
  ``train_gan``);
- :mod:`colorkit.gan_callbacks`: the GAN phase's callbacks and scoring rules. ``GANCheckpoint`` became
  :class:`~colorkit.gan_callbacks.GANSteps`, :class:`~colorkit.gan_callbacks.StopOnNaN`,
  :class:`~colorkit.gan_callbacks.StopAfter`, :class:`~colorkit.gan_callbacks.SkipValidation` and
  :class:`~colorkit.gan_callbacks.SaveBestGenerator`.

New code imports from those modules.
"""

from .critics import CRITICS, CriticNet, create_critic, critic_loss, patch_critic, resnet_critic, spectral_critic
from .gan_callbacks import CriticLRMult, EvalSet, check_divergence, evaluate_generator, load_eval_set, nogan_score
from .nogan import (
    RenderResult,
    critic_dls,
    critic_learner,
    gan_finetune,
    gan_opt_func,
    nogan,
    pretrain_critic,
    render_generated,
    train_gan,
    weights_hash,
)

__all__ = ["CRITICS", "CriticLRMult", "CriticNet", "EvalSet", "RenderResult", "check_divergence", "create_critic",
           "critic_dls", "critic_learner", "critic_loss", "evaluate_generator", "gan_finetune", "gan_opt_func",
           "load_eval_set", "nogan", "nogan_score", "patch_critic", "pretrain_critic", "render_generated",
           "resnet_critic", "spectral_critic", "train_gan", "weights_hash"]
