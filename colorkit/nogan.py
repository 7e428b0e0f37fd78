"""NoGAN: critic pretraining on generated images, then a short GAN fine-tuning that keeps the best generator.

The sequence (:func:`nogan` runs it all; each step is also a function of its own; :func:`train_gan` runs it
on a saved colorizer, as ``colorkit train --gan`` does):

1. :func:`render_generated` renders the generator's outputs for a seeded sample of the training photos
   into a cache folder (atomic PNG writes, a ``manifest.json`` recording the generator's weights hash,
   so a second run reuses them and another generator does not);
2. :func:`critic_dls` + :func:`critic_learner` + :func:`pretrain_critic` train a critic
   (:mod:`colorkit.critics`) to tell real photos (label ``real`` = 1) from generated ones (``fake`` = 0)
   with binary cross-entropy;
3. :func:`gan_finetune` fine-tunes generator and critic together with fastai's ``GANLearner``
   (adaptive switching on the critic's loss, Adam betas (0, 0.9), critic lr x5), scoring the generator
   every ``every`` iterations on held-out photos (cropped as ``colorkit evaluate`` crops them) and putting
   the best checkpoint back at the end, through the small callbacks of :mod:`colorkit.gan_callbacks`.

The generator stays an ordinary :class:`~colorkit.models.ColorizerNet` inside the ``colorize_learner`` it
came from, so ``learn.colorize``, ``save_colorizer`` and ``load_colorizer`` work on the result unchanged.
Reports are dataclasses (:class:`GANReport`, :class:`NoGANReport`) that also read like the dicts they are
saved as (``report["best_iter"]``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from fastai.callback.core import Callback
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor, ItemGetter, RandomSplitter
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.vision.augment import Flip
from fastai.vision.core import PILImage
from fastai.vision.gan import AdaptiveGANSwitcher, GANLearner, accuracy_thresh_expand
from fastcore.meta import delegates
from torch import Tensor, nn

from ._tensors import image_to_tensor
from .color import to_gray
from .critics import create_critic, critic_loss, spectral_critic
from .data import CenterCropResize, OpenPhoto, center_crop, find_photos, open_photo, sample_files
from .gan_callbacks import (
    CriticLRMult,
    EvalSet,
    GANStepHygiene,
    GANSteps,
    SaveBestGenerator,
    SkipValidation,
    StopAfter,
    StopOnNaN,
    check_divergence,
    evaluate_generator,
    load_eval_set,
    nogan_score,
)
from .infer import predict_rgb
from .io import ImageLoadError, as_pil, save_image, write_json_atomic
from .learner import colorize_learner, generator_of, load_colorizer, save_colorizer
from .modelcard import Record
from .train import final_values, set_seed

__all__ = [
    "EvalSet",
    "GANReport",
    "NoGANReport",
    "RenderResult",
    "check_divergence",
    "critic_dls",
    "critic_learner",
    "evaluate_generator",
    "gan_finetune",
    "gan_opt_func",
    "load_eval_set",
    "nogan",
    "nogan_score",
    "pretrain_critic",
    "render_generated",
    "train_gan",
    "weights_hash",
]

MANIFEST = "manifest.json"
_MANIFEST_FORMAT = 1
REAL, FAKE = "real", "fake"  # CategoryBlock sorts the vocab: fake -> 0, real -> 1


# ----------------------------------------------------------------------------------------------
# reports


@dataclass
class GANReport(Record):
    """What :func:`gan_finetune` did: iterations (generator / critic steps), the settings, every checkpoint
    (``checkpoints``: iter, steps, metrics, score, diverged), the best one, whether it beat the start, why it
    stopped early (``diverged``, at ``diverged_at``), the last smoothed losses and the seconds."""

    iterations: int
    gen_steps: int
    crit_steps: int
    n_iter: int
    lr: float
    every: int
    critic_weight: float
    feature_weight: float
    critic_thresh: float
    critic_lr_mult: float
    checkpoints: list[dict[str, Any]]
    best_iter: int | None
    best_metrics: dict[str, Any] | None
    start_metrics: dict[str, Any] | None
    improved: bool
    diverged: str | None
    diverged_at: int | None
    last_gen_loss: float | None
    last_crit_loss: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NoGANReport(Record):
    """What :func:`nogan` (and :func:`train_gan`) did: the renderings, the critic's pretraining, the GAN phase
    (``gan``, whose fields also read directly: ``report.best_iter``), the total seconds and, from
    :func:`train_gan`, the starting model and whether it was kept (``kept_start``)."""

    render: dict[str, Any]
    critic: dict[str, Any]
    gan: GANReport
    total_seconds: float
    from_model: str | None = None
    kept_start: bool | None = None

    def __getattr__(self, name: str) -> Any:  # report.best_iter, report.checkpoints, ...: the GAN phase's
        if name.startswith("__") or name == "gan":
            raise AttributeError(name)
        return getattr(self.gan, name)

    def to_dict(self) -> dict[str, Any]:
        d = {"render": self.render, "critic": self.critic, **self.gan.to_dict(), "total_seconds": self.total_seconds}
        if self.from_model is not None:
            d.update(from_model=self.from_model, kept_start=self.kept_start)
        return d


# ----------------------------------------------------------------------------------------------
# step 1: render the generator's outputs to a cache


def weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) of a model's state dict: names, dtypes, shapes and bytes, in sorted order.

    The architecture shows in the names and shapes; nothing else (such as the size a generator was
    built at) enters, so the same weights give the same hash.
    """
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(v.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_name(src: Path) -> str:
    digest = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:10]
    return f"{src.stem}-{digest}.png"


