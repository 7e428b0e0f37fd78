"""``colorkit colorize``: photos, folders and globs into an output folder, through :mod:`colorkit.pipeline`."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

HELP = "colorize photos (files, folders, globs)"
DESCRIPTION = """\
Colorize black-and-white photos. Each output keeps its input's size, format (extension), EXIF
(orientation normalised) and ICC profile. A folder's images keep their sub-path under OUT;
single files go straight into OUT. Inputs are never overwritten: an OUT that would, exits 2.
Outputs already in OUT are skipped (unless --overwrite), and every write is atomic, so an
interrupted run (Ctrl-C, SIGTERM: exit 130/143) resumes by running the same command again.
Unreadable files are reported and listed in OUT/colorkit-failures.txt; the rest of the batch
completes and the exit code is 1.
"""
EPILOG = """\
Example:
  colorkit colorize scans/ -o colorized/ --recursive
  colorkit colorize 'album/*.jpg' grandpa.tif -o out/ --model my_model/ --render-size 384
  colorkit colorize scans/ -o vivid/ --strength 1.4
  colorkit colorize scans/ -o exact/ --precision fp32

Exit codes: 0 all done, 1 some files failed, 2 bad arguments or refused output, 130/143 stopped.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "colorize", HELP, DESCRIPTION, EPILOG)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder")
    p.add_argument("--model", default=None, metavar="M", help="model folder (default: the starter model)")
    p.add_argument("--render-size", type=int, default=None, metavar="N",
                   help="side of the square the network sees, in px (default: the model's; larger = more "
                        "detail in the colour, slower)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="colour strength, 0 (gray) .. 1 (as predicted) .. 2 (twice as saturated)")
    p.add_argument("-r", "--recursive", action="store_true", help="also colorize images in sub-folders")
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("-j", "--jobs", type=int, default=2, metavar="N",
                   help="background threads that decode and write images while the network runs")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the network runs")
    common.add_precision(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    common.add_threads(p)
    return p


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if args.render_size is not None and args.render_size < 32:
        raise CLIError(f"--render-size must be at least 32, got {args.render_size}")
    if args.jobs < 1:
        raise CLIError(f"--jobs must be at least 1, got {args.jobs}")
    if not 0 <= args.strength <= 2:
        raise CLIError(f"--strength must be between 0 and 2, got {args.strength}")
    from ..pipeline import FAILURES_FILE, PlanError, prepare_batch, run_batch

    try:
        batch = prepare_batch(args.inputs, out, recursive=args.recursive, overwrite=args.overwrite)
    except PlanError as e:
        raise CLIError(str(e)) from None
    if not batch.total:
        print(f"colorkit: no image files found in {', '.join(args.inputs)}"
              f"{'' if args.recursive else ' (add --recursive to search sub-folders)'}")
        return EXIT_OK

    path = common.model_path(args.model)
    model = common.load_model(path, args.device, args.precision)
    rs = args.render_size or model.render_size
    n_bad = len(batch.unsupported)
    print(f"colorkit: {batch.total} image(s): {len(batch.todo)} to colorize, {len(batch.existing)} already done"
          f"{f', {n_bad} unsupported' if n_bad else ''}; model {path} (render size {rs}"
          f"{f', strength {args.strength:g}' if args.strength != 1 else ''}, {model.precision}), output {out}",
          flush=True)

    bar = common.ProgressBar(len(batch.todo) + n_bad, enabled=not args.quiet)

    def progress(event: Any) -> None:
        if event.error is not None:
            bar.message(f"colorkit: failed: {event.src}: {event.error}")
        bar.update()

    with common.StopOnSignal() as stop, common.torch_threads(args.threads):
        summary = run_batch(model, batch, render_size=rs, strength=args.strength, jobs=args.jobs,
                            progress=progress, should_stop=stop.stop_requested, failures_file=FAILURES_FILE)
    bar.close()
    _print_summary(summary, out, stop.signum or signal.SIGINT)
    if summary.stopped:
        return 128 + (stop.signum or signal.SIGINT)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _print_summary(s: Any, out: Path, signum: int) -> None:
    head = "stopped" if s.stopped else "done"
    print(f"colorkit: {head}: {len(s.done)} colorized, {len(s.skipped)} skipped (output already there), "
          f"{len(s.failed)} failed{f', {s.not_started} not processed' if s.stopped else ''} "
          f"in {common.fmt_duration(s.seconds)} ({s.rate:.2f} img/s); outputs in {out}")
    if s.failed:
        print(f"colorkit: {len(s.failed)} file(s) could not be colorized:")
        for path, reason in s.failed:
            print(f"  {path}: {reason}")
        if s.failures_file is not None:
            print(f"colorkit: the list is in {s.failures_file}")
    if s.stopped:
        print(f"colorkit: interrupted by {signal.Signals(signum).name}; every written file is complete. Run the "
              "same command again to colorize the rest (finished files are skipped).")
