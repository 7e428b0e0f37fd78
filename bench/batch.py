"""`colorkit colorize` on a folder of 12 MP photos vs the network alone: images/s, and peak RSS for N and 2N photos.

    python bench/batch.py [--n 8] [--model DIR] [--render-size 256] [--jobs 2] [--threads T]

The photos are made at run time from ../shared/data/bw (resized up to 4000x3000 or 3000x4000 JPEGs in a temp
folder, the 2N folder holds each twice; nothing is written to the repo). In one process it measures

  (a) the raw network forward pass, one photo at a time, on the prepared (render-size) tensors of the same photos;
  (b) ``colorkit.cli.main(["colorize", folder, "-o", out, "-q", ...])`` end to end (decode, network, merge with
      the full-resolution lightness, encode, atomic write);

and prints both rates and their ratio: the ratio says how much of the CLI's time the network does NOT hide
(decode ahead and merge + write behind run on background threads). The CLI's own rate (its summary line,
without loading the model) and the wall-clock rate of the whole ``main()`` call are both shown. Then it runs the
CLI on N and on 2N photos, each in a fresh subprocess, and prints both peak RSS figures: flat means the batch
does not hold more photos in memory as the folder grows. Without --model a random-weight ResNet34 ``lab``
generator is saved to a temp folder (speed does not depend on the weights). Both (a) and (b) use --threads
torch threads (default: OMP_NUM_THREADS, else every core).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, peak_rss_mb, run_case  # noqa: E402

SIZE = (4000, 3000)  # 12 MP; portrait sources get (3000, 4000)


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` 12 MP JPEGs in ``folder``, cycling through the shared black-and-white photos."""
    from PIL import Image

    sources = sorted((SHARED / "bw").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as src:
            img = src.convert("RGB")
        size = SIZE if img.width >= img.height else SIZE[::-1]
        path = folder / f"photo_{i:03d}.jpg"
        img.resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
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


def forward_rate(model_dir: Path, files: list[Path], render_size: int, threads: int) -> dict:
    """The bare network on the prepared tensors of ``files``, one at a time (as the CLI runs it):
    images/s and CPU seconds per photo."""
    import torch

    from colorkit import load_colorizer
    from colorkit.infer import prepare_image
    from colorkit.io import load_image

    torch.set_num_threads(threads)
    model = load_colorizer(model_dir).model.eval()
    xs = [prepare_image(load_image(f), render_size).unsqueeze(0) for f in files]
    with torch.no_grad():
        model(xs[0])  # warm-up
        t0, c0 = time.perf_counter(), _cpu_seconds()
        for x in xs:
            model(x)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    return {"rate": len(xs) / wall, "cpu_per_photo": cpu / len(xs)}


def cli_rate(folder: Path, out: Path, model_dir: Path, render_size: int, jobs: int, threads: int) -> dict:
    """Run ``colorkit colorize`` in this process -> wall-clock and pipeline images/s (from its summary), the
    time its main thread spent in the network, CPU seconds per photo and peak RSS."""
    import contextlib
    import io

    import colorkit.infer as infer
    from colorkit.cli import main

    argv = ["colorize", str(folder), "-o", str(out), "-q", "--model", str(model_dir),
            "--render-size", str(render_size), "--jobs", str(jobs), "--threads", str(threads)]
    busy = [0.0]
    real_predict = infer.predict_chroma

    def timed_predict(*args, **kwargs):  # the CLI looks predict_chroma up in colorkit.infer at run time
        t = time.perf_counter()
        try:
            return real_predict(*args, **kwargs)
        finally:
            busy[0] += time.perf_counter() - t

    buf = io.StringIO()
    infer.predict_chroma = timed_predict
    try:
        t0, c0 = time.perf_counter(), _cpu_seconds()
        with contextlib.redirect_stdout(buf):
            code = main(argv)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    finally:
        infer.predict_chroma = real_predict
    n = len(list(folder.glob("*.jpg")))
    if code != 0 or len(list(out.glob("*.jpg"))) != n:
        raise RuntimeError(f"colorkit colorize exited {code}:\n{buf.getvalue()}")
    m = re.search(r"\(([\d.]+) img/s\)", buf.getvalue())
    return {"n": n, "wall_rate": n / wall, "pipeline_rate": float(m.group(1)) if m else float("nan"),
            "network_s": busy[0], "cpu_per_photo": cpu / n, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=5, help=argparse.SUPPRESS)  # folder model render_size jobs threads
    ap.add_argument("--n", type=int, default=8, help="photos in the main run (the RSS check also uses 2N)")
    ap.add_argument("--model", default=None, help="model folder (default: a random-weight resnet34 lab generator)")
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--jobs", type=int, default=2, help="the CLI's background threads (its default: 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS or all cores)")
    a = ap.parse_args()
    if a.case:
        folder, model, rs, jobs, threads = a.case
        with tempfile.TemporaryDirectory(prefix="colorkit-bench-out-") as out:
            r = cli_rate(Path(folder), Path(out), Path(model), int(rs), int(jobs), int(threads))
        print(json.dumps(r))
        return
    if not (SHARED / "bw").is_dir():
        sys.exit(f"needs the photos at {SHARED}")
    threads = a.threads or _default_threads()
    with tempfile.TemporaryDirectory(prefix="colorkit-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        few_dir, many_dir = root / "photos_n", root / "photos_2n"
        few = make_photos(few_dir, a.n)
        many_dir.mkdir()
        for k in range(2):  # the 2N folder: each photo twice (hard links: same work, no extra encoding)
            for f in few:
                os.link(f, many_dir / f"{f.stem}_{k}{f.suffix}")
        made = time.perf_counter() - t0
        model_dir = Path(a.model) if a.model else random_model(root / "model", a.render_size)
        print(f"{a.n} photos of 12 MP (from {SHARED / 'bw'}, made in {made:.0f} s); "
              f"model {a.model or 'random resnet34 (lab)'}; render size {a.render_size}; torch threads {threads}; "
              f"--jobs {a.jobs}; {os.cpu_count()} CPUs", flush=True)

        fwd = forward_rate(model_dir, few, a.render_size, threads)
        print(f"(a) network forward alone      {fwd['rate']:6.3f} img/s  ({1 / fwd['rate']:.2f} s per photo)",
              flush=True)
        cli = cli_rate(few_dir, root / "out", model_dir, a.render_size, a.jobs, threads)
        print(f"(b) colorkit colorize pipeline {cli['pipeline_rate']:6.3f} img/s  "
              f"(whole main() call incl. model loading: {cli['wall_rate']:.3f} img/s)")
        print(f"    ratio (b)/(a): {cli['pipeline_rate'] / fwd['rate']:.2f} pipeline, "
              f"{cli['wall_rate'] / fwd['rate']:.2f} wall (goal >= 0.9); peak RSS of this process "
              f"{cli['peak_rss_mb']:.0f} MB")
        pipeline_s = a.n / cli["pipeline_rate"]
        print(f"    in (b) the network took {cli['network_s'] / a.n:.2f} s per photo (alone: {1 / fwd['rate']:.2f} s) "
              f"and ran {100 * cli['network_s'] / pipeline_s:.0f}% of the pipeline's time; CPU per photo "
              f"{cli['cpu_per_photo']:.2f} s (network alone: {fwd['cpu_per_photo']:.2f} s)", flush=True)

        rows = []
        for folder in (few_dir, many_dir):
            rows.append(run_case(__file__, str(folder), str(model_dir), str(a.render_size), str(a.jobs),
                                 str(threads)))
        print("peak RSS of `colorkit colorize` in a fresh process:")
        for r in rows:
            print(f"    {r['n']:3d} photos: {r['peak_rss_mb']:6.0f} MB  ({r['pipeline_rate']:.3f} img/s)")
        print(f"    growth from {rows[0]['n']} to {rows[1]['n']} photos: "
              f"{rows[1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:+.0f} MB")


if __name__ == "__main__":
    main()
