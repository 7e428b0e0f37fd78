"""Numeric precision: ``"auto" | "bf16" | "fp32"``, resolved against the hardware, for training and inference.

bf16 autocast with ``channels_last`` roughly halves a ResNet U-Net step on CPUs with bf16 instructions
(``avx512_bf16`` or Intel AMX ``amx_bf16``) and on CUDA GPUs that support bf16; elsewhere it is slower
than fp32, so ``"auto"`` picks it only where the hardware has it. Colour conversions and losses stay in
float32 (see :class:`colorkit.models.ColorizerNet`). This module imports only torch; the training callback
:class:`~colorkit.callbacks.BF16Training` (also reachable here) lives with fastai in :mod:`colorkit.callbacks`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

__all__ = ["PRECISIONS", "autocast", "cpu_bf16_flags", "has_bf16", "resolve_precision",
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


def __getattr__(name: str):  # noqa: ANN202 - PEP 562: the training callback needs fastai, loaded on first use
    if name == "BF16Training":
        from .callbacks import BF16Training

        return BF16Training
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