def _files(source: Any, what: str) -> list[Path]:
    """Image files from a :class:`RenderResult`, a folder (recursive), a file, or a list of files/folders."""
    return list(source.files) if isinstance(source, RenderResult) else find_photos(source, what)


def _render_input(path: Path, size: int) -> Tensor:
    """A photo as the critic sees real ones: centre-cropped to ``size`` px (:func:`colorkit.data.center_crop`,
    decoded at a reduced scale) -> ``(3, size, size)`` in [0, 1]."""
    return image_to_tensor(center_crop(open_photo(path, 2 * size), size))


@dataclass
class RenderResult:
    """What :func:`render_generated` did. ``files[i]`` is the rendering of ``sources[i]``."""

    cache_dir: Path
    sources: list[Path]
    files: list[Path]
    rendered: int
    reused: int
    invalidated: int
    generator_hash: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cache_dir": str(self.cache_dir), "n": len(self.files), "rendered": self.rendered,
                "reused": self.reused, "invalidated": self.invalidated, "generator_hash": self.generator_hash,
                "skipped": [[str(p), r] for p, r in self.skipped]}


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("files"), dict) else None


def render_generated(
    learn_or_model: Any,
    source: Any,
    cache_dir: str | Path,
    size: int = 64,
    n: int | None = None,
    seed: int = 42,
    bs: int = 8,
) -> RenderResult:
    """Render the generator's outputs for a seeded sample of ``n`` photos of ``source`` into ``cache_dir``.

    Each photo is centre-cropped to a ``size`` px square (as :func:`critic_dls` crops the real photos), made
    gray, colorized and written as
    ``<stem>-<hash of its path>.png`` with ``io.save_image`` (atomic). ``manifest.json`` records the
    generator's :func:`weights_hash`, the size and the files: a later call skips what is already
    rendered; a different generator or size deletes the renderings listed in the old manifest (and
    nothing else) and renders again. Unreadable photos are skipped with one warning.
    """
    model = generator_of(learn_or_model)
    if size < 8:
        raise ValueError(f"size must be >= 8 px, got {size}")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    sources = sample_files(_files(source, "source"), n, seed)
    ghash = weights_hash(model)
    mpath = cache / MANIFEST
    old = _read_manifest(mpath)
    invalidated = 0
    keep = (old is not None and old.get("format") == _MANIFEST_FORMAT and old.get("generator") == ghash
            and old.get("size") == int(size))
    if old is not None and not keep:
        for name in old["files"]:
            f = cache / Path(name).name  # never outside the cache folder
            if f.is_file():
                f.unlink()
                invalidated += 1
    manifest = {"format": _MANIFEST_FORMAT, "generator": ghash, "size": int(size),
                "files": dict(old["files"]) if keep and old else {}}
    todo, reused = [], 0
    for src in sources:
        name = _cache_name(src)
        if name in manifest["files"] and (cache / name).is_file():
            reused += 1
        else:
            todo.append(src)
    skipped: list[tuple[Path, str]] = []
    rendered = 0
    for k in range(0, len(todo), bs):
        chunk, imgs = [], []
        for src in todo[k : k + bs]:
            try:
                imgs.append(_render_input(src, size))
                chunk.append(src)
            except ImageLoadError as e:
                skipped.append((src, e.reason))
        if not chunk:
            continue
        out = predict_rgb(model, to_gray(torch.stack(imgs)))
        for src, o in zip(chunk, out, strict=True):
            name = _cache_name(src)
            save_image(as_pil(o), cache / name)
            manifest["files"][name] = str(src)
        rendered += len(chunk)
        write_json_atomic(mpath, manifest)
    write_json_atomic(mpath, manifest)
    if skipped:
        names = ", ".join(p.name for p, _ in skipped[:5])
        names += f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"render_generated: skipped {len(skipped)} unreadable photo(s): {names}", stacklevel=2)
    bad = {p for p, _ in skipped}
    kept = [s for s in sources if s not in bad]
    return RenderResult(cache, kept, [cache / _cache_name(s) for s in kept], rendered, reused, invalidated,
                        ghash, skipped)


