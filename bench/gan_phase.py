"""Colourfulness gap and PSNR on the shared validation photos before and after the NoGAN phase, in one run.

Usage::

    python bench/gan_phase.py --model runs/starter [--size 64] [--n-iter 60] [--every 20] [--n-render 256]

``--model`` is a saved colorizer (``save_colorizer`` folder); without one (or when the folder has no
``model.safetensors`` yet) a resnet18 generator is first trained briefly at ``--size`` px. The GAN phase
is :func:`colorkit.nogan.train_gan` (render -> critic pretraining -> GAN fine-tuning with checkpoint
selection). ``photos/valid`` is split in two seeded halves: checkpoints are chosen on the first
("select"), and the second ("report") is never seen by the selection, so its before/after figures are
unbiased. The feature loss uses ImageNet VGG16-bn weights when cached, else a seeded random VGG (said
in the output). Prints a table and a final JSON line. Not a test; CPU by default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorkit.data import sample_files  # noqa: E402
from colorkit.gan_callbacks import evaluate_generator, load_eval_set  # noqa: E402
from colorkit.io import find_images  # noqa: E402
from colorkit.learner import colorize_learner, load_colorizer, save_colorizer  # noqa: E402
from colorkit.loss import vgg16_feature_loss  # noqa: E402
from colorkit.models import WeightsUnavailableError  # noqa: E402
from colorkit.nogan import train_gan  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def feature_loss() -> tuple[torch.nn.Module, str]:
    try:
        return vgg16_feature_loss(pretrained=True), "VGG16-bn ImageNet"
    except WeightsUnavailableError:
        return vgg16_feature_loss(pretrained=False), "VGG16-bn random (ImageNet weights not cached)"


def quick_generator(train: Path, valid: Path, out: Path, size: int, epochs: int, max_items: int) -> Path:
    """Train a resnet18 generator briefly (random encoder) when no saved model is given."""
    from colorkit.data import colorize_dls

    dls = colorize_dls(train, size=size, bs=16, valid_folder=valid, max_items=max_items, seed=0)
    learn = colorize_learner(dls, arch="resnet18", mode="lab", pretrained=False, loss_func=feature_loss()[0],
                             metrics=[])
    learn.fit_one_cycle(epochs, 1e-3)
    return save_colorizer(learn, out)


def split_valid(valid: Path, seed: int) -> tuple[list[Path], list[Path]]:
    """Two seeded halves of the validation photos (colorkit's one subsampler picks the first)."""
    files = find_images(valid)
    select = sample_files(files, len(files) // 2, seed)
    chosen = set(select)
    return select, [f for f in files if f not in chosen]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="saved colorizer to start from")
    ap.add_argument("--train", type=Path, default=DATA / "photos" / "train")
    ap.add_argument("--valid", type=Path, default=DATA / "photos" / "valid")
    ap.add_argument("--out", type=Path, default=Path("/tmp/colorkit_gan_bench"))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--n-render", type=int, default=256, help="training photos rendered for the critic")
    ap.add_argument("--critic-nf", type=int, default=64, help="critic filters (the recipe uses 256)")
    ap.add_argument("--critic-blocks", type=int, default=3)
    ap.add_argument("--critic-epochs", type=int, default=2)
    ap.add_argument("--n-iter", type=int, default=60, help="GAN iterations (batches, critic or generator)")
    ap.add_argument("--every", type=int, default=20, help="checkpoint every N iterations")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--feature-weight", type=float, default=1.5)
    ap.add_argument("--critic-thresh", type=float, default=0.65)
    ap.add_argument("--max-psnr-drop", type=float, default=0.5)
    ap.add_argument("--pretrain-epochs", type=int, default=1, help="only without --model")
    ap.add_argument("--pretrain-items", type=int, default=400, help="only without --model")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="fastai")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    model = args.model
    if model is None or not (model / "model.safetensors").is_file():
        print(f"no saved model at {model}; training a resnet18 generator for {args.pretrain_epochs} epoch(s) "
              f"on {args.pretrain_items} photos at {args.size}px")
        model = quick_generator(args.train, args.valid, args.out / "start", args.size, args.pretrain_epochs,
                                args.pretrain_items)
    select, report = split_valid(args.valid, args.seed)
    eval_select = load_eval_set(select, size=args.size)
    eval_report = load_eval_set(report, size=args.size)
    loss, loss_name = feature_loss()
    print(f"model {model}; feature loss: {loss_name}; valid split {len(select)} select / {len(report)} report")

    start = load_colorizer(model).model
    before = {"select": evaluate_generator(start, eval_select), "report": evaluate_generator(start, eval_report)}
    t_gan = time.time()
    rep = train_gan(
        model, args.train, args.out / "gan", size=args.size, bs=args.bs, loss_func=loss, seed=args.seed,
        n_render=args.n_render, critic_kwargs=dict(nf=args.critic_nf, n_blocks=args.critic_blocks),
        critic_epochs=args.critic_epochs, n_iter=args.n_iter, every=args.every, lr=args.lr,
        eval_set=eval_select, feature_weight=args.feature_weight, critic_thresh=args.critic_thresh,
        max_psnr_drop=args.max_psnr_drop,
    )
    gan_seconds = time.time() - t_gan
    final = load_colorizer(args.out / "gan").model
    after = {"select": evaluate_generator(final, eval_select), "report": evaluate_generator(final, eval_report)}

    print(f"\nGAN phase: {rep.iterations} iterations ({rep.gen_steps} generator, {rep.crit_steps} "
          f"critic), critic accuracy {rep.critic.get('accuracy')}, best checkpoint {rep.best_iter}, "
          f"diverged: {rep.diverged}, {gan_seconds:.0f}s")
    print(f"{'checkpoint':>10} {'psnr':>8} {'cf gap':>8} {'score':>9}")
    for c in rep.checkpoints:
        m = c["metrics"]
        score = "excluded" if c["score"] is None else f"{c['score']:.2f}"
        print(f"{c['iter']:>10} {m['psnr']:8.2f} {m['colorfulness_gap']:8.2f} {score:>9}")
    print(f"\n{'set':>7} {'':>7} {'psnr':>8} {'CF':>7} {'CF target':>10} {'CF gap':>8}")
    for split in ("select", "report"):
        for name, m in (("before", before[split]), ("after", after[split])):
            print(f"{split:>7} {name:>7} {m['psnr']:8.2f} {m['colorfulness']:7.2f} "
                  f"{m['colorfulness_target']:10.2f} {m['colorfulness_gap']:8.2f}")
    summary = {
        "model": str(model), "size": args.size, "feature_loss": loss_name, "n_iter": args.n_iter,
        "iterations": rep.iterations, "best_iter": rep.best_iter, "diverged": rep.diverged,
        "critic_accuracy": rep.critic.get("accuracy"), "before": before, "after": after,
        "gan_seconds": round(gan_seconds, 1), "total_seconds": round(time.time() - t0, 1),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
