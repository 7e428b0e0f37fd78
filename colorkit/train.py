"""Progressive resizing as data: a list of :class:`Stage` and the function that runs it, resumably.

``fit_progressive`` (also ``learn.fit_progressive``, as fastai's ``fine_tune``) rebuilds the loaders at each
stage's size, freezes or unfreezes the encoder, runs ``fit_one_cycle`` (or the learner's own ``fit_stage``) and
then writes a checkpoint (weights as safetensors + ``progress.json``) so an interrupted run resumes after the
last finished stage. It returns a :class:`FitReport`. :func:`resolve_start` decides what a training run starts
from (a saved model to fine-tune, or new weights), and :func:`train_colorizer` runs the whole recipe into a
saved model folder.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.learner import Learner
from fastcore.basics import patch
from fastcore.meta import delegates
from safetensors.torch import load_file, save_file

from . import modelcard
from .data import colorize_dls
from .distributed import barrier, broadcast_object, distributed, is_main_process, setup_distributed
from .io import atomic_write, write_json_atomic
from .modelcard import STAGE_KEYS, ModelCard, Record

__all__ = ["DEFAULT_STAGES", "FitReport", "Stage", "StageRecord", "StartPlan", "final_values", "fit_progressive",
           "parse_lr", "parse_stages", "resolve_start", "set_seed", "train_colorizer"]


@dataclass(frozen=True)
class Stage:
    """One step of the schedule: train ``epochs`` at ``size`` px.

    ``lr`` is a float or ``(lo, hi)`` (a ``slice`` is accepted too) for discriminative rates across
    the parameter groups. ``frozen`` trains only the decoder (meaningful with a pretrained encoder).
    ``data_pct`` uses a seeded fraction of the training photos (the published recipe's last stage uses half).
    """

    size: int
    epochs: int
    lr: float | tuple[float, float] = 1e-3
    bs: int = 16
    frozen: bool = False
    data_pct: float = 1.0

    def __post_init__(self) -> None:
        lr = self.lr
        if isinstance(lr, slice):
            lr = (lr.start, lr.stop)
        if isinstance(lr, (list, tuple)):
            lr = (float(lr[0]), float(lr[1]))
        object.__setattr__(self, "lr", lr)
        if self.size < 8 or self.epochs < 0 or self.bs < 1 or not 0 < self.data_pct <= 1:
            raise ValueError(f"invalid stage {self}")

    @property
    def lr_arg(self) -> float | slice:
        """The learning rate as fastai wants it (a ``slice`` for discriminative rates)."""
        return slice(*self.lr) if isinstance(self.lr, tuple) else self.lr

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lr"] = list(self.lr) if isinstance(self.lr, tuple) else self.lr
        return d


# The published recipe (../shared/RECIPE.md) with our 64 -> 128 -> 220 px progression.
DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage(64, epochs=1, lr=1e-3, bs=32, frozen=True),
    Stage(64, epochs=3, lr=(3e-7, 3e-4), bs=32),
    Stage(128, epochs=2, lr=(1e-7, 1e-4), bs=16),
    Stage(220, epochs=1, lr=(5e-8, 5e-5), bs=8, data_pct=0.5),
)


def parse_lr(text: str) -> float | tuple[float, float]:
    """A learning rate from text: ``"1e-3"``, or ``"1e-5..1e-3"`` / ``"1e-5:1e-3"`` (lo, hi) for discriminative
    rates across the parameter groups. Every value must be in (0, 1); anything else is a ValueError."""
    try:
        bits = [float(b) for b in text.replace("..", ":").split(":")]
    except ValueError:
        bits = []
    if len(bits) not in (1, 2) or any(not (0 < b < 1) for b in bits):
        raise ValueError(f"bad learning rate {text!r}: expected LR or LO..HI (or LO:HI), e.g. 1e-3, 1e-5..1e-3")
    return bits[0] if len(bits) == 1 else (bits[0], bits[1])


def parse_stages(text: str, lr: float | tuple[float, float] = (1e-5, 1e-3), bs: int | None = None) -> list[Stage]:
    """Parse ``"64:4,128:2:8,220:1@1e-5..1e-4"`` (``SIZE:EPOCHS[:BS][@LR]``, ``LR`` being ``1e-3`` or
    ``LO..HI``) into stages; stages without ``@LR`` use ``lr``."""
    stages = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        spec, at, lr_text = part.partition("@")
        bits = spec.split(":")
        if len(bits) not in (2, 3) or not all(b.isdigit() for b in bits):
            raise ValueError(f"bad stage {part!r} in {text!r}: expected SIZE:EPOCHS[:BS][@LR]")
        size, epochs = int(bits[0]), int(bits[1])
        b = int(bits[2]) if len(bits) == 3 else (bs or max(4, min(32, (64 * 32 // size) * 32 // 32)))
        try:
            stage_lr = parse_lr(lr_text) if at else lr
        except ValueError as e:
            raise ValueError(f"{e} in stage {part!r}") from None
        stages.append(Stage(size, epochs, lr=stage_lr, bs=b))
    if not stages:
        raise ValueError(f"no stages in {text!r}")
    return stages


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _progress_path(ckpt_dir: Path) -> Path:
    return ckpt_dir / "progress.json"


def _load_progress(ckpt_dir: Path, stages: Sequence[Stage]) -> dict[str, Any]:
    p = _progress_path(ckpt_dir)
    if not p.is_file():
        return {"stages": [s.to_dict() for s in stages], "finished": [], "history": []}
    prog = json.loads(p.read_text())
    if prog.get("stages") != [s.to_dict() for s in stages]:
        raise ValueError(
            f"{p}: the checkpoints were made with other stages ({prog.get('stages')}); "
            "use the same stages, another checkpoint folder, or resume=False"
        )
    return prog


def _save_checkpoint(learn: Learner, ckpt_dir: Path, i: int) -> Path:
    f = ckpt_dir / f"stage_{i}.safetensors"
    sd = {k: v.detach().cpu().contiguous() for k, v in learn.model.state_dict().items()}
    atomic_write(f, lambda tmp: save_file(sd, tmp))
    return f


def final_values(learn: Learner) -> dict[str, float | None]:
    """The last epoch's losses and metrics from ``learn.recorder`` (``{"train_loss": ..., "valid_loss": ...,
    metric: ...}``); NaN (e.g. a skipped validation) becomes None."""
    rec = learn.recorder
    names = [n for n in rec.metric_names if n not in ("epoch", "time")]
    vals = rec.values[-1] if rec.values else []
    out: dict[str, float | None] = {}
    for n, v in zip(names, vals, strict=False):
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[n] = None if math.isnan(f) else f
    return out


@dataclass
class StageRecord(Record):
    """What one stage of :func:`fit_progressive` did: its settings, seconds and final ``results`` (losses,
    metrics). Reads like the dict it is saved as: ``record["valid_loss"]``, ``record["size"]``."""

    stage: int
    settings: Stage
    seconds: float
    results: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, **self.settings.to_dict(), "seconds": self.seconds, **self.results}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageRecord:
        names = {f.name for f in fields(Stage)}
        return cls(int(d["stage"]), Stage(**{k: v for k, v in d.items() if k in names}), float(d.get("seconds", 0)),
                   {k: v for k, v in d.items() if k not in STAGE_KEYS})


@dataclass
class FitReport(Sequence):
    """What :func:`fit_progressive` did: one :class:`StageRecord` per stage (also the ones finished by an
    earlier, resumed run), in order; a sequence of them. ``resumed_after`` is the last stage an earlier run
    had finished (None for a fresh run)."""

    stages: list[StageRecord] = field(default_factory=list)
    resumed_after: int | None = None
    checkpoint_dir: Path | None = None

    def __getitem__(self, i: Any) -> Any:
        return self.stages[i]

    def __len__(self) -> int:
        return len(self.stages)

    def to_list(self) -> list[dict[str, Any]]:
        """The history as saved in ``config.json`` (``training.history``) and ``progress.json``."""
        return [r.to_dict() for r in self.stages]

    @property
    def final(self) -> dict[str, float | None]:
        """The last stage's results (empty before any stage ran)."""
        return dict(self.stages[-1].results) if self.stages else {}