# ----------------------------------------------------------------------------------------------
# step 2: the critic's data, learner and pretraining


def critic_dls(
    real: Any,
    fake: Any,
    size: int = 64,
    bs: int = 16,
    valid_pct: float = 0.2,
    seed: int = 42,
    augment: bool = True,
    num_workers: int = 0,
    device: Any = None,
) -> DataLoaders:
    """``DataLoaders`` of (image ``(B, 3, size, size)`` in [0, 1], label): ``real`` = 1, ``fake`` = 0.

    ``real``: colour photos (folder, files, or None to take ``fake.sources`` of a :class:`RenderResult`).
    ``fake``: generated images (a :class:`RenderResult`, a folder, or files). Every image is centre-cropped
    and resized to ``size`` (as the renderings were made); ``augment`` adds horizontal flips. The split
    is a seeded ``valid_pct`` share of all items.
    """
    if real is None:
        if not isinstance(fake, RenderResult):
            raise ValueError("critic_dls: real=None needs fake to be a RenderResult "
                             "(its sources are the real photos)")
        real = fake.sources
    real_files, fake_files = _files(real, "real photos"), _files(fake, "generated images")
    items = [(p, REAL) for p in real_files] + [(p, FAKE) for p in fake_files]
    if bs > len(items):
        bs = len(items)
    block = DataBlock(
        blocks=(TransformBlock(type_tfms=OpenPhoto(2 * size, PILImage), batch_tfms=IntToFloatTensor()),
                CategoryBlock(vocab=[FAKE, REAL])),
        get_x=ItemGetter(0),
        get_y=ItemGetter(1),
        splitter=RandomSplitter(valid_pct=valid_pct, seed=seed),
        item_tfms=[CenterCropResize(size)],
        batch_tfms=[Flip(p=0.5)] if augment else [],
    )
    dls = block.dataloaders(items, bs=bs, num_workers=num_workers, device=device)
    dls.critic_info = {"n_real": len(real_files), "n_fake": len(fake_files), "size": int(size)}
    return dls


