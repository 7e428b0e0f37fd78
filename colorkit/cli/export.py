"""``colorkit export``: a model folder's network as an ONNX file, through :mod:`colorkit.export`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import _common as common
from ._common import EXIT_FAILED, EXIT_OK, CLIError

HELP = "export a model to ONNX (for onnxruntime, OpenVINO, TensorRT, ...)"
DESCRIPTION = """\
Write MODEL's network as an ONNX file. Its input `gray` is a (1, 1, H, W) float32 gray image in
[0, 1] (with --dynamic: (batch, 1, height, width), height and width multiples of 32); its outputs
are `rgb` (batch, 3, H, W) in [0, 1] and `ab` (batch, 2, H, W), the Lab chroma to put on a
full-size photo's own lightness. docs/export.md shows how to use it. The file is checked with
onnxruntime against PyTorch (largest difference printed) unless --no-check.
"""
EPILOG = """\
Example:
  colorkit export my_model/ --onnx colorizer.onnx --dynamic
  colorkit export --onnx starter-256.onnx --size 256x256 --opset 17

Exit codes: 0 written, 1 export or check failed, 2 bad arguments.
"""


def _size(text: str) -> tuple[int, int]:
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit():
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 256x384, got {text!r}")
    return int(h), int(w)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "export", HELP, DESCRIPTION, EPILOG)
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="model folder (default: the starter model)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX operator set version (7..20)")
    p.add_argument("--dynamic", action="store_true",
                   help="free batch, height and width (any multiple of 32) instead of one fixed shape")
    p.add_argument("--size", type=_size, default=None, metavar="HxW",
                   help="input height x width to trace (and the fixed shape without --dynamic); multiples "
                        "of 32 (default: the model's render size, square)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the file with onnxruntime against PyTorch")
    return p


def run(args: argparse.Namespace) -> int:
    from ..export import STRIDE, compare_onnx, export_onnx

    if not 7 <= args.opset <= 20:
        raise CLIError(f"--opset must be between 7 and 20, got {args.opset}")
    if args.size is not None and any(v < STRIDE or v % STRIDE for v in args.size):
        raise CLIError(f"--size must be multiples of {STRIDE}, got {args.size[0]}x{args.size[1]}")
    out = Path(args.onnx)
    if out.suffix.lower() != ".onnx":
        raise CLIError(f"--onnx {out}: the file name must end in .onnx")
    if out.is_dir():
        raise CLIError(f"--onnx {out}: is a folder; give a file name")
    path = common.model_path(args.model)
    clr = common.load_model(path, "cpu")
    size = args.size or (clr.render_size, clr.render_size)
    try:
        export_onnx(clr, out, opset=args.opset, dynamic=args.dynamic, size=size)
    except ImportError as e:
        raise CLIError(str(e), EXIT_FAILED) from None
    except Exception as e:  # an operator the opset lacks, a full disk, ...
        raise CLIError(f"exporting {path} to {out} failed: {type(e).__name__}: {e}", EXIT_FAILED) from None
    shape = "(batch, 1, H, W), H and W multiples of 32" if args.dynamic else f"(1, 1, {size[0]}, {size[1]})"
    print(f"colorkit: wrote {out} ({out.stat().st_size / 1e6:.0f} MB, opset {args.opset}): input gray {shape}; "
          "outputs rgb, ab")
    if not args.check:
        return EXIT_OK
    sizes = [size] + ([(size[0] + STRIDE, size[1] + 2 * STRIDE)] if args.dynamic else [])
    try:
        diff = compare_onnx(out, clr, sizes=sizes)
    except ImportError as e:
        print(f"colorkit: not checked: {e}")
        return EXIT_OK
    checked = ", ".join(f"{h}x{w}" for h, w in sizes)
    print(f"colorkit: onnxruntime vs PyTorch at {checked}: largest difference rgb {diff['rgb']:.2e}, "
          f"ab {diff['ab']:.2e}")
    if diff["rgb"] > 1e-3:
        raise CLIError(f"{out}: onnxruntime's output differs from PyTorch's by {diff['rgb']:.3g} (more than 1e-3)",
                       EXIT_FAILED)
    return EXIT_OK
