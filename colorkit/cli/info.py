"""``colorkit info``: describe a saved model from its model card (standard library only: instant)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from . import _common as common
from ._common import EXIT_OK

HELP = "describe a saved model"
DESCRIPTION = """\
Print a model's configuration, training recipe, data, metrics and file size.
"""
EPILOG = """\
Example:
  colorkit info                 # the starter model
  colorkit info my_model/
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = common.subparser(sub, "info", HELP, DESCRIPTION, EPILOG)
    p.add_argument("model", nargs="?", default=None, metavar="MODEL", help="model folder (default: starter)")
    return p


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"[{len(v)} items]"
    return str(v)


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts -> ``[("a.b", value), ...]`` in insertion order."""
    if not isinstance(d, dict):
        return [(prefix or "value", d)]
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        rows.extend(_flatten(v, key) if isinstance(v, dict) else [(key, v)])
    return rows


def _stage_summary(stages: Sequence[dict[str, Any]]) -> str:
    parts = []
    for s in stages:
        extra = [f"bs {s.get('bs')}"]
        if s.get("frozen"):
            extra.append("frozen")
        if s.get("data_pct", 1) != 1:
            extra.append(f"{s['data_pct']:.0%} data")
        parts.append(f"{s.get('size')}px x{s.get('epochs')} ({', '.join(extra)})")
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    from ..modelcard import STARTER_MODEL, WEIGHTS_FILE, ModelCard, read_metrics
    from ..presets import preset_of

    path = common.check_model_dir(common.model_path(args.model), "MODEL")
    try:
        card = ModelCard.from_dir(path)
    except ValueError as e:
        raise common.CLIError(str(e)) from None
    try:
        metrics: Any = read_metrics(path)
    except ValueError as e:
        metrics = {"error": str(e)}
    weights = path / WEIGHTS_FILE
    n = card.n_params
    print(f"model:        {path}{'  (the starter model)' if path == STARTER_MODEL else ''}")
    print(f"architecture: {card.describe()}")
    print(f"preset:       {preset_of(card.generator) or '(none: a custom generator kind)'}")
    print(f"render size:  {card.render_size} px")
    print(f"parameters:   {f'{n / 1e6:.2f} M' if isinstance(n, int) else n}")
    print(f"dtype:        {card.dtype}")
    print(f"file size:    {_fmt_bytes(weights.stat().st_size)} ({weights.name})")
    print(f"made with:    colorkit {card.colorkit_version} (format {card.format_version})")
    _print_training(card)
    _print_metrics(metrics)
    return EXIT_OK


def _print_training(card: Any) -> None:
    tr = card.training
    if not tr:
        print("training:     (no record)")
        return
    d = tr.get("data") or {}
    print("training:")
    if d:
        sk = d.get("skipped") or []
        print(f"  data:       {d.get('source')} ({d.get('n_train')} train, {d.get('n_valid')} valid"
              f"{', ' + str(len(sk)) + ' skipped' if sk else ''})"
              f"{', valid folder ' + str(d['valid']) if d.get('valid') else ''}")
    if tr.get("stages"):
        print(f"  stages:     {_stage_summary(tr['stages'])}")
    if tr.get("cgan"):
        g = tr["cgan"]
        print(f"  cgan:       BCE + {_fmt_value(g.get('l1_weight'))} x reconstruction, betas {g.get('betas')}, "
              f"critic {', '.join(f'{k} {v}' for k, v in (g.get('critic') or {}).items())}")
    start = tr.get("from_model")
    print(f"  start:      {'fine-tuned from ' + start if start else 'from scratch'}"
          f"{', ImageNet encoder' if tr.get('pretrained_encoder') else ''}")
    if card.history:
        secs = sum(float(h.get("seconds", 0) or 0) for h in card.history)
        print(f"  time:       {common.fmt_duration(secs)} on {tr.get('device', '?')}, seed {tr.get('seed')}")
        last = card.final_metrics()
        if last:
            print("  final:      " + ", ".join(f"{k} {_fmt_value(v)}" for k, v in last.items()))


def _print_metrics(metrics: Any) -> None:
    if isinstance(metrics, dict) and isinstance(metrics.get("summary"), dict):  # a colorkit.evaluate report
        st = metrics.get("settings") or {}
        print(f"metrics:      {metrics.get('n_images')} held-out images at {st.get('size')}px"
              f"{' from ' + str(st['source']) if st.get('source') else ''}")
        for method, row in metrics["summary"].items():
            vals = [f"{k} {_fmt_value(v)}" for k, v in row.items() if not isinstance(v, (dict, list))]
            print(f"  {method}: " + ", ".join(vals))
    elif metrics:
        print("metrics:")
        for k, v in _flatten(metrics):
            print(f"  {k}: {_fmt_value(v)}")
    else:
        print("metrics:      (none: run `colorkit evaluate PHOTOS --model MODEL`)")