@delegates(colorize_dls, but=["source", "size", "bs", "seed"])
def fit_progressive(
    learn: Learner,
    source: Any,
    stages: Sequence[Stage] = DEFAULT_STAGES,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    make_dls: Callable[..., Any] | None = None,
    seed: int = 42,
    **dls_kwargs: Any,
) -> FitReport:
    """Train ``learn`` through ``stages``, rebuilding its loaders from ``source`` at each stage's size.

    Also a method: ``learn.fit_progressive(source, stages)``. ``make_dls(source, size=, bs=, max_items=,
    seed=, **dls_kwargs)`` defaults to :func:`colorize_dls`. With ``checkpoint_dir``, weights are saved after
    every stage and, when ``resume``, finished stages are skipped (the last finished stage's weights are
    loaded first). Returns a :class:`FitReport` (per stage: settings, final losses and metrics, seconds).

    Under ``torchrun`` / ``accelerate launch`` each stage trains data-parallel on every process
    (:mod:`colorkit.distributed`); only rank 0 reads and writes the checkpoints (the others get its weights
    when the model is wrapped) and prints.
    """
    setup_distributed()  # before any loader is made, so each rank's land on its own device
    main = is_main_process()
    make_dls = make_dls or colorize_dls
    stages = list(stages)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    prog = {"stages": [s.to_dict() for s in stages], "finished": [], "history": []}
    report = FitReport(checkpoint_dir=ckpt)
    if ckpt is not None:
        if main:
            ckpt.mkdir(parents=True, exist_ok=True)
            if resume:
                prog = _load_progress(ckpt, stages)
        prog = broadcast_object(prog)
        if prog["finished"]:
            last = max(prog["finished"])
            if main:
                learn.model.load_state_dict(load_file(str(ckpt / f"stage_{last}.safetensors")))
                print(f"resuming after stage {last + 1}/{len(stages)} from {ckpt}")
            report.resumed_after = last
    report.stages = [StageRecord.from_dict(d) for d in prog["history"]]
    pretrained = getattr(learn, "pretrained", True)
    base_max_items = dls_kwargs.pop("max_items", None)
    n_all = None
    for i, s in enumerate(stages):
        if i in prog["finished"]:
            continue
        set_seed(seed + i)
        max_items = base_max_items
        if s.data_pct < 1:
            if n_all is None:
                probe = make_dls(source, size=s.size, bs=s.bs, seed=seed, max_items=base_max_items, **dls_kwargs)
                n_all = len(probe.train_ds) + len(probe.valid_ds)
            max_items = max(2, int(n_all * s.data_pct))
        learn.dls = make_dls(source, size=s.size, bs=s.bs, max_items=max_items, seed=seed, **dls_kwargs)
        if s.frozen and pretrained:
            learn.freeze()
        else:
            if s.frozen:
                warnings.warn(f"stage {i + 1}: the encoder is not pretrained, so it is trained too "
                              "(freezing a random encoder teaches nothing)", stacklevel=2)
            learn.unfreeze()
        if main:
            print(f"stage {i + 1}/{len(stages)}: {s.size}px, {s.epochs} epoch(s), lr {s.lr}, bs {s.bs}"
                  f"{', frozen encoder' if s.frozen and pretrained else ''}")
        t0 = time.time()
        if s.epochs:  # a learner with its own schedule (the conditional GAN presets') brings its fit_stage
            with distributed(learn):  # data-parallel under torchrun / accelerate launch; else nothing
                (getattr(learn, "fit_stage", None) or learn.fit_one_cycle)(s.epochs, s.lr_arg)
        record = StageRecord(i, s, round(time.time() - t0, 1), final_values(learn))
        report.stages.append(record)
        prog["history"].append(record.to_dict())
        prog["finished"].append(i)
        if ckpt is not None and main:
            _save_checkpoint(learn, ckpt, i)
            write_json_atomic(_progress_path(ckpt), prog)
        barrier()  # the next stage (or the caller) starts once rank 0's checkpoint is written
    return report


