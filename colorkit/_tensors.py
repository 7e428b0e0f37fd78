"""Small tensor helpers shared by the modules (one home each): plain tensors, a model's device, PIL -> tensor."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

__all__ = ["device_of", "image_to_tensor", "plain"]


def plain(x: Tensor) -> Tensor:
    """``x`` without fastai's tensor subclasses (``TensorImage``, ...), so torch ops dispatch as on plain
    tensors; autograd is kept."""
    return x if type(x) is Tensor else x.as_subclass(Tensor)


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def image_to_tensor(img: Image.Image | np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
    """An 8-bit RGB PIL image (or ``(H, W, 3)`` uint8 array) -> ``(3, H, W)`` in ``[0, 1]`` of ``dtype``.

    Numpy does the conversion (no torch threads), so it is cheap on background threads.
    """
    if isinstance(img, Image.Image) and img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got an array of shape {arr.shape}")
    np_dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(dtype)
    if np_dtype is None:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    out = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np_dtype)
    out /= np_dtype(255)
    return torch.from_numpy(out)
