"""The batch pipeline (`colorkit colorize`) vs the network alone, per photo size and precision: images/s, CPU
seconds per photo and peak RSS.

    python bench/batch.py [--mp 0.5,12,24] [--precision fp32,bf16] [--n 6] [--model DIR] [--render-size 256]
                          [--jobs 2] [--threads T] [--rss-check]

Photos are made at run time from ../shared/data/bw (resized up to the asked megapixels, landscape or portrait as
the source, JPEG quality 90, in a temp folder; nothing is written to the repo). Each (size, precision) case runs in
a fresh process, which

  (b) runs ``colorkit.pipeline.colorize_files(load_colorizer(model, precision=...), [folder], out, jobs=...)``,
      the engine under ``colorkit colorize``, end to end (decode, network, merge with the full-resolution
      lightness, encode, atomic write), and records its rate, CPU seconds per photo, the time its calling
      thread spent in the network, and the process's peak RSS;
  (a) then runs the bare network on the prepared (render-size) tensors of the same photos, one at a time, in the
      same precision and memory format, and records its rate and CPU seconds per photo.

The ratio (b)/(a) is measured in the same process, minutes apart. CPU seconds (getrusage) do not depend on what
else the machine runs; rates do: on a machine shared with other jobs compare the CPU figures. The ratio's
ceiling is about ``cores / (network CPU + pipeline-only CPU)`` x the network's wall time per photo: the pipeline
can only hide its own work behind the network where there are cores to spare. ``--rss-check`` also runs the
pipeline on N and 2N photos (fresh processes) and prints both peak RSS figures: flat means the batch does not
hold more photos as the folder grows. Without --model a random-weight ResNet34 ``lab`` generator is saved to a
temp folder (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, peak_rss_mb, run_case  # noqa: E402


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def photo_size(mp: float) -> tuple[int, int]:
    """(width, height) of a 4:3 landscape photo of about ``mp`` megapixels."""
    h = round(math.sqrt(mp * 1e6 * 3 / 4))
    return round(h * 4 / 3), h


def make_photos(folder: Path, n: int, mp: float) -> list[Path]:
    """``n`` JPEGs of about ``mp`` megapixels in ``folder``, cycling through the shared black-and-white photos."""
    from PIL import Image

    sources = sorted((SHARED / "bw").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    size = photo_size(mp)
    files = []
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as src:
            img = src.convert("RGB")
        wh = size if img.width >= img.height else size[::-1]
        path = folder / f"photo_{i:03d}.jpg"
        img.resize(wh, Image.Resampling.BICUBIC).save(path, quality=90)
        files.append(path)
    return files


def random_model(folder: Path, render_size: int) -> Path:
    """A random-weight ResNet34 lab generator saved as a colorkit model folder."""
    import torch

    from colorkit import create_generator, save_colorizer

    torch.manual_seed(0)
    net = create_generator("resnet34", mode="lab", img_size=64).eval()
    return save_colorizer(net, folder, render_size=render_size)


def _cpu_seconds() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pipeline_rate(clr, folder: Path, out: Path, render_size: int, jobs: int) -> dict:
    """The batch pipeline on ``folder`` -> its rate, CPU seconds per photo, network seconds and peak RSS."""
    import colorkit.infer as infer
    from colorkit.pipeline import colorize_files

    busy = [0.0]
    real_predict = infer.predict_chroma

    def timed_predict(*args, **kwargs):  # the pipeline looks predict_chroma up in colorkit.infer at run time
        t = time.perf_counter()
        try:
            return real_predict(*args, **kwargs)
        finally:
            busy[0] += time.perf_counter() - t

    infer.predict_chroma = timed_predict
    try:
        c0 = _cpu_seconds()
        summary = colorize_files(clr, [folder], out, render_size=render_size, jobs=jobs)
        cpu = _cpu_seconds() - c0
    finally:
        infer.predict_chroma = real_predict
    n = len(list(folder.glob("*.jpg")))
    if summary.failed or len(summary.done) != n:
        raise RuntimeError(f"the pipeline colorized {len(summary.done)} of {n} photos: {summary.failed}")
    return {"n": n, "rate": summary.rate, "cpu_per_photo": cpu / n, "network_s": busy[0],
            "peak_rss_mb": peak_rss_mb()}


def forward_rate(clr, files: list[Path], render_size: int) -> dict:
    """The bare network on the prepared tensors of ``files``, one at a time, in the colorizer's precision."""
    import torch

    from colorkit.infer import predict_rgb, prepare_image
    from colorkit.io import load_image

    xs = [prepare_image(load_image(f), render_size).unsqueeze(0) for f in files]
    predict_rgb(clr.model, xs[0], clr.precision)  # warm-up
    t0, c0 = time.perf_counter(), _cpu_seconds()
    with torch.no_grad():
        for x in xs:
            predict_rgb(clr.model, x, clr.precision)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"rate": len(xs) / wall, "cpu_per_photo": cpu / len(xs)}


