"""``colorkit evaluate``: score a model (or predictions) against colour photos, with :mod:`colorkit.evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

HELP = "score a model (or predictions) against colour photos"
DESCRIPTION = """\
Score colorizations against the true colours of SOURCE (a folder of colour photos): PSNR,
SSIM, CIEDE2000, colourfulness, next to simple baselines. Writes metrics.json, a CSV and a
before/after grid PNG into --out and prints a table. With --predictions DIR it scores existing
outputs, matched to SOURCE by file name (stem, any extension); with neither --model nor
--predictions, only the baselines are evaluated.
"""
EPILOG = """\
Example:
  colorkit evaluate valid_photos/ --model my_model/ --out eval/
  colorkit evaluate valid_photos/ --predictions colorized/ --size 256
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "evaluate", HELP, DESCRIPTION, EPILOG)
    p.add_argument("source", metavar="SOURCE", help="folder of colour photos (the ground truth)")
    p.add_argument("--model", default=None, metavar="M", help="model folder to evaluate")
    p.add_argument("--predictions", default=None, metavar="DIR", help="folder of colorized outputs to score")
    p.add_argument("--size", type=int, default=256, metavar="N", help="images are compared at N px")
    p.add_argument("--render-size", type=int, default=None, metavar="N",
                   help="the network renders at about N x N px (default: the model's own render size, as "
                        "`colorkit colorize` uses it)")
    p.add_argument("--out", default="colorkit-eval", metavar="DIR", help="report folder")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N photos")
    p.add_argument("--no-fid", dest="fid", action="store_false",
                   help="skip FID even when the InceptionV3 weights are on disk")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    common.add_threads(p)
    return p


def evaluate_model(model: Path | None, source: str, size: int, limit: int | None, fid: bool = True,
                   progress: Any = None, render_size: int | None = None) -> Any:
    """Evaluate ``model`` (rendered at ``render_size``, default: the model's own, as `colorize` uses it)."""
    from ..evaluate import evaluate

    clr = common.load_model(model) if model is not None else None
    rs = render_size or (clr.render_size if clr is not None else None)
    return evaluate(clr, source, size=size, limit=limit, fid=fid, progress=progress, render_size=rs)


def print_report(result: Any, paths: Any, where: str) -> None:
    """The table, the skipped files and the report files (also after ``colorkit train --valid``)."""
    from ..report import format_table

    print(format_table(result))
    skipped = getattr(result, "skipped", None) or []
    if skipped:
        print(f"colorkit: skipped {len(skipped)} file(s):")
        for item in skipped:
            print(f"  {item.get('file')}: {item.get('reason')}")
    if getattr(result, "missing", None):
        print(f"colorkit: {len(result.missing)} ground-truth file(s) have no prediction (listed in metrics.json)")
    print(f"colorkit: {where}:")
    for name, p in paths.items():
        print(f"  {name}: {p}")


class _Progress:
    """``progress(done, total)`` callback for :func:`colorkit.evaluate.evaluate`, drawing a progress bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = common.ProgressBar(total, label="evaluating", enabled=not self.quiet)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    if not Path(args.source).exists():
        raise CLIError(f"no such folder: {args.source}")
    if args.predictions and args.model:
        raise CLIError("pass --model or --predictions, not both")
    if args.predictions and not Path(args.predictions).is_dir():
        raise CLIError(f"--predictions {args.predictions}: no such folder")
    if args.size < 8:
        raise CLIError(f"--size must be at least 8, got {args.size}")
    if args.render_size is not None and args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    if args.model:
        common.check_model_dir(Path(args.model))
    from ..evaluate import evaluate_predictions
    from ..report import write_report

    progress = _Progress(args.quiet)
    try:
        with common.torch_threads(args.threads):
            if args.predictions:
                print(f"colorkit: scoring the predictions in {args.predictions} against {args.source}")
                result = evaluate_predictions(args.predictions, args.source, size=args.size, limit=args.limit,
                                              fid=args.fid, progress=progress)
            else:
                if not args.model:
                    print("colorkit: no --model or --predictions: evaluating the baselines only")
                result = evaluate_model(Path(args.model) if args.model else None, args.source, args.size,
                                        args.limit, fid=args.fid, progress=progress, render_size=args.render_size)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise CLIError(str(e), EXIT_FAILED) from None
    finally:
        progress.close()
    print_report(result, write_report(result, args.out), f"report written to {args.out}")
    return EXIT_OK