patch(fit_progressive)  # learn.fit_progressive(source, stages, ...), as fastai's learn.fine_tune


@dataclass(frozen=True)
class StartPlan:
    """What a training run starts from: ``model`` (a colorizer folder to fine-tune) or None (new weights),
    the ``arch`` and ``mode`` it trains, and ``note``, a sentence saying so."""

    model: Path | None
    arch: str
    mode: str
    note: str


def resolve_start(from_model: str | Path | None = None, arch: str | None = None, mode: str | None = None,
                  pretrained: bool = True) -> StartPlan:
    """Decide what :func:`train_colorizer` starts from (``colorkit train --from``).

    ``from_model``: a colorizer folder to fine-tune, ``"none"`` (train from scratch), or None (the starter
    model when installed, else from scratch). ``arch`` / ``mode`` None take the starting model's (new
    models: resnet34 / lab). When they differ from an explicit ``from_model``'s, that is a ValueError; when
    they differ from the starter's, a new model is trained. A ``from_model`` that is not a model folder is a
    FileNotFoundError.
    """
    enc = "an ImageNet-pretrained encoder" if pretrained else "random weights"
    if from_model is not None and str(from_model).lower() == "none":
        a, m = arch or "resnet34", mode or "lab"
        return StartPlan(None, a, m, f"training a new {a}/{m} model from {enc}")
    explicit = from_model is not None
    start = Path(from_model) if explicit else modelcard.STARTER_MODEL
    if not explicit and not (start / modelcard.CONFIG_FILE).is_file():
        a, m = arch or "resnet34", mode or "lab"
        return StartPlan(None, a, m, f"no starter model installed: training a new {a}/{m} model from {enc}")
    card = ModelCard.from_dir(start)
    have_arch, have_mode = card.arch or "resnet34", card.mode or "lab"
    clash = [f"{n} {w}" for n, w, have in (("arch", arch, have_arch), ("mode", mode, have_mode))
             if w is not None and w != have]
    if clash and explicit:
        raise ValueError(f"{start} is a {have_arch}/{have_mode} model; {', '.join(clash)} does not match it "
                         "(drop those options, or start from none to train from scratch)")
    if clash:
        a, m = arch or have_arch, mode or have_mode
        return StartPlan(None, a, m, f"the starter model is {have_arch}/{have_mode}, so {', '.join(clash)} "
                                     f"trains a new model from {enc}")
    what = "the starter model" if not explicit else str(start)
    return StartPlan(start, have_arch, have_mode,
                     f"fine-tuning {what} ({have_arch}/{have_mode}); pass --from none to train from scratch")


