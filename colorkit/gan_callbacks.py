"""The GAN phase of NoGAN as small fastai callbacks, one job each (as fastai's ``callback/tracker.py``), and
the rules they score the generator by.

:func:`colorkit.nogan.gan_finetune` puts them on fastai's ``GANLearner``:

- :class:`GANSteps` counts iterations (one batch: a generator or a critic step) and records why training
  stopped early; the others read it as ``self.learn.gan_steps``;
- :class:`StopOnNaN` stops when a loss is not finite (fastai's ``TerminateOnNaNCallback``, saying whose);
- :class:`StopAfter` stops after ``n_iter`` iterations; :class:`SkipValidation` skips fastai's validation;
- :class:`GeneratorTracker` scores the generator every ``every`` iterations, keeps the history and the best
  checkpoint, and stops on divergence (fastai's ``TrackerCallback``); :class:`SaveBestGenerator` also keeps
  the best weights, writes them to disk and puts them back at the end (fastai's ``SaveModelCallback``);
- :class:`CriticLRMult` and :class:`GANStepHygiene` make each step train only what it should.

The generator is scored on held-out photos (:func:`load_eval_set`, cropped as ``colorkit evaluate`` crops
them) by :func:`evaluate_generator`; :func:`nogan_score` ranks checkpoints and :func:`check_divergence`
says when one has gone wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from torch import Tensor, nn

from ._tensors import image_to_tensor
from .color import to_gray
from .data import find_photos, sample_files
from .evaluate import evaluation_crop
from .infer import predict_rgb
from .io import ImageLoadError, load_image, write_json_atomic
from .metrics import colorfulness, psnr

__all__ = ["CriticLRMult", "EvalSet", "GANStepHygiene", "GANSteps", "GeneratorTracker", "SaveBestGenerator",
           "SkipValidation", "StopAfter", "StopOnNaN", "check_divergence", "evaluate_generator", "load_eval_set",
           "nogan_score"]

Metrics = Mapping[str, float]


# ----------------------------------------------------------------------------------------------
# scoring the generator on held-out photos


@dataclass
class EvalSet:
    """Held-out photos as tensors: ``gray`` and ``color`` ``(N, 3, size, size)`` in [0, 1]."""

    gray: Tensor
    color: Tensor
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.paths)


def load_eval_set(source: Any, size: int = 64, n: int | None = None, seed: int = 42) -> EvalSet:
    """A seeded sample of ``n`` photos of ``source``, cropped to ``size`` px as ``colorkit evaluate`` crops them
    (:func:`colorkit.evaluate.evaluation_crop`); unreadable ones are skipped with a warning."""
    color, paths = [], []
    for p in sample_files(find_photos(source, "evaluation photos"), n, seed):
        try:
            color.append(image_to_tensor(evaluation_crop(load_image(p), size)))
            paths.append(p)
        except ImageLoadError as e:
            warnings.warn(f"load_eval_set: skipping {p}: {e.reason}", stacklevel=2)
    if not paths:
        raise ValueError(f"no readable evaluation photos in {source}")
    c = torch.stack(color)
    return EvalSet(to_gray(c), c, paths)


def evaluate_generator(model: nn.Module, eval_set: EvalSet, bs: int = 16) -> dict[str, float]:
    """Score a generator on ``eval_set`` -> ``{"psnr", "colorfulness", "colorfulness_target",
    "colorfulness_gap", "output_std", "saturated"}``.

    ``psnr`` is the mean per-image PSNR (dB); ``colorfulness_gap`` the corpus-level
    ``|mean CF(pred) - mean CF(target)|``; ``output_std`` the mean per-image standard deviation of the
    output; ``saturated`` the share of output pixels with a channel at 0 or 1 (after 8-bit rounding).
    """
    preds = torch.cat([predict_rgb(model, eval_set.gray[k : k + bs]) for k in range(0, len(eval_set), bs)])
    targ = eval_set.color
    p, cf_p, cf_t = psnr(preds, targ).double(), colorfulness(preds).double(), colorfulness(targ).double()
    q = (preds * 255).round()
    sat = ((q <= 0) | (q >= 255)).any(dim=1).double().mean()
    out = {
        "psnr": p.mean().item(),
        "colorfulness": cf_p.mean().item(),
        "colorfulness_target": cf_t.mean().item(),
        "output_std": preds.flatten(1).std(dim=1).double().mean().item(),
        "saturated": sat.item(),
    }
    out["colorfulness_gap"] = abs(out["colorfulness"] - out["colorfulness_target"])
    return out


def nogan_score(
    metrics: Mapping[str, float], start: Mapping[str, float], max_psnr_drop: float = 0.5
) -> float:
    """The checkpoint score (higher is better): ``-colorfulness_gap``, or ``-inf`` when PSNR fell more
    than ``max_psnr_drop`` dB below the starting generator's (or a value is not finite).

    A checkpoint replaces the best one only with a strictly higher score, so the GAN phase is kept only
    when it shrinks the colourfulness gap while costing at most ``max_psnr_drop`` dB of PSNR.
    """
    gap, p, p0 = metrics.get("colorfulness_gap"), metrics.get("psnr"), start.get("psnr")
    if gap is None or p is None or p0 is None:
        raise KeyError(f"nogan_score needs 'colorfulness_gap' and 'psnr', got {sorted(metrics)}")
    if not (math.isfinite(gap) and not math.isnan(p)):
        return -math.inf
    if math.isfinite(p0) and p < p0 - max_psnr_drop:
        return -math.inf
    return -float(gap)


def check_divergence(
    metrics: Mapping[str, float],
    start: Mapping[str, float],
    min_std_ratio: float = 0.25,
    max_cf_ratio: float = 3.0,
    max_saturated: float = 0.5,
) -> str | None:
    """Why a checkpoint looks diverged, or None. Uses whichever keys of :func:`evaluate_generator` exist.

    Diverged: a non-finite metric (PSNR may be ``+inf``); outputs flat (``output_std`` below
    ``min_std_ratio`` x the start's); colourfulness above ``max_cf_ratio`` x max(start's, target's,
    1); or more than ``max(max_saturated, start + 0.25)`` of the pixels saturated.
    """
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and (math.isnan(v) or (math.isinf(v) and k != "psnr")):
            return f"non-finite {k} ({v})"
    std, std0 = metrics.get("output_std"), start.get("output_std")
    if std is not None and std0 is not None and std < min_std_ratio * std0:
        return f"flat outputs (std {std:.4f}, {std0:.4f} at the start)"
    cf = metrics.get("colorfulness")
    if cf is not None:
        ref = max(start.get("colorfulness", 0.0), metrics.get("colorfulness_target", 0.0), 1.0)
        if cf > max_cf_ratio * ref:
            return f"colourfulness exploded ({cf:.1f}, more than {max_cf_ratio:g} x {ref:.1f})"
    sat, sat0 = metrics.get("saturated"), start.get("saturated", 0.0)
    if sat is not None and sat > max(max_saturated, sat0 + 0.25):
        return f"saturated outputs ({sat:.0%} of the pixels at 0 or 1, {sat0:.0%} at the start)"
    return None




# ----------------------------------------------------------------------------------------------
# the callbacks


class GANSteps(Callback):
    """Count the GAN phase's iterations, generator steps and critic steps; :meth:`stop` ends training with a
    reason (``stop_reason``, at ``stopped_at``) that the report shows as the divergence."""

    order = 5  # after GANTrainer and the switchers (order 0), before the callbacks that read the counts

    def before_fit(self) -> None:
        self.iteration = self.gen_steps = self.crit_steps = 0
        self.stop_reason: str | None = None
        self.stopped_at: int | None = None
        self.gen_step = False

    def before_batch(self) -> None:
        if self.training:
            self.gen_step = bool(self.learn.gan_trainer.gen_mode)

    def after_batch(self) -> None:
        if self.training:
            self.iteration += 1
            if self.gen_step:
                self.gen_steps += 1
            else:
                self.crit_steps += 1

    def stop(self, reason: str, cancel: bool = True) -> None:
        """Record why training stops now and (with ``cancel``) end the fit."""
        self.stop_reason, self.stopped_at = reason, self.iteration
        if cancel:
            raise CancelFitException()


class StopOnNaN(Callback):
    """Stop when the loss of a training step is NaN or infinite, saying whose (generator or critic)."""

    order = GANSteps.order + 1

    def after_batch(self) -> None:
        if not self.training:
            return
        loss = float(self.learn.loss.detach())
        if not math.isfinite(loss):
            steps = self.learn.gan_steps
            who = "generator" if steps.gen_step else "critic"
            steps.stop(f"the {who} loss is {loss} at iteration {steps.iteration}")


class StopAfter(Callback):
    """Stop after ``n_iter`` iterations (checked after the tracker has scored the last one)."""

    order = 20

    def __init__(self, n_iter: int):
        self.n_iter = int(n_iter)

    def after_batch(self) -> None:
        if self.training and self.learn.gan_steps.iteration >= self.n_iter:
            raise CancelFitException()


class SkipValidation(Callback):
    """Skip fastai's validation pass: the GAN phase is scored by :class:`GeneratorTracker` instead."""

    def before_validate(self) -> None:
        raise CancelValidException()