def case(folder: Path, model: Path, render_size: int, jobs: int, threads: int, precision: str,
         pipeline_only: bool) -> dict:
    import torch

    from colorkit import load_colorizer

    torch.set_num_threads(threads)
    clr = load_colorizer(model, precision=precision)
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-out-") as out:
        res = {"precision": clr.precision, "pipeline": pipeline_rate(clr, folder, Path(out), render_size, jobs)}
    if not pipeline_only:
        res["network"] = forward_rate(clr, sorted(folder.glob("*.jpg")), render_size)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=7, help=argparse.SUPPRESS)  # folder model rs jobs threads precision only
    ap.add_argument("--n", type=int, default=6, help="photos per case")
    ap.add_argument("--mp", default="12", help="photo sizes in megapixels, comma-separated (e.g. 0.5,12,24)")
    ap.add_argument("--precision", default="fp32,bf16", help="precisions, comma-separated (auto, bf16, fp32)")
    ap.add_argument("--model", default=None, help="model folder (default: a random-weight resnet34 lab generator)")
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--jobs", type=int, default=2, help="the pipeline's background threads (its default: 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or all cores)")
    ap.add_argument("--rss-check", action="store_true", help="also compare peak RSS for N and 2N photos")
    a = ap.parse_args()
    if a.case:
        folder, model, rs, jobs, threads, precision, only = a.case
        print(json.dumps(case(Path(folder), Path(model), int(rs), int(jobs), int(threads), precision, only == "1")))
        return
    if not (SHARED / "bw").is_dir():
        sys.exit(f"needs the photos at {SHARED}")
    threads = a.threads or _default_threads()
    sizes = [float(s) for s in a.mp.split(",")]
    precisions = [p.strip() for p in a.precision.split(",")]
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        root = Path(tmp)
        model_dir = Path(a.model) if a.model else random_model(root / "model", a.render_size)
        print(f"model {a.model or 'random resnet34 (lab)'}; render size {a.render_size}; {a.n} photos per case; "
              f"torch threads {threads}; --jobs {a.jobs}; {os.cpu_count()} CPUs", flush=True)
        print(f"{'photo':>14} {'prec':>5} | {'network img/s':>13} {'CPU s':>6} | {'pipeline img/s':>14} {'CPU s':>6} "
              f"{'net busy':>8} | {'ratio':>5} | {'peak RSS MB':>11}")
        for mp in sizes:
            folder = root / f"photos_{mp:g}mp"
            files = make_photos(folder, a.n, mp)
            w, h = photo_size(mp)
            for prec in precisions:
                r = run_case(__file__, str(folder), str(model_dir), str(a.render_size), str(a.jobs), str(threads),
                             prec, "0")
                p, f = r["pipeline"], r["network"]
                busy = p["network_s"] / (p["n"] / p["rate"])
                print(f"{f'{w}x{h}':>14} {r['precision']:>5} | {f['rate']:13.3f} {f['cpu_per_photo']:6.2f} | "
                      f"{p['rate']:14.3f} {p['cpu_per_photo']:6.2f} {busy:8.0%} | {p['rate'] / f['rate']:5.2f} | "
                      f"{p['peak_rss_mb']:11.0f}", flush=True)
            if a.rss_check:
                many = root / f"photos_{mp:g}mp_2n"
                many.mkdir()
                for k in range(2):  # each photo twice (hard links: same work, no extra encoding)
                    for f in files:
                        os.link(f, many / f"{f.stem}_{k}{f.suffix}")
                rows = [run_case(__file__, str(d), str(model_dir), str(a.render_size), str(a.jobs), str(threads),
                                 precisions[0], "1")["pipeline"] for d in (folder, many)]
                print(f"    peak RSS, {rows[0]['n']} vs {rows[1]['n']} photos: {rows[0]['peak_rss_mb']:.0f} vs "
                      f"{rows[1]['peak_rss_mb']:.0f} MB ({rows[1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:+.0f})",
                      flush=True)


if __name__ == "__main__":
    main()
