"""Export a colorizer's network to ONNX, for deployment without PyTorch (onnxruntime, OpenVINO, TensorRT, ...).

The exported graph (:class:`ExportGraph`) takes a gray batch ``gray`` ``(B, 1, H, W)`` float32 in ``[0, 1]``
(``H`` and ``W`` multiples of :data:`STRIDE`) and returns two outputs:

- ``rgb`` ``(B, 3, H, W)`` in ``[0, 1]``: the colorized image at the input's size;
- ``ab`` ``(B, 2, H, W)``: its CIE Lab chroma (D65), the part colorkit keeps. Upsample it bilinearly to the
  photo's full size and put it on the photo's own lightness to colorize a large photo
  (:func:`colorkit.infer.merge_chroma` does this; docs/export.md shows it in numpy).

:func:`export_onnx` writes the file (atomically) with colorkit's model facts in its metadata;
:func:`compare_onnx` runs it with onnxruntime and returns the largest difference from the PyTorch model.
Needs the ``onnx`` package (and ``onnxruntime`` to compare): ``pip install "colorkit[export]"``.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._tensors import device_of
from .color import rgb_to_lab
from .infer import DEFAULT_RENDER_SIZE, inference_format
from .io import atomic_write

__all__ = ["DEFAULT_OPSET", "STRIDE", "ExportGraph", "compare_onnx", "export_onnx", "onnx_metadata"]

STRIDE = 32
"""The input's height and width must be multiples of this (the U-Net's encoder downsamples 5 times)."""
DEFAULT_OPSET = 17
_INSTALL = 'pip install "colorkit[export]" (or: pip install onnx onnxruntime)'


class ExportGraph(nn.Module):
    """What is exported: gray ``(B, 1, H, W)`` in [0, 1] -> ``rgb`` ``(B, 3, H, W)`` in [0, 1] and its Lab
    chroma ``ab`` ``(B, 2, H, W)`` (exactly what :func:`colorkit.infer.predict_chroma` computes)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, gray: Tensor) -> tuple[Tensor, Tensor]:
        rgb = self.generator(gray).float().clamp(0, 1)
        return rgb, rgb_to_lab(rgb)[:, 1:]


def _generator(obj: Any) -> tuple[nn.Module, Any]:
    """The generator module of a Colorizer / learner / module, and the Colorizer's card (or None)."""
    from .learner import Colorizer, generator_of

    return generator_of(obj), obj.card if isinstance(obj, Colorizer) else None


@contextlib.contextmanager
def _traceable(gen: nn.Module) -> Iterator[ExportGraph]:
    """``gen`` wrapped in :class:`ExportGraph`, in eval mode, contiguous, on the CPU, for the ``with`` block;
    its device, memory format and mode are restored after (tracing reads the weights, never changes them)."""
    device, was_training = device_of(gen), gen.training
    gen.to("cpu")
    try:
        with inference_format(gen, "fp32"), torch.no_grad():
            yield ExportGraph(gen).eval()
    finally:
        gen.to(device).train(was_training)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h < STRIDE or w < STRIDE or h % STRIDE or w % STRIDE:
        raise ValueError(f"the export size must be multiples of {STRIDE} (at least {STRIDE}), got {h}x{w}")
    return h, w


def onnx_metadata(obj: Any, dynamic: bool, size: tuple[int, int]) -> dict[str, str]:
    """The key/value facts written into the ONNX file's metadata (all strings)."""
    from . import __version__

    gen, card = _generator(obj)
    cfg = getattr(gen, "config", None)
    h, w = size
    shape = f"(batch, 1, height, width) (height and width multiples of {STRIDE})" if dynamic else f"(1, 1, {h}, {w})"
    rs = card.render_size if card is not None else getattr(obj, "render_size", DEFAULT_RENDER_SIZE)
    meta = {
        "producer": f"colorkit {__version__}",
        "generator": json.dumps(cfg.to_dict() if cfg is not None else {"mode": getattr(gen, "mode", None)}),
        "render_size": str(rs),
        "stride": str(STRIDE),
        "input.gray": f"{shape} float32 gray in [0, 1]",
        "output.rgb": "(batch, 3, height, width) float32 sRGB in [0, 1]",
        "output.ab": "(batch, 2, height, width) float32 CIE Lab chroma a, b (D65) of rgb",
    }
    return meta


def export_onnx(obj: Any, path: str | Path, *, opset: int = DEFAULT_OPSET, dynamic: bool = False,
                size: Sequence[int] | None = None) -> Path:
    """Write the network of ``obj`` (a :class:`~colorkit.Colorizer`, a colorize learner or a generator) to the
    ONNX file ``path`` (atomically) and return ``path``.

    The graph is :class:`ExportGraph`, traced in float32 on the CPU (``obj`` is left as it was).
    ``size`` ``(H, W)`` (default: the colorizer's render size, square) fixes the input's shape to
    ``(1, 1, H, W)``; ``dynamic`` makes batch, height and width free (any multiple of :data:`STRIDE`).
    ``opset`` is the ONNX operator set (PyTorch's TorchScript exporter supports 7..20). Raises ImportError
    naming the packages when ``onnx`` is not installed.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError(f"exporting to ONNX needs the onnx package: {_INSTALL}") from None
    gen, card = _generator(obj)
    rs = card.render_size if card is not None else getattr(obj, "render_size", None) or DEFAULT_RENDER_SIZE
    h, w = _check_size(size if size is not None else (rs, rs))
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    axes = {"batch": 0, "height": 2, "width": 3}
    dynamic_axes = ({name: {i: a for a, i in axes.items()} for name in ("gray", "rgb", "ab")} if dynamic else None)
    meta = onnx_metadata(obj, dynamic, (h, w))

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), _traceable(gen) as graph:
            warnings.simplefilter("ignore")  # the TorchScript exporter's tracer and deprecation notes
            torch.onnx.export(graph, (x,), str(tmp), dynamo=False, opset_version=int(opset),
                              input_names=["gray"], output_names=["rgb", "ab"], dynamic_axes=dynamic_axes,
                              do_constant_folding=True)
        model = onnx.load(str(tmp))
        model.doc_string = "colorkit colorizer: gray (B, 1, H, W) in [0, 1] -> rgb (B, 3, H, W), ab (B, 2, H, W)"
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))

    return atomic_write(Path(path), write)


def compare_onnx(path: str | Path, obj: Any, sizes: Sequence[Sequence[int]] = ((64, 64),), batch: int = 1,
                 seed: int = 0, threads: int | None = None) -> dict[str, float]:
    """Run the ONNX file with onnxruntime and ``obj``'s generator with PyTorch (fp32) on the same random gray
    batches (``batch`` x 1 x H x W for each ``(H, W)`` in ``sizes``) -> the largest absolute differences
    ``{"rgb": ..., "ab": ...}`` (``rgb`` in [0, 1] units, ``ab`` in Lab units)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError(f"checking an ONNX file needs onnxruntime: {_INSTALL}") from None
    gen, _ = _generator(obj)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = {"rgb": 0.0, "ab": 0.0}
    for size in sizes:
        h, w = _check_size(size)
        x = torch.rand(batch, 1, h, w, generator=g)
        rgb, ab = session.run(["rgb", "ab"], {"gray": x.numpy()})
        with _traceable(gen) as ref:
            want_rgb, want_ab = ref(x)
        worst["rgb"] = max(worst["rgb"], float((torch.from_numpy(rgb) - want_rgb).abs().max()))
        worst["ab"] = max(worst["ab"], float((torch.from_numpy(ab) - want_ab).abs().max()))
    return worst
