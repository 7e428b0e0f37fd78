"""Every preset trained for the same wall-clock time at the same size, then scored the same way: one table.

Usage::

    python bench/compare_presets.py [--budget 480] [--size 64] [--bs 16] [--presets pix2pix,fusion]
                                    [--out /tmp/colorkit-compare-presets] [--eval-size 256] [--limit N]

Each preset (:mod:`colorkit.presets`) trains from random weights (no ImageNet weights here: the deoldify
feature loss uses a seeded random VGG16-bn, autoencoder-fusion a random ResNet) on ``photos/train`` +
``photos/more`` of ``../shared/data``, decoded once into memory, at ``--size`` px, batch ``--bs``, for
``--budget`` seconds of training (one thread, bf16 where the CPU has it: ``--precision auto``). The
learning rate follows the preset's own schedule shape over the budget (one-cycle for the MSE and feature-loss
presets, pix2pix's flat-then-linear for the GANs), at the preset's published rate (deoldify: 1e-3, the rate
of our from-scratch runs). Then each model is saved (``OUT/PRESET/model``) and scored with
:func:`colorkit.evaluate.evaluate` on ``photos/valid`` at ``--eval-size`` px, rendered at the model's render
size (``--render-size``, default the training size), as ``colorkit evaluate`` does, next to the gray and
mean-chroma baselines.

Resumable: a preset whose ``OUT/PRESET/result.json`` and model exist is not trained again; the table is
printed from all results in ``OUT``. Prints a Markdown table and a final JSON line. Not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastai.callback.core import Callback, CancelFitException  # noqa: E402
from fastai.callback.schedule import combined_cos  # noqa: E402

from colorkit.cgan import flat_linear  # noqa: E402
from colorkit.data import colorize_dls  # noqa: E402
from colorkit.evaluate import evaluate  # noqa: E402
from colorkit.gan_callbacks import SkipValidation  # noqa: E402
from colorkit.io import write_json_atomic  # noqa: E402
from colorkit.learner import colorize_learner, generator_of, load_colorizer, save_colorizer  # noqa: E402
from colorkit.presets import DEFAULT_PRESET, PRESET_NAMES, get_preset  # noqa: E402
from colorkit.train import set_seed  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_LR = {DEFAULT_PRESET: 1e-3}  # the others: their published rate (the first stage's)


class TimeBudget(Callback):
    """Train for ``seconds`` of wall-clock time: the learning rate at each batch is ``sched(elapsed / seconds)``
    and training stops after the first batch past the budget. Counts the steps (batches) and their seconds."""

    order = 61  # after fastai's ParamScheduler would run (none is used here)

    def __init__(self, seconds: float, sched: Any):
        self.seconds, self.sched = float(seconds), sched
        self.steps, self.t0 = 0, None

    def before_fit(self) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def before_batch(self) -> None:
        if self.training:
            self.opt.set_hyper("lr", self.sched(min(1.0, self.elapsed() / self.seconds)))

    def after_batch(self) -> None:
        if self.training:
            self.steps += 1
            if self.elapsed() >= self.seconds:
                raise CancelFitException()


def _lr(preset: str) -> float:
    p = get_preset(preset)
    return BENCH_LR.get(preset) or float(p.stages[0][2])


def _learner(preset: str, dls: Any, precision: str) -> Any:
    if preset == DEFAULT_PRESET:
        return colorize_learner(dls, pretrained=False, precision=precision)  # random VGG16-bn feature loss
    return colorize_learner(dls, preset=preset, pretrained=False, precision=precision)


def train_one(preset: str, dls: Any, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Train ``preset`` for the budget, save it to ``folder/model``; returns what happened."""
    set_seed(args.seed)
    learn = _learner(preset, dls, args.precision)
    lr = _lr(preset)
    sched = flat_linear(lr) if get_preset(preset).is_gan else combined_cos(0.25, lr / 25, lr, lr / 1e5)
    budget = TimeBudget(args.budget, sched)
    learn.unfreeze()
    t0 = time.perf_counter()
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.filterwarnings("ignore", message="You are shadowing an attribute")
        learn.fit(10_000, lr, cbs=[budget, SkipValidation()])
    seconds = time.perf_counter() - t0
    gen = generator_of(learn)
    critic = getattr(learn.model, "critic", None)
    info = {
        "preset": preset, "lr": lr, "steps": budget.steps, "train_seconds": round(budget.elapsed(), 1),
        "s_per_step": budget.elapsed() / max(1, budget.steps), "wall_seconds": round(seconds, 1),
        "params": sum(p.numel() for p in gen.parameters()),
        "critic_params": sum(p.numel() for p in critic.parameters()) if critic is not None else 0,
        "precision": learn.precision, "loss": learn.loss_name, "size": args.size, "bs": args.bs,
        "images_seen": budget.steps * args.bs,
    }
    training = {"bench": "bench/compare_presets.py", **info, "seed": args.seed,
                "data": {"source": [str(DATA / "photos" / "train"), str(DATA / "photos" / "more")],
                         "n_train": dls.colorize_info.get("n_train")}}
    if getattr(learn, "preset", None):
        training["preset"] = learn.preset
    save_colorizer(learn, folder / "model", render_size=args.render_size or args.size, training=training)
    return info


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("psnr", "ssim", "ciede2000", "colorfulness", "colorfulness_target", "colorfulness_gap")
    return {k: summary.get(k) for k in keys}