class GeneratorTracker(Callback):
    """Score the generator every ``every`` iterations and keep the best checkpoint; stop on divergence.

    ``evaluate(generator) -> dict`` of metrics (called in eval mode under ``no_grad``); ``score(metrics,
    start_metrics) -> float``, higher is better; ``diverged(metrics, start_metrics)`` -> reason or None. The
    starting generator is checkpoint 0; a checkpoint replaces the best only with a strictly higher score
    (``-inf``, recorded as ``None``, never does). A diverged checkpoint stops training. ``history`` holds
    every checkpoint (``iter``, ``gen_steps``, ``crit_steps``, ``metrics``, ``score``, ``diverged``), ``best``
    the best one. Needs :class:`GANSteps`.
    """

    order = 10

    def __init__(
        self,
        evaluate: Callable[[nn.Module], Metrics],
        score: Callable[[Metrics, Metrics], float] = nogan_score,
        every: int = 100,
        diverged: Callable[[Metrics, Metrics], str | None] | None = check_divergence,
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.evaluate, self.score, self.every, self.diverged = evaluate, score, int(every), diverged
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._best_score = -math.inf

    def before_fit(self) -> None:
        self.gen = self.learn.model.generator
        self.history, self.best, self._best_score = [], None, -math.inf
        self.checkpoint()

    def after_batch(self) -> None:
        steps = self.learn.gan_steps
        if self.training and steps.iteration % self.every == 0:
            entry = self.checkpoint()
            if entry["diverged"] is not None:
                steps.stop(entry["diverged"])

    def after_fit(self) -> None:
        steps = self.learn.gan_steps
        if steps.stop_reason is None and self.history and self.history[-1]["iter"] != steps.iteration:
            entry = self.checkpoint()
            if entry["diverged"] is not None:
                steps.stop(entry["diverged"], cancel=False)

    def checkpoint(self) -> dict[str, Any]:
        """Evaluate the generator now, record it, and keep it as the best if it scores higher."""
        gen, steps = self.gen, self.learn.gan_steps
        was = gen.training
        gen.eval()
        try:
            with torch.no_grad():
                metrics = _floats(self.evaluate(gen))
        finally:
            gen.train(was)
        start = self.history[0]["metrics"] if self.history else metrics
        reason = self.diverged(metrics, start) if (self.diverged is not None and self.history) else None
        s = -math.inf if reason else float(self.score(metrics, start))
        s = -math.inf if math.isnan(s) else s
        # score None: not eligible (diverged, or outside the score's limits); keeps the JSON strict
        entry = {"iter": steps.iteration, "gen_steps": steps.gen_steps, "crit_steps": steps.crit_steps,
                 "metrics": metrics, "score": s if math.isfinite(s) else None, "diverged": reason}
        self.history.append(entry)
        if self.best is None or s > self._best_score:
            self.best, self._best_score = entry, s
            self.after_new_best(entry)
        self.after_checkpoint()
        return entry

    def after_new_best(self, entry: dict[str, Any]) -> None:
        """Called when ``entry`` becomes the best checkpoint (for subclasses)."""

    def after_checkpoint(self) -> None:
        """Called after every checkpoint (for subclasses)."""


class SaveBestGenerator(GeneratorTracker):
    """:class:`GeneratorTracker` that also keeps the best checkpoint's weights and puts them back into the
    generator at the end of training (also after an error: call :meth:`restore_best`). With
    ``checkpoint_dir`` the best generator is saved there as a colorizer folder (``best/``) and
    ``gan_history.json`` lists every checkpoint."""

    def __init__(self, *args: Any, checkpoint_dir: str | Path | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.best_state: dict[str, Tensor] | None = None
        self.restored = False

    def before_fit(self) -> None:
        self.best_state, self.restored = None, False
        super().before_fit()

    def after_new_best(self, entry: dict[str, Any]) -> None:
        self.best_state = {k: v.detach().cpu().clone() for k, v in self.gen.state_dict().items()}
        if self.checkpoint_dir is not None and getattr(self.gen, "config", None) is not None:
            from .learner import save_colorizer

            save_colorizer(self.gen, self.checkpoint_dir / "best", half=False,
                           metrics={**entry["metrics"], "gan_iter": entry["iter"]})

    def after_checkpoint(self) -> None:
        if self.checkpoint_dir is not None:
            write_json_atomic(self.checkpoint_dir / "gan_history.json",
                              {"history": self.history, "best_iter": self.best["iter"] if self.best else None})

    def after_fit(self) -> None:
        super().after_fit()
        self.restore_best()

    def restore_best(self) -> None:
        """Put the best checkpoint's weights back into the generator (idempotent)."""
        if self.best_state is not None and not self.restored:
            self.gen.load_state_dict(self.best_state)
            self.restored = True


class CriticLRMult(Callback):
    """Multiply the learning rate by ``mult`` during critic steps (GAN training), restoring it after.

    Unlike fastai's ``GANDiscriminativeLR`` it remembers whether it multiplied, so the rate is put back
    exactly whichever callback switches modes first. Runs after ``ParamScheduler`` (order 60).
    """

    order = 65

    def __init__(self, mult: float = 5.0):
        self.mult, self._saved = float(mult), None

    def before_batch(self) -> None:
        if self.training and not self.learn.gan_trainer.gen_mode and self.mult != 1:
            self._saved = [h["lr"] for h in self.learn.opt.hypers]
            for h in self.learn.opt.hypers:
                h["lr"] = h["lr"] * self.mult

    def after_batch(self) -> None:
        self._restore()

    def after_cancel_batch(self) -> None:
        self._restore()

    def after_fit(self) -> None:  # a CancelFitException raised in after_batch skips our after_batch
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            for h, lr in zip(self.learn.opt.hypers, self._saved, strict=True):
                h["lr"] = lr
            self._saved = None


class GANStepHygiene(Callback):
    """Make a GAN step touch only the model being trained.

    - fastai's ``TrainEvalCallback`` puts the whole GAN module in train mode at ``before_train``, after
      ``GANTrainer`` chose the modes: the model not being trained is put back in eval mode, so critic
      steps do not move the generator's BatchNorm statistics (and vice versa).
    - fastai's optimizer steps every parameter that has a ``.grad`` tensor (zeroed, not None, after the
      first step), so weight decay would shrink the frozen model on every step: its gradients are
      dropped before the step.
    """

    order = 0

    def before_train(self) -> None:
        tr = self.learn.gan_trainer
        if getattr(tr, "switch_eval", False):
            (tr.generator if tr.gen_mode else tr.critic).train()
            (tr.critic if tr.gen_mode else tr.generator).eval()

    def before_step(self) -> None:
        tr = self.learn.gan_trainer
        for p in (tr.critic if tr.gen_mode else tr.generator).parameters():
            p.grad = None


def _floats(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in m.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out
