"""``colorkit serve``: the web page and HTTP API of :mod:`colorkit.serve` for one model, until Ctrl+C."""

from __future__ import annotations

import argparse
from typing import Any

from . import _common as common
from ._common import EXIT_OK, CLIError, Formatter


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve", formatter_class=Formatter, help="a web page and HTTP API to colorize photos",
        description=(
            "Serve a page to drop photos on (before/after slider, downloads, zip) and an HTTP API\n"
            "(POST /api/colorize, GET /api/health; see docs/serve.md). Listens on 127.0.0.1 (this computer\n"
            "only) unless --host says otherwise; there is no login, so a wider --host prints a warning.\n"
            "One photo runs at a time; the others wait in a queue. Stop it with Ctrl+C."
        ),
        epilog=(
            "Examples:\n"
            "  colorkit serve                                # then open http://127.0.0.1:8000/\n"
            "  colorkit serve --model my_model/ --port 8080\n"
            "  curl -F file=@grandpa.jpg http://127.0.0.1:8000/api/colorize -o grandpa_color.png\n"
        ),
    )
    p.add_argument("--model", default=None, metavar="M", help="model folder (default: the starter model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB", help="largest upload accepted")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the network runs")
    common.add_precision(p)
    common.add_threads(p)
    return p


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be from 0 to 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise CLIError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    with common.torch_threads(args.threads):
        clr = common.load_model(common.model_path(args.model), args.device, args.precision)
        from ..serve import serve

        try:
            serve(clr, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
        except OSError as e:  # the port is taken, the address is not this machine's, ...
            raise CLIError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); "
                           "pick another --port or --host") from None
    return EXIT_OK
