"""``colorkit train``: train or fine-tune a model (:func:`colorkit.train.train_colorizer`), optionally NoGAN
(:func:`colorkit.nogan.train_gan`), then evaluate it on held-out photos."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..presets import DEFAULT_PRESET, PRESETS  # standard library only
from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

LOSSES = ("feature", "l1")  # = colorkit.loss.LOSSES (not imported: building the parser stays torch-free)


HELP = "train or fine-tune a model on colour photos"
DESCRIPTION = """\
Train a colorizer on a folder of COLOUR photos (gray inputs are made on the fly) and save it
to MODEL. By default it fine-tunes the starter model; --from none trains from scratch (with
an ImageNet encoder unless --no-pretrained). Progressive resizing: --stages SIZE:EPOCHS[:BS].
--preset trains another published recipe (pix2pix, fusion, ...; docs/presets.md).
Each finished stage is checkpointed under MODEL/checkpoints, so an interrupted run resumes.
Unreadable photos are skipped and listed. With --valid, the model is then evaluated on that
held-out folder: MODEL/metrics.json and a before/after grid PNG are written.
"""
EPILOG = """\
Example:
  colorkit train family_photos/ -o family_model/ --valid family_valid/
  colorkit train photos/ -o m/ --from none --arch resnet18 --stages 64:4,128:2,220:1 --seed 1
  colorkit train photos/ -o p2p/ --preset pix2pix --stages 256:20:4 --set l1_weight=80
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "train", HELP, DESCRIPTION, EPILOG)
    p.add_argument("data", nargs="+", metavar="DATA", help="folder(s) of colour photos (searched recursively)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="folder to save the model to")
    p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET, metavar="NAME",
                   help=f"the recipe to train: {', '.join(PRESETS)} (default: %(default)s; docs/presets.md). A "
                        "preset other than deoldify trains from scratch unless --from names a model of its kind")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override one of the preset's settings (repeatable), e.g. --set nf=32 --set l1_weight=50; "
                        "VALUE is JSON or a plain word")
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help="generator loss: VGG16 feature loss, or L1 on the Lab chroma (default: the preset's, "
                        "feature for deoldify)")
    p.add_argument("--class-weight", type=float, default=0.0, metavar="W",
                   help="W > 0: predict a distribution over ab colour bins and add W x its cross-entropy "
                        "(more saturated colour; see docs/starter-model.md)")
    p.add_argument("--rebalance", type=float, default=0.0, metavar="LAMBDA",
                   help="class rebalancing, 0 (off) .. 1: of the colour-class term with --class-weight, else of "
                        "the L1 loss's pixels (--loss l1: rare, saturated colours weigh more)")
    p.add_argument("--temperature", type=float, default=0.38, metavar="T",
                   help="annealed-mean temperature saved with a colour-class model (lower: more colour)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast + channels_last where the hardware has it (auto), or forced")
    p.add_argument("--in-memory", action="store_true",
                   help="decode every photo once and keep it in memory (much faster at small sizes; "
                        "augmentation is crops and flips only)")
    p.add_argument("--track", default=None, metavar="DIR",
                   help="after every epoch, log which-colour-where scores (sky, vegetation, skin hue) on the "
                        "photos in DIR to MODEL/checkpoints/track.jsonl")
    p.add_argument("--valid", metavar="DIR", default=None,
                   help="held-out folder of colour photos for validation and the final evaluation "
                        "(default: a seeded 10%% of DATA for validation, no final evaluation)")
    p.add_argument("--from", dest="from_model", metavar="MODEL", default=None,
                   help="model to fine-tune, or 'none' (default: the starter model when installed)")
    p.add_argument("--from-scratch", action="store_true", help="same as --from none")
    p.add_argument("--stages", default=None, metavar="SPEC",
                   help="progressive resizing, SIZE:EPOCHS[:BS][@LR] comma-separated, e.g. 64:4,128:2,220:1 or "
                        "64:1:16@1e-3,128:1@3e-4..6e-4 (LR or LO..HI; default: --lr) (default: the published recipe)")
    p.add_argument("--bs", type=int, default=None, metavar="N", help="batch size for every stage")
    p.add_argument("--lr", default=None, metavar="LR", help="learning rate, or LO:HI across the layer groups")
    p.add_argument("--arch", choices=("resnet18", "resnet34", "resnet50", "resnet101"), default=None,
                   help="encoder (default: the --from model's, else resnet34)")
    p.add_argument("--mode", choices=("rgb", "lab"), default=None,
                   help="what the network predicts: lab chroma or rgb (default: the --from model's, else lab)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="random encoder and VGG loss weights instead of ImageNet ones (no download needed)")
    p.add_argument("--gan", action="store_true",
                   help="finish with NoGAN fine-tuning (critic pretraining, then a short GAN phase that "
                        "keeps the best checkpoint)")
    p.add_argument("--gan-iters", type=int, default=200, metavar="N", help="GAN iterations with --gan")
    p.add_argument("--gan-size", type=int, default=None, metavar="N",
                   help="image size of the GAN phase (default: the last stage's)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue after the last finished stage found in MODEL/checkpoints (on by default)")
    p.add_argument("--seed", type=int, default=42, help="random seed (split, sampling, weights)")
    p.add_argument("--max-items", type=int, default=None, metavar="N",
                   help="train on a seeded sample of N photos (quick runs)")
    p.add_argument("--render-size", type=int, default=256, metavar="N", help="render size saved with the model")
    p.add_argument("--eval-size", type=int, default=256, metavar="N", help="image size for the final evaluation")
    common.add_threads(p)
    return p


def _check_args(args: argparse.Namespace, datas: list[Path], out: Path) -> None:
    for data in datas:
        if not data.exists():
            raise CLIError(f"no such folder: {data}")
        if data.is_dir() and common.is_within(out, data):
            raise CLIError(f"-o {out} is inside the training folder {data}: the model's report images would be "
                           "read as training photos next time; choose a folder outside it")
    if args.class_weight < 0 or not 0 <= args.rebalance <= 1 or args.temperature <= 0:
        raise CLIError("--class-weight must be >= 0, --rebalance in [0, 1] and --temperature > 0")
    if args.rebalance and not args.class_weight and args.loss != "l1":
        raise CLIError("--rebalance weights the colour-class term (--class-weight W) or the L1 loss (--loss l1); "
                       "the feature loss cannot be rebalanced")
    if args.valid is not None and not Path(args.valid).is_dir():
        raise CLIError(f"--valid {args.valid}: no such folder")
    if args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")


def _stages(args: argparse.Namespace) -> list[Any]:
    from dataclasses import replace

    from ..recipes import preset_stages
    from ..train import parse_lr, parse_stages

    try:
        lr = parse_lr(args.lr) if args.lr is not None else None
    except ValueError:
        raise CLIError(f"--lr {args.lr!r}: expected a number (1e-3) or LO:HI (1e-5:1e-3)") from None
    try:
        if args.stages:
            return parse_stages(args.stages, **({"lr": lr} if lr is not None else {}), bs=args.bs)
        changes = {**({"bs": args.bs} if args.bs else {}), **({"lr": lr} if lr is not None else {})}
        return [replace(s, **changes) for s in preset_stages(args.preset)]
    except ValueError as e:
        raise CLIError(f"--stages: {e}") from None


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as a dict (values parsed as JSON when they are, else kept as text)."""
    import json

    out: dict[str, Any] = {}
    for item in args.settings:
        key, eq, value = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise CLIError(f"--set {item!r}: expected KEY=VALUE, e.g. --set nf=32")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    if out and args.preset == DEFAULT_PRESET:
        raise CLIError("--set applies to the presets other than deoldify (use the deoldify options instead)")
    return out


def _check_preset(args: argparse.Namespace) -> str | None:
    """Refuse deoldify-only options with another preset; the model to start from (None: the default rules)."""
    from ..presets import get_preset

    preset = get_preset(args.preset)
    args.arch_pretrained = preset.pretrained_encoder
    if preset.name == DEFAULT_PRESET:
        return args.from_model
    unet = [o for o, bad in (("--class-weight", args.class_weight), ("--rebalance", args.rebalance),
                             ("--temperature", args.temperature != 0.38)) if bad]
    if unet:
        raise CLIError(f"{', '.join(unet)}: options of the deoldify preset's ResNet U-Net, not of {preset.name}")
    if args.arch is not None and not preset.pretrained_encoder:
        raise CLIError(f"--arch: preset {preset.name} has no ResNet encoder")
    return args.from_model or "none"  # the starter is a deoldify model: a preset trains from scratch


def run(args: argparse.Namespace) -> int:
    datas, out = [Path(d) for d in args.data], Path(args.output)
    _check_args(args, datas, out)
    settings = _settings(args)
    from_model = _check_preset(args)
    from ..train import resolve_start

    try:
        start = resolve_start("none" if args.from_scratch else from_model, args.arch, args.mode,
                              args.pretrained)
    except ValueError as e:
        raise CLIError(f"--from {e}") from None
    except FileNotFoundError as e:
        raise CLIError(f"--from: {e}") from None
    stages = _stages(args)
    source: Any = args.data[0] if len(args.data) == 1 else list(args.data)
    if args.max_items:
        from ..data import sample_files
        from ..io import find_images

        files = find_images(source, recursive=True)
        if len(files) > args.max_items:
            source = sample_files(files, args.max_items, args.seed)
            print(f"colorkit: using {args.max_items} of the {len(files)} images in {' '.join(args.data)} "
                  "(--max-items)")
    note = start.note if args.preset == DEFAULT_PRESET or start.model else (
        f"training a new {args.preset} model ({start.mode} output)"
        + (" with an ImageNet-pretrained ResNet" if args.pretrained and args.arch_pretrained else " from scratch"))
    print(f"colorkit: {note}")
    print("colorkit: stages: " + ", ".join(f"{s.size}px x{s.epochs} (bs {s.bs})" for s in stages))
    import importlib

    from .. import train
    from ..models import WeightsUnavailableError

    nogan = importlib.import_module("colorkit.nogan")  # the module (``colorkit.nogan`` the attribute is the function)

    with common.torch_threads(args.threads), common.RaiseOnSignal() as sig:
        try:
            learn = train.train_colorizer(
                source, out, stages, valid=args.valid, arch=start.arch, mode=start.mode,
                pretrained=args.pretrained, from_model=start.model, resume=args.resume, seed=args.seed,
                render_size=args.render_size, loss=args.loss, class_weight=args.class_weight,
                rebalance=args.rebalance, temperature=args.temperature, precision=args.precision,
                in_memory=args.in_memory, track=args.track, preset=args.preset, settings=settings or None,
            )
            from ..distributed import leave_distributed

            if not leave_distributed():  # under torchrun / accelerate launch rank 0 goes on alone (NoGAN, evaluation)
                return EXIT_OK
            if args.gan:
                size, bs = args.gan_size or stages[-1].size, stages[-1].bs
                print(f"colorkit: NoGAN fine-tuning (--gan) at {size}px, {args.gan_iters} iterations")
                try:
                    report = nogan.train_gan(out, source, out, valid=args.valid, size=size, bs=bs,
                                             loss_pretrained=args.pretrained, seed=args.seed, n_iter=args.gan_iters)
                except (WeightsUnavailableError, ValueError, FileNotFoundError) as e:
                    msg = f"NoGAN phase failed: {e}\n(the model trained before the GAN phase is saved in {out})"
                    raise CLIError(msg, EXIT_FAILED) from None
                kept = ("kept the model from before the GAN phase (it scored best)" if report.kept_start
                        else f"kept GAN checkpoint {report.best_iter}")
                print(f"colorkit: NoGAN done: {kept}")
        except (WeightsUnavailableError, ValueError, FileNotFoundError) as e:
            raise CLIError(str(e), EXIT_FAILED) from None
        except KeyboardInterrupt:
            print(f"colorkit: training interrupted by {_signal_name(sig.signum)}; finished stages are checkpointed "
                  f"in {out / 'checkpoints'}: run the same command again to resume")
            return sig.exit_code
    _print_data(learn, out)
    return _final_report(args, out)


def _signal_name(signum: int | None) -> str:
    import signal

    return signal.Signals(signum or signal.SIGINT).name


def _print_data(learn: Any, out: Path) -> None:
    info = getattr(learn.dls, "colorize_info", {})
    skipped = info.get("skipped", [])
    if skipped:
        print(f"colorkit: skipped {len(skipped)} unreadable photo(s):")
        for item in skipped:
            pair = isinstance(item, (list, tuple)) and len(item) > 1
            print(f"  {item[0]}: {item[1]}" if pair else f"  {item}")
    print(f"colorkit: model saved to {out} ({info.get('n_train', '?')} training / "
          f"{info.get('n_valid', '?')} validation photos)")


def _final_report(args: argparse.Namespace, out: Path) -> int:
    """metrics.json: the held-out evaluation with --valid, else the training validation split's last values."""
    if args.valid is None and args.gan:
        print("colorkit: no --valid folder: skipped the held-out evaluation (metrics.json holds the GAN "
              f"phase's best checkpoint scores); run `colorkit evaluate PHOTOS --model {out}` for a report")
        return EXIT_OK
    if args.valid is None:
        from ..io import write_json_atomic
        from ..modelcard import METRICS_FILE, ModelCard

        card = ModelCard.from_dir(out)
        write_json_atomic(out / METRICS_FILE, {"split": "training validation split (last stage)",
                                               "n_valid": (card.training.get("data") or {}).get("n_valid"),
                                               **card.final_metrics()})
        print("colorkit: no --valid folder: skipped the held-out evaluation (metrics.json holds the training "
              f"validation split's final values); run `colorkit evaluate PHOTOS --model {out}` for a full report")
        return EXIT_OK
    try:
        from ..report import write_report
        from .evaluate import evaluate_model, print_report

        print(f"colorkit: evaluating {out} on the held-out photos in {args.valid}")
        result = evaluate_model(out, args.valid, args.eval_size, None)
        print_report(result, write_report(result, out), f"evaluation report written to {out}")
    except Exception as e:  # the model is saved; report the evaluation failure, do not lose it
        common.err(f"warning: held-out evaluation failed ({type(e).__name__}: {e}); the model is saved")
        return EXIT_FAILED
    return EXIT_OK
