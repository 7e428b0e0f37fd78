"""Choose a trained model's decoding settings on photos/valid: render size x annealed-mean temperature.

    python bench/starter_select.py MODEL [MODEL ...] [--render-sizes 128 256] [--temperatures 1 0.6 0.45 0.38 0.3]
    python bench/starter_select.py MODEL --write T RS       # save temperature T and render size RS into MODEL

Prints one row per (model, render size, temperature, chroma gain) with `colorkit evaluate`'s figures at 256 px (PSNR,
CIEDE2000, colourfulness, colourfulness gap) plus the gray and mean-chroma baselines, and the goal of the
starter issue (gap <= 18 with PSNR >= 23.8 and CIEDE2000 <= 10.6). Temperatures apply to colour-class
models only (regression models get one row per render size). ``--write`` records the choice in the
model's config.json and its evaluation in metrics.json (this is choosing on photos/valid; nothing trains
on it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED  # noqa: E402

GOAL = {"gap": 18.0, "psnr": 23.8, "ciede2000": 10.6}


def _row(name: str, rs: int | str, t: float | str, s: dict) -> str:
    ok = (s["colorfulness_gap"] <= GOAL["gap"] and s["psnr"] >= GOAL["psnr"]
          and s["ciede2000"] <= GOAL["ciede2000"])
    return (f"{name:<28} {rs!s:>6} {t!s:>6} {s['psnr']:>7.2f} {s['ciede2000']:>8.2f} {s['colorfulness']:>7.2f} "
            f"{s['colorfulness_gap']:>7.2f} {'yes' if ok else '':>5}")


def _set_temperature(clr, t: float) -> None:
    clr.model.temperature = float(t)
    clr.model.config.temperature = float(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--valid", type=Path, default=SHARED / "photos" / "valid")
    ap.add_argument("--render-sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.6, 0.45, 0.38, 0.3])
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0],
                    help="chroma gains to try (the network's chroma_gain: a decode setting like the temperature)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--write", nargs=2, metavar=("T", "RS"), default=None)
    ap.add_argument("--write-gain", type=float, default=None, help="with --write: also save this chroma gain")
    a = ap.parse_args()

    from colorkit import evaluate, load_colorizer, save_colorizer

    if a.write:
        t, rs = float(a.write[0]), int(a.write[1])
        for m in a.models:
            clr = load_colorizer(m)
            if clr.model.chroma_head == "classes":
                _set_temperature(clr, t)
            clr.render_size = rs
            if a.write_gain is not None:
                clr.model.chroma_gain = clr.model.config.chroma_gain = float(a.write_gain)
            save_colorizer(clr, m, render_size=rs)  # settings first, so the report describes the model as saved
            clr = load_colorizer(m)
            res = evaluate(clr, a.valid, size=256, render_size=rs, fid=False)
            save_colorizer(clr, m, render_size=rs, metrics=res.to_dict())
            for name in res.methods:
                print(_row(name, rs, t, res.summary[name]))
            print(f"{m}: temperature {t} and render size {rs} saved, with this report as metrics.json")
        return

    print(f"{'model':<28} {'render':>6} {'T':>6} {'PSNR':>7} {'dE2000':>8} {'CF':>7} {'gap':>7} {'goal':>5}")
    base = evaluate(None, a.valid, size=256, fid=False, limit=a.limit)
    for name in base.methods:
        print(_row(name, "-", "-", base.summary[name]), flush=True)
    for m in a.models:
        clr = load_colorizer(m)
        temps = a.temperatures if clr.model.chroma_head == "classes" else ["-"]
        for rs in a.render_sizes:
            for t in temps:
                if t != "-":
                    _set_temperature(clr, t)
                for g in a.gains:
                    clr.model.chroma_gain = g
                    res = evaluate(clr, a.valid, size=256, render_size=rs, fid=False, baselines=(), limit=a.limit)
                    name = m.name if g == 1 else f"{m.name} x{g:g}"
                    print(_row(name, rs, t, res.summary["model"]), flush=True)


if __name__ == "__main__":
    main()