@delegates(spectral_critic, keep=True)
def critic_learner(
    dls: DataLoaders,
    critic: str | nn.Module = "spectral",
    loss_func: nn.Module | None = None,
    metrics: Any = None,
    wd: float = 1e-3,
    **critic_kwargs: Any,
) -> Learner:
    """A ``Learner`` for a critic (a :class:`~colorkit.critics.CriticNet` or the name of one in
    :data:`~colorkit.critics.CRITICS`).

    Loss: :func:`~colorkit.critics.critic_loss` (BCE per patch logit); metric: ``accuracy_thresh_expand``
    (share of patch logits on the right side of 0). ``critic_kwargs`` go to the critic's builder (the
    signature shows the default ``"spectral"`` critic's).
    """
    model = create_critic(critic, **critic_kwargs) if isinstance(critic, str) else critic
    if critic_kwargs and not isinstance(critic, str):
        raise TypeError("critic_kwargs are only used when critic is a name")
    return Learner(dls, model, loss_func=loss_func if loss_func is not None else critic_loss(),
                   metrics=[accuracy_thresh_expand] if metrics is None else metrics, wd=wd)


def pretrain_critic(
    crit_learn: Learner, epochs: int = 3, lr: float = 1e-3, progress: bool = True
) -> dict[str, Any]:
    """Pretrain the critic with ``fit_one_cycle(epochs, lr)``; returns the last epoch's losses, accuracy."""
    import fastai.callback.schedule  # noqa: F401  (attaches fit_one_cycle)

    t0 = time.time()
    if progress:
        crit_learn.fit_one_cycle(epochs, lr)
    else:
        with crit_learn.no_bar(), crit_learn.no_logging():
            crit_learn.fit_one_cycle(epochs, lr)
    rec = final_values(crit_learn)
    return {"epochs": epochs, "lr": lr, "seconds": round(time.time() - t0, 1), **rec,
            "accuracy": rec.get("accuracy_thresh_expand")}


def gan_opt_func(betas: tuple[float, float] = (0.0, 0.9)) -> Callable[..., Any]:
    """fastai's Adam with the GAN phase's ``betas`` (momentum 0, squared-gradient average 0.9)."""
    return partial(Adam, mom=float(betas[0]), sqr_mom=float(betas[1]))


# ----------------------------------------------------------------------------------------------
# step 3: the GAN phase (scored by the rules in colorkit.gan_callbacks)


def _smoothed(avg: Any) -> float | None:
    """The value of a fastai ``AvgSmoothLoss``, or None before its first batch."""
    if not getattr(avg, "count", 0):
        return None
    v = float(avg.value)
    return v if math.isfinite(v) else None


def _resolve_eval(gen_learn: Learner, eval_set: Any, size: int, n_eval: int | None, seed: int) -> EvalSet:
    if isinstance(eval_set, EvalSet):
        return eval_set
    if eval_set is None:
        items = [p for p in getattr(gen_learn.dls.valid_ds, "items", []) if isinstance(p, (str, Path))]
        if not items:
            raise ValueError("gan_finetune needs held-out photos: pass eval_set (a folder, files or an "
                             "EvalSet), or a learner whose validation set holds image paths")
        eval_set = items
    return load_eval_set(eval_set, size=size, n=n_eval, seed=seed)


def _image_size(dls: DataLoaders) -> int:
    """The side in px of a ``colorize_dls`` batch (from its info, else from one batch)."""
    size = getattr(dls, "colorize_info", {}).get("size")
    return int(size) if size else int(dls.one_batch()[0].shape[-1])



