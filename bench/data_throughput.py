"""Images per second the training loader delivers on the shared photos, and the one-time scan cost.

Usage: ``python bench/data_throughput.py [--sizes 64 128 220] [--workers 0 2] [--batches 20]``.
Reads ``../shared/data/photos/train`` (next to the repository); prints a table. Not a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from colorkit.data import clear_scan_cache, colorize_dls, scan_images
from colorkit.io import find_images

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def loader_speed(folder: Path, size: int, num_workers: int, bs: int, batches: int, warmup: int) -> float:
    """Training images per second over ``batches`` batches, after ``warmup`` batches."""
    dls = colorize_dls(folder, size=size, bs=bs, num_workers=num_workers, device=torch.device("cpu"))
    it = iter(dls.train)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, _ = next(it)
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=DATA / "photos" / "train")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 220])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if not args.folder.is_dir():
        raise SystemExit(f"no photos at {args.folder}")

    files = find_images(args.folder)
    clear_scan_cache()
    scan = scan_images(files)
    again = scan_images(files)
    print(f"{args.folder}: {len(files)} files")
    print(
        f"one-time scan: {scan.seconds:.2f} s ({1000 * scan.seconds / max(1, len(files)):.2f} ms/file, "
        f"{len(scan.skipped)} unreadable); cached re-scan: {again.seconds * 1000:.1f} ms"
    )
    print(f"torch threads: {torch.get_num_threads()}, bs {args.bs}, {args.batches} batches after {args.warmup}")
    print()
    print("| size | " + " | ".join(f"img/s, {w} workers" for w in args.workers) + " |")
    print("|---:|" + "---:|" * len(args.workers))
    for size in args.sizes:
        speeds = [loader_speed(args.folder, size, w, args.bs, args.batches, args.warmup) for w in args.workers]
        print(f"| {size} | " + " | ".join(f"{s:.0f}" for s in speeds) + " |", flush=True)


if __name__ == "__main__":
    main()
