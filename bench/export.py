"""Is onnxruntime a faster engine than PyTorch here? The same network, one photo's render size, on the CPU.

    python bench/export.py [--model DIR] [--size 224x288] [--threads 1,2] [--repeat 5]

Exports the model (default: the starter) with ``colorkit.export.export_onnx`` to a temp file and times, per
thread count, the median of ``--repeat`` forward passes of a ``(1, 1, H, W)`` gray input in: PyTorch fp32,
PyTorch bf16 (autocast + channels_last; where the CPU has bf16 instructions it is ``--precision auto``), and
onnxruntime fp32 (CPUExecutionProvider, all graph optimisations). Wall seconds and CPU seconds (getrusage) are
both printed: on a shared machine trust the CPU figures.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _median_time(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    return sorted(walls)[repeat // 2], sorted(cpus)[repeat // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--size", default="224x288", help="HxW (default: the render shape of a 4:3 photo at 256)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    import onnxruntime as ort
    import torch

    from colorkit import load_colorizer
    from colorkit.export import export_onnx
    from colorkit.infer import inference_format, predict_rgb
    from colorkit.precision import cpu_bf16_flags

    h, w = (int(v) for v in a.size.split("x"))
    clr = load_colorizer(a.model)
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    print(f"model {a.model or 'starter'}, input 1x1x{h}x{w}, median of {a.repeat}; CPU bf16 flags: "
          f"{', '.join(cpu_bf16_flags()) or 'none'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        f = export_onnx(clr, Path(tmp) / "m.onnx", size=(h, w))
        print(f"{'threads':>7} {'engine':>22} {'wall s':>7} {'CPU s':>6}")
        for n in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(n)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = n, 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(str(f), opts, providers=["CPUExecutionProvider"])
            feed = {"gray": x.numpy()}
            t = _median_time(lambda: predict_rgb(clr.model, x, "fp32"), a.repeat)
            print(f"{n:>7} {'PyTorch fp32':>22} {t[0]:7.3f} {t[1]:6.3f}", flush=True)
            with inference_format(clr.model, "bf16"):
                t = _median_time(lambda: predict_rgb(clr.model, x, "bf16"), a.repeat)
            print(f"{n:>7} {'PyTorch bf16 (CL)':>22} {t[0]:7.3f} {t[1]:6.3f}", flush=True)
            t = _median_time(lambda: session.run(["rgb"], feed), a.repeat)  # noqa: B023 (called right here)
            print(f"{n:>7} {'onnxruntime fp32':>22} {t[0]:7.3f} {t[1]:6.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