def gan_finetune(
    gen_learn: Learner,
    crit_learn: Learner,
    n_iter: int = 200,
    lr: float = 1e-5,
    *,
    every: int = 50,
    eval_set: Any = None,
    n_eval: int | None = 64,
    critic_weight: float = 1.0,
    feature_weight: float = 1.5,
    critic_thresh: float = 0.65,
    switcher: Callback | None = None,
    critic_lr_mult: float = 5.0,
    betas: tuple[float, float] = (0.0, 0.9),
    wd: float = 1e-3,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    score: Callable[[Mapping[str, float], Mapping[str, float]], float] | None = None,
    max_psnr_drop: float = 0.5,
    diverged: Callable[[Mapping[str, float], Mapping[str, float]], str | None] | None = check_divergence,
    checkpoint_dir: str | Path | None = None,
    seed: int | None = 42,
    progress: bool = True,
) -> GANReport:
    """Fine-tune ``gen_learn``'s generator against ``crit_learn``'s critic for ``n_iter`` iterations.

    Built with ``GANLearner.from_learners``: generator loss ``critic_weight * BCE(critic(fake), 1) +
    feature_weight * gen_learn.loss_func``; ``AdaptiveGANSwitcher(critic_thresh=...)`` (the critic
    trains until its loss is below ``critic_thresh``, then the generator takes one step) unless
    ``switcher`` is given; Adam with ``betas``; constant ``lr``, times ``critic_lr_mult`` on critic steps.
    An iteration is one batch (generator or critic step). Every ``every`` iterations the generator is
    scored with ``evaluate`` (default :func:`evaluate_generator` on ``eval_set``, by default the
    learner's validation photos, ``n_eval`` of them) and ``score`` (default :func:`nogan_score` with
    ``max_psnr_drop``); the starting generator is checkpoint 0, and the best checkpoint's weights are
    in ``gen_learn.model`` when this returns, also after an error or a divergence (which stops
    training and warns). Returns a :class:`GANReport` (JSON-ready with ``to_dict()``), also kept as
    ``gen_learn.gan_report``.
    """
    gen = generator_of(gen_learn)
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if evaluate is None:
        es = _resolve_eval(gen_learn, eval_set, _image_size(gen_learn.dls), n_eval, seed or 0)
        evaluate = partial(evaluate_generator, eval_set=es)
    if score is None:
        score = partial(nogan_score, max_psnr_drop=max_psnr_drop)
    steps = GANSteps()
    best = SaveBestGenerator(evaluate, score, every=every, diverged=diverged, checkpoint_dir=checkpoint_dir)
    if switcher is None:
        switcher = AdaptiveGANSwitcher(critic_thresh=critic_thresh)
    # fastai builds the optimizer from parameters that require grad: train the whole generator and critic
    flags = {id(p): p.requires_grad for m in (gen, crit_learn.model) for p in m.parameters()}
    for m in (gen, crit_learn.model):
        m.requires_grad_(True)
        for p in m.parameters():
            p.grad = None  # stale gradients from earlier training would be stepped (weight decay)
    gan = GANLearner.from_learners(
        gen_learn, crit_learn, switcher=switcher, weights_gen=(float(critic_weight), float(feature_weight)),
        opt_func=gan_opt_func(betas), wd=wd, show_img=False,
        cbs=[CriticLRMult(critic_lr_mult), GANStepHygiene(), steps, StopOnNaN(), best, StopAfter(n_iter),
             SkipValidation()],
    )
    n_batches = max(1, len(gen_learn.dls.train))
    t0 = time.time()
    if seed is not None:
        set_seed(seed)
    try:
        with warnings.catch_warnings():
            # fastai's own GANTrainer sets attributes (generator, critic, gen_mode) that it then warns about
            warnings.filterwarnings("ignore", message="You are shadowing an attribute")
            if progress:
                gan.fit(math.ceil(n_iter / n_batches), lr)
            else:
                with gan.no_bar(), gan.no_logging():
                    gan.fit(math.ceil(n_iter / n_batches), lr)
    finally:
        best.restore_best()  # never leave half-trained or NaN weights behind, whatever happened
        for m in (gen, crit_learn.model):
            for p in m.parameters():
                p.requires_grad_(flags.get(id(p), True))
        gen.train()
    top = best.best or {}
    trainer = gan.gan_trainer
    report = GANReport(
        iterations=steps.iteration, gen_steps=steps.gen_steps, crit_steps=steps.crit_steps, n_iter=n_iter, lr=lr,
        every=every, critic_weight=critic_weight, feature_weight=feature_weight, critic_thresh=critic_thresh,
        critic_lr_mult=critic_lr_mult, checkpoints=best.history, best_iter=top.get("iter"),
        best_metrics=top.get("metrics"), start_metrics=best.history[0]["metrics"] if best.history else None,
        improved=bool(top) and top.get("iter", 0) != 0, diverged=steps.stop_reason, diverged_at=steps.stopped_at,
        last_gen_loss=_smoothed(trainer.gen_loss), last_crit_loss=_smoothed(trainer.crit_loss),
        seconds=round(time.time() - t0, 1),
    )
    gen_learn.gan_report = report
    kept = "the starting generator" if not report.improved else "a GAN checkpoint"
    if report.diverged is not None:
        warnings.warn(f"the GAN phase diverged at iteration {report.diverged_at}: {report.diverged}; "
                      f"kept checkpoint {report.best_iter} ({kept})", stacklevel=2)
    elif not report.improved:
        warnings.warn(f"the GAN phase did not beat the starting generator in {report.iterations} iterations "
                      "(see report['checkpoints']); kept the starting generator", stacklevel=2)
    return report


