"""Numeric precision: ``"auto" | "bf16" | "fp32"``, resolved against the hardware, for training and inference.

bf16 autocast with ``channels_last`` roughly halves a ResNet U-Net step on CPUs with bf16 instructions
(``avx512_bf16`` or Intel AMX ``amx_bf16``) and on CUDA GPUs that support bf16; elsewhere it is slower
than fp32, so ``"auto"`` picks it only where the hardware has it. Colour conversions and losses stay in
float32 (see :class:`colorkit.models.ColorizerNet`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from fastai.callback.core import Callback
from torch import nn

__all__ = ["PRECISIONS", "BF16Training", "autocast", "cpu_bf16_flags", "has_bf16", "resolve_precision",
           "to_precision"]

PRECISIONS = ("auto", "bf16", "fp32")
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The bf16 instruction-set flags this CPU reports (``amx_bf16``, ``avx512_bf16``); empty if none or unknown."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return tuple(f for f in _CPU_BF16_FLAGS if f in flags)
    return ()


def _device_type(device: str | torch.device | None) -> str:
    return torch.device(device).type if device is not None else "cpu"


def has_bf16(device: str | torch.device | None = None) -> bool:
    """True where bf16 is fast: a CUDA device that supports it, or a CPU with AMX / AVX-512 bf16 instructions."""
    kind = _device_type(device)
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return bool(cpu_bf16_flags())
    return False


def resolve_precision(precision: str = "auto", device: str | torch.device | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: ``"auto"`` is bf16 only where :func:`has_bf16` says the hardware has it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if has_bf16(device) else "fp32"
    return precision


@contextlib.contextmanager
def autocast(precision: str, device: str | torch.device | None = None) -> Iterator[None]:
    """``torch.autocast`` to bf16 on ``device``'s type when ``precision`` resolves to bf16; a no-op for fp32."""
    kind = _device_type(device)
    with torch.autocast(kind, dtype=torch.bfloat16, enabled=resolve_precision(precision, device) == "bf16"):
        yield


def to_precision(model: nn.Module, precision: str, device: str | torch.device | None = None) -> nn.Module:
    """Put ``model`` in ``channels_last`` memory format for bf16 (contiguous for fp32), in place; returns it."""
    fmt = torch.channels_last if resolve_precision(precision, device) == "bf16" else torch.contiguous_format
    return model.to(memory_format=fmt)


class BF16Training(Callback):
    """Train under bf16 autocast with ``channels_last`` (CPU or CUDA); the loss is computed in float32.

    fastai's ``MixedPrecision`` only drives CUDA; this one autocasts on the model's device type. bf16 has
    fp32's range, so no gradient scaling is needed.
    """

    order = 10  # after the data is on the device, before anything reads the prediction

    def before_fit(self) -> None:
        self.kind = _device_type(getattr(self.dls, "device", None))
        self.learn.model.to(memory_format=torch.channels_last)
        self._ctx: contextlib.AbstractContextManager | None = None

    def before_batch(self) -> None:
        xb = tuple(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in self.xb)
        self.learn.xb = xb
        self._ctx = torch.autocast(self.kind, dtype=torch.bfloat16)
        self._ctx.__enter__()

    def _exit(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def after_pred(self) -> None:
        self._exit()

    def after_batch(self) -> None:
        self._exit()  # a batch cancelled inside the forward pass must not leave autocast on

    def after_fit(self) -> None:
        self._exit()
        self.learn.model.to(memory_format=torch.contiguous_format)