def _load_generator_weights(learn: Learner, model_dir: str | Path) -> dict[str, Any]:
    """Start ``learn`` from a saved colorizer (fine-tuning). Returns that model's config."""
    from .learner import generator_of, load_colorizer

    clr = load_colorizer(model_dir)
    card, ours = clr.card, learn.colorizer_config
    if (card.kind, card.arch, card.mode) != (ours.kind, getattr(ours, "arch", None), ours.mode):
        raise ValueError(f"{model_dir}: a {card.arch}/{card.mode} model cannot start a "
                         f"{getattr(ours, 'arch', ours.kind)}/{ours.mode} learner; pass the same --arch and --mode")
    generator_of(learn).load_state_dict(clr.model.state_dict())
    return clr.config


@delegates(colorize_dls, but=["source", "size", "bs", "valid_folder", "seed"])
def train_colorizer(
    data: Any,
    out: str | Path,
    stages: Sequence[Stage] | None = None,
    *,
    valid: str | Path | None = None,
    arch: str = "resnet34",
    mode: str = "lab",
    pretrained: bool = True,
    from_model: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    seed: int = 42,
    render_size: int = 256,
    loss: str | None = None,
    class_weight: float = 0.0,
    rebalance: float = 0.0,
    temperature: float = 0.38,
    precision: str = "auto",
    preset: str = "deoldify",
    settings: dict[str, Any] | None = None,
    track: str | Path | Sequence[str | Path] | None = None,
    **dls_kwargs: Any,
) -> Learner:
    """Train (or fine-tune, with ``from_model``) a colorizer on a folder of colour photos and save it to ``out``.

    Checkpoints go to ``checkpoint_dir`` (default ``out/checkpoints``) after every stage, so the run
    resumes where it stopped. ``out`` receives ``model.safetensors`` and ``config.json`` recording the
    recipe, the data summary and the per-stage history. ``loss``, ``class_weight``, ``rebalance``,
    ``temperature`` and ``precision`` go to :func:`colorkit.colorize_learner`. ``track`` (a folder or list
    of colour photos) adds a :class:`colorkit.regions.RegionHueTracker` writing ``checkpoints/track.jsonl``.
    ``preset`` trains another recipe of :mod:`colorkit.presets` (``stages`` and ``loss`` default to its own;
    ``settings`` override its network and GAN settings, see :func:`colorkit.recipes.preset_learner`); ``arch``
    applies to the presets with a ResNet. Returns the trained learner. Runs data-parallel under ``torchrun`` /
    ``accelerate launch`` (:mod:`colorkit.distributed`; only rank 0 writes).
    """
    from .learner import colorize_learner, save_colorizer
    from .recipes import preset_stages

    out = Path(out)
    stages = list(stages) if stages is not None else preset_stages(preset)
    setup_distributed()  # before the loaders are made, so each rank's land on its own device
    set_seed(seed)
    dls = colorize_dls(data, size=stages[0].size, bs=stages[0].bs, valid_folder=valid, seed=seed, **dls_kwargs)
    learn = colorize_learner(dls, arch=arch, mode=mode, pretrained=pretrained and from_model is None, loss=loss,
                             class_weight=class_weight, rebalance=rebalance, temperature=temperature,
                             precision=precision, preset=preset, **(settings or {}))
    start = _load_generator_weights(learn, from_model) if from_model else None
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out / "checkpoints"
    if track is not None:
        from .io import find_images
        from .regions import RegionHueTracker, fixed_photos

        if is_main_process():
            ckpt.mkdir(parents=True, exist_ok=True)
        files = find_images(track, recursive=True)
        files = files[:: max(1, len(files) // 24)][:24]  # a fixed, evenly spaced handful
        # every rank runs it (a forward pass of the wrapped model is a collective step); only rank 0 writes
        learn.add_cb(RegionHueTracker(fixed_photos(files), ckpt / "track.jsonl" if is_main_process() else None))
    t0 = time.time()
    history = fit_progressive(learn, data, stages, checkpoint_dir=ckpt, resume=resume, seed=seed,
                              valid_folder=valid, **dls_kwargs)
    info = getattr(learn.dls, "colorize_info", {})
    training = {
        "data": {"source": str(data), "valid": str(valid) if valid else None,
                 "n_train": info.get("n_train"), "n_valid": info.get("n_valid"),
                 "skipped": [str(p) for p, *_ in info.get("skipped", [])],
                 "dropped_gray": len(info.get("dropped_gray", []))},
        "stages": [s.to_dict() for s in stages],
        "history": history.to_list(),
        "seed": seed,
        "loss": learn.loss_name,
        "class_weight": class_weight,
        "rebalance": rebalance,
        "precision": learn.precision,
        "in_memory": bool(dls_kwargs.get("in_memory", False)),
        "pretrained_encoder": bool(getattr(learn, "pretrained", False)),
        "from_model": str(from_model) if from_model else None,
        "from_model_training": start.get("training") if start else None,
        "seconds_this_run": round(time.time() - t0, 1),
        "device": str(learn.dls.device),
        "torch": torch.__version__,
    }
    if getattr(learn, "preset", None):  # a preset other than deoldify, and what its recipe adds
        training["preset"] = learn.preset
        if settings:
            training["settings"] = dict(settings)
        if hasattr(learn, "gan_settings"):
            training["cgan"] = {**learn.gan_settings, "critic": learn.critic_config}
    if is_main_process():
        save_colorizer(learn, out, training=training, render_size=render_size)
    barrier()
    learn.render_size = render_size
    return learn