# ----------------------------------------------------------------------------------------------
# the whole sequence


@delegates(gan_finetune, but=["gen_learn", "crit_learn", "n_iter", "lr", "every", "eval_set", "checkpoint_dir",
                              "seed", "progress"])
def nogan(
    gen_learn: Learner,
    cache_dir: str | Path,
    source: Any = None,
    *,
    size: int | None = None,
    n_render: int | None = None,
    critic: str | nn.Module = "spectral",
    critic_kwargs: dict[str, Any] | None = None,
    critic_epochs: int = 3,
    critic_lr: float = 1e-3,
    critic_bs: int = 16,
    n_iter: int = 200,
    lr: float = 1e-5,
    every: int = 50,
    eval_set: Any = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 42,
    progress: bool = True,
    **gan_kwargs: Any,
) -> NoGANReport:
    """The NoGAN sequence on a pretrained generator: render, pretrain a critic, short GAN fine-tuning.

    ``source``: the training photos to render and show the critic (default: ``gen_learn``'s training
    items); ``size`` defaults to ``gen_learn``'s batch size in px. The critic (``critic`` by name with
    ``critic_kwargs``, or a module) is pretrained ``critic_epochs`` epochs at ``critic_lr``; then
    :func:`gan_finetune` runs ``n_iter`` iterations at ``lr`` with ``gan_kwargs``. ``gen_learn.model``
    holds the best generator afterwards. Returns a :class:`NoGANReport` (``report["render"]``,
    ``report["critic"]`` and the GAN phase's fields).
    """
    t0 = time.time()
    size = int(size or _image_size(gen_learn.dls))
    if source is None:
        source = [p for p in getattr(gen_learn.dls.train_ds, "items", []) if isinstance(p, (str, Path))]
        if not source:
            raise ValueError("nogan needs source photos: pass source=, or a learner whose training items "
                             "are paths")
    print(f"NoGAN 1/3: rendering the generator's outputs to {cache_dir}")
    rendered = render_generated(gen_learn, source, cache_dir, size=size, n=n_render, seed=seed)
    print(f"  {rendered.rendered} rendered, {rendered.reused} reused from the cache")
    set_seed(seed)
    dls = critic_dls(None, rendered, size=size, bs=critic_bs, seed=seed, device=gen_learn.dls.device)
    crit = critic_learner(dls, critic, **(critic_kwargs or {}))
    print(f"NoGAN 2/3: pretraining the critic ({critic_epochs} epoch(s), lr {critic_lr})")
    crit_report = pretrain_critic(crit, epochs=critic_epochs, lr=critic_lr, progress=progress)
    crit_report["config"] = getattr(crit.model, "config", {})
    print(f"NoGAN 3/3: GAN fine-tuning ({n_iter} iterations, lr {lr}, checkpoint every {every})")
    gan_report = gan_finetune(gen_learn, crit, n_iter=n_iter, lr=lr, every=every, eval_set=eval_set,
                              checkpoint_dir=checkpoint_dir, seed=seed, progress=progress, **gan_kwargs)
    report = NoGANReport(rendered.to_dict(), crit_report, gan_report, round(time.time() - t0, 1))
    gen_learn.gan_report = report
    return report


