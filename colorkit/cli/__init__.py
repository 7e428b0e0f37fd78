"""The ``colorkit`` command line: ``colorize``, ``train``, ``evaluate``, ``info`` and ``demo``.

``main(argv)`` parses the arguments and returns the exit code: 0 success, 1 some files or a step
failed (the rest completed), 2 usage errors and refusals (nothing was done), 130 / 143 stopped by
SIGINT / SIGTERM (finished files are complete; run the same command again to go on).

Each subcommand is one small module, ``colorkit/cli/<name>.py``, with ``add_parser(sub)`` (its options,
next to the code that uses them; returns the subparser) and ``run(args)`` (returns the exit code); it is
listed once in :data:`COMMANDS`. Commands are thin: the work is done by the library (``colorize`` calls
:mod:`colorkit.pipeline`, ``train`` :mod:`colorkit.train`, ...). Building the parser and printing help import
only the standard library; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ._common import EXIT_USAGE, CLIError, Formatter, err, plain_warnings

__all__ = ["COMMANDS", "DEFAULT_MODEL", "SAMPLES_DIR", "CLIError", "ColorizeJob", "build_parser", "main",
           "plan_colorize"]

COMMANDS: tuple[str, ...] = ("colorize", "train", "evaluate", "info", "demo", "serve", "export", "video")
"""Subcommands in help order; each is the module ``colorkit.cli.<name>``."""

_EPILOG = (
    "Examples:\n"
    "  colorkit demo                                   # try it on the bundled samples\n"
    "  colorkit colorize scans/ -o colorized/ --recursive\n"
    "  colorkit video reel.mp4 -o reel-colour.mp4\n"
    "  colorkit train my_photos/ -o my_model/ --valid my_valid/\n"
    "  colorkit evaluate my_valid/ --model my_model/\n"
    "  colorkit info my_model/\n"
    "  colorkit export my_model/ --onnx colorizer.onnx --dynamic\n\n"
    "Run `colorkit COMMAND --help` for each command's options."
)


def build_parser() -> argparse.ArgumentParser:
    """The ``colorkit`` argument parser (standard library only: building it is instant)."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="colorkit", formatter_class=Formatter, epilog=_EPILOG,
                                     description="Colorize black-and-white photographs with a fastai U-Net.")
    parser.add_argument("--version", action="version", version=f"colorkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub).set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``colorkit`` command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with plain_warnings():
            return int(args.func(args))
    except CLIError as e:
        err(f"error: {e}")
        return e.code
    except KeyboardInterrupt:
        err("interrupted")
        return 128 + signal.SIGINT


def __getattr__(name: str) -> Any:
    """Names this module had before the batch engine moved to :mod:`colorkit.pipeline` (loaded on use)."""
    if name == "DEFAULT_MODEL":
        from ..modelcard import STARTER_MODEL

        return STARTER_MODEL
    if name == "SAMPLES_DIR":
        from ..samples import SAMPLES_DIR

        return SAMPLES_DIR
    if name in ("ColorizeJob", "plan_colorize"):
        from .. import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