def evaluate_one(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    clr = load_colorizer(folder / "model")
    res = evaluate(clr, DATA / "photos" / "valid", size=args.eval_size, limit=args.limit, baselines=(),
                   fid=False, render_size=clr.render_size)
    return {**_scores(res.summary["model"]), "n_images": res.n_images, "render_size": clr.render_size}


def baselines(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    f = out / "baselines.json"
    if f.is_file():
        return json.loads(f.read_text())
    res = evaluate(None, DATA / "photos" / "valid", size=args.eval_size, limit=args.limit, fid=False)
    rows = {m: {**_scores(res.summary[m]), "n_images": res.n_images} for m in res.methods}
    write_json_atomic(f, rows)
    return rows


def _f(v: Any, d: int = 2) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"


def table(results: dict[str, dict[str, Any]], base: dict[str, Any]) -> str:
    head = ("| preset | PSNR | CIEDE2000 | colourfulness | colourfulness gap | SSIM | s/step | steps | images seen "
            "| parameters |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for name, r in results.items():
        crit = f" (+{r['critic_params'] / 1e6:.1f} M critic)" if r.get("critic_params") else ""
        lines.append(f"| {name} | {_f(r['psnr'])} | {_f(r['ciede2000'])} | {_f(r['colorfulness'])} | "
                     f"{_f(r['colorfulness_gap'])} | {_f(r['ssim'], 4)} | {_f(r['s_per_step'], 3)} | {r['steps']} | "
                     f"{r['images_seen']} | {r['params'] / 1e6:.1f} M{crit} |")
    for name, r in base.items():
        lines.append(f"| *{name.replace('_', '-')}* | {_f(r['psnr'])} | {_f(r['ciede2000'])} | "
                     f"{_f(r['colorfulness'])} | {_f(r['colorfulness_gap'])} | {_f(r['ssim'], 4)} | | | | |")
    target = next(iter(base.values()), {}).get("colorfulness_target")
    lines.append(f"\nground-truth colourfulness {_f(target)}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=480, help="training seconds per preset")
    ap.add_argument("--size", type=int, default=64, help="training size in px")
    ap.add_argument("--bs", type=int, default=16, help="batch size (every preset)")
    ap.add_argument("--presets", default=",".join(PRESET_NAMES), help="comma-separated preset names")
    ap.add_argument("--out", default="/tmp/colorkit-compare-presets", help="models and results (resumable)")
    ap.add_argument("--eval-size", type=int, default=256, help="evaluation crop in px")
    ap.add_argument("--render-size", type=int, default=None, help="render size saved with each model (default: --size)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate on the first N valid photos only")
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.presets.split(",") if n.strip()]
    for n in names:
        get_preset(n)  # a bad name fails now, listing the valid ones
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dls = None
    for name in names:
        folder = out / name
        done = folder / "result.json"
        if done.is_file() and (folder / "model" / "model.safetensors").is_file():
            print(f"{name}: done earlier ({done})", flush=True)
            continue
        if dls is None:
            t0 = time.perf_counter()
            dls = colorize_dls([DATA / "photos" / "train", DATA / "photos" / "more"], size=args.size, bs=args.bs,
                               valid_folder=DATA / "photos" / "valid", seed=args.seed, in_memory=True)
            print(f"data: {dls.colorize_info.get('n_train')} training photos decoded in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        print(f"{name}: training for {args.budget:.0f} s at {args.size} px, batch {args.bs}", flush=True)
        info = train_one(name, dls, args, folder)
        print(f"{name}: {info['steps']} steps, {info['s_per_step']:.3f} s/step; evaluating", flush=True)
        write_json_atomic(done, {**info, **evaluate_one(folder, args)})
    results = {}
    for name in names:
        f = out / name / "result.json"
        if f.is_file():
            results[name] = json.loads(f.read_text())
    base = baselines(args, out)
    print(table(results, base))
    print(json.dumps({"results": results, "baselines": base}, default=str))


if __name__ == "__main__":
    main()
