"""Training callbacks that are not tied to one loss or network: bf16 autocast training for CPU and CUDA."""

from __future__ import annotations

import contextlib

import torch
from fastai.callback.core import Callback

from .precision import _device_type

__all__ = ["BF16Training"]


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
