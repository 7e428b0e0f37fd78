"""Progressive resizing as data: a list of :class:`Stage` and the function that runs it, resumably.

``fit_progressive`` rebuilds the loaders at each stage's size, freezes or unfreezes the encoder, runs
``fit_one_cycle`` and then writes a checkpoint (weights as safetensors + ``progress.json``) so an
interrupted run resumes after the last finished stage.
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.learner import Learner
from safetensors.torch import load_file, save_file

from .data import colorize_dls
from .io import atomic_write, write_json_atomic

__all__ = ["DEFAULT_STAGES", "Stage", "fit_progressive", "parse_lr", "parse_stages", "set_seed"]


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


def _final_values(learn: Learner) -> dict[str, float]:
    rec = learn.recorder
    names = [n for n in rec.metric_names if n not in ("epoch", "time")]
    vals = rec.values[-1] if rec.values else []
    out = {}
    for n, v in zip(names, vals, strict=False):
        try:
            out[n] = float(v)
        except (TypeError, ValueError):
            continue
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def fit_progressive(
    learn: Learner,
    source: Any,
    stages: Sequence[Stage] = DEFAULT_STAGES,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    make_dls: Callable[..., Any] | None = None,
    seed: int = 42,
    **dls_kwargs: Any,
) -> list[dict[str, Any]]:
    """Train ``learn`` through ``stages``, rebuilding its loaders from ``source`` at each stage's size.

    ``make_dls(source, size=, bs=, max_items=, seed=, **dls_kwargs)`` defaults to :func:`colorize_dls`.
    With ``checkpoint_dir``, weights are saved after every stage and, when ``resume``, finished stages
    are skipped (the last finished stage's weights are loaded first). Returns the per-stage history
    (final losses and metrics, seconds).
    """
    make_dls = make_dls or colorize_dls
    stages = list(stages)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    prog = {"stages": [s.to_dict() for s in stages], "finished": [], "history": []}
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
        if resume:
            prog = _load_progress(ckpt, stages)
        if prog["finished"]:
            last = max(prog["finished"])
            learn.model.load_state_dict(load_file(str(ckpt / f"stage_{last}.safetensors")))
            print(f"resuming after stage {last + 1}/{len(stages)} from {ckpt}")
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
        print(f"stage {i + 1}/{len(stages)}: {s.size}px, {s.epochs} epoch(s), lr {s.lr}, bs {s.bs}"
              f"{', frozen encoder' if s.frozen and pretrained else ''}")
        t0 = time.time()
        if s.epochs:
            learn.fit_one_cycle(s.epochs, s.lr_arg)
        entry = {"stage": i, **s.to_dict(), "seconds": round(time.time() - t0, 1), **_final_values(learn)}
        prog["history"].append(entry)
        prog["finished"].append(i)
        if ckpt is not None:
            _save_checkpoint(learn, ckpt, i)
            write_json_atomic(_progress_path(ckpt), prog)
    return prog["history"]


def _load_generator_weights(learn: Learner, model_dir: str | Path) -> dict[str, Any]:
    """Start ``learn`` from a saved colorizer (fine-tuning). Returns that model's config."""
    from .learner import load_colorizer

    clr = load_colorizer(model_dir)
    gen_cfg, ours = clr.config["generator"], learn.colorizer_config
    if (gen_cfg["arch"], gen_cfg["mode"]) != (ours.arch, ours.mode):
        raise ValueError(f"{model_dir}: a {gen_cfg['arch']}/{gen_cfg['mode']} model cannot start a "
                         f"{ours.arch}/{ours.mode} learner; pass the same --arch and --mode")
    learn.model.load_state_dict(clr.model.state_dict())
    return clr.config


def train_colorizer(
    data: Any,
    out: str | Path,
    stages: Sequence[Stage] = DEFAULT_STAGES,
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
    loss: str = "feature",
    class_weight: float = 0.0,
    rebalance: float = 0.0,
    temperature: float = 0.38,
    precision: str = "auto",
    track: str | Path | Sequence[str | Path] | None = None,
    **dls_kwargs: Any,
) -> Learner:
    """Train (or fine-tune, with ``from_model``) a colorizer on a folder of colour photos and save it to ``out``.

    Checkpoints go to ``checkpoint_dir`` (default ``out/checkpoints``) after every stage, so the run
    resumes where it stopped. ``out`` receives ``model.safetensors`` and ``config.json`` recording the
    recipe, the data summary and the per-stage history. ``loss``, ``class_weight``, ``rebalance``,
    ``temperature`` and ``precision`` go to :func:`colorkit.colorize_learner`. ``track`` (a folder or list
    of colour photos) adds a :class:`colorkit.regions.RegionHueTracker` writing ``checkpoints/track.jsonl``.
    Returns the trained learner.
    """
    from .learner import colorize_learner, save_colorizer

    out = Path(out)
    stages = list(stages)
    set_seed(seed)
    dls = colorize_dls(data, size=stages[0].size, bs=stages[0].bs, valid_folder=valid, seed=seed, **dls_kwargs)
    learn = colorize_learner(dls, arch=arch, mode=mode, pretrained=pretrained and from_model is None, loss=loss,
                             class_weight=class_weight, rebalance=rebalance, temperature=temperature,
                             precision=precision)
    start = _load_generator_weights(learn, from_model) if from_model else None
    ckpt = Path(checkpoint_dir) if checkpoint_dir else out / "checkpoints"
    if track is not None:
        from .io import find_images
        from .regions import RegionHueTracker, fixed_photos

        ckpt.mkdir(parents=True, exist_ok=True)
        files = find_images(track, recursive=True)
        files = files[:: max(1, len(files) // 24)][:24]  # a fixed, evenly spaced handful
        learn.add_cb(RegionHueTracker(fixed_photos(files), ckpt / "track.jsonl"))
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
        "history": history,
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
    save_colorizer(learn, out, training=training, render_size=render_size)
    learn.render_size = render_size
    return learn