@delegates(nogan, but=["gen_learn", "cache_dir", "source", "size", "checkpoint_dir", "seed"])
def train_gan(
    model: str | Path,
    data: Any,
    out: str | Path,
    *,
    valid: str | Path | None = None,
    size: int = 64,
    bs: int = 8,
    max_items: int | None = None,
    loss_pretrained: bool = True,
    loss_func: nn.Module | None = None,
    cache_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 42,
    **nogan_kwargs: Any,
) -> NoGANReport:
    """NoGAN fine-tuning of the saved colorizer ``model`` on the photos in ``data``; the best goes to ``out``.

    The CLI's ``--gan`` calls this. The generator (any registered kind, rebuilt from its model card) trains
    at ``size`` px (batch ``bs``) with the VGG16-bn feature loss (``loss_pretrained`` needs its ImageNet
    weights, see :class:`~colorkit.models.WeightsUnavailableError`; or pass ``loss_func``). Held-out photos
    for checkpoint scoring: ``valid`` when given, else a 10% split of ``data``. Renderings are cached in
    ``cache_dir`` (default ``out/gan_cache``, reused across runs), checkpoints in ``checkpoint_dir``
    (default ``out/gan_checkpoints``). ``out`` receives the best generator (the starting one if the GAN
    phase did not help) with the report in ``config.json`` ``training.gan`` and its metrics in
    ``metrics.json``. ``nogan_kwargs`` go to :func:`nogan`. Returns the :class:`NoGANReport`.
    """
    from .data import colorize_dls
    from .loss import vgg16_feature_loss

    out = Path(out)
    clr = load_colorizer(model)
    set_seed(seed)
    dls = colorize_dls(data, size=size, bs=bs, valid_folder=valid, max_items=max_items, seed=seed)
    if loss_func is None:
        loss_func = vgg16_feature_loss(pretrained=loss_pretrained)
    learn = colorize_learner(dls, pretrained=False, loss_func=loss_func, metrics=[], config=clr.model.config)
    learn.model.load_state_dict(clr.model.state_dict())
    start_hash = weights_hash(learn.model)
    report = nogan(learn, cache_dir if cache_dir is not None else out / "gan_cache",
                   checkpoint_dir=checkpoint_dir if checkpoint_dir is not None else out / "gan_checkpoints",
                   seed=seed, **nogan_kwargs)
    report.from_model = str(model)
    report.kept_start = weights_hash(learn.model) == start_hash
    training = {"gan": {k: v for k, v in report.to_dict().items() if k != "checkpoints"},
                "gan_checkpoints": report.gan.checkpoints,
                "data": {"source": str(data), "valid": str(valid) if valid else None, "size": size, "bs": bs,
                         "max_items": max_items},
                "from_model": str(model), "from_model_training": clr.card.training, "seed": seed}
    save_colorizer(learn, out, training=training, render_size=clr.render_size,
                   metrics=report.gan.best_metrics)
    return report
