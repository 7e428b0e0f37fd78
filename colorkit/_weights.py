"""Turn ``pretrained=True`` / ``weights="file.pth"`` into a state dict, without surprises offline.

Every pretrained network in colorkit (the generator's encoder, the VGG of the feature loss) gets its
weights here. Pretrained weights come from torchvision's weights enums and the torch hub cache
(``$TORCH_HOME/hub/checkpoints``); when they are not cached and cannot be downloaded,
:class:`WeightsUnavailableError` says which file to place where, or how to do without it. Local files
are read with ``torch.load(weights_only=True)`` (or safetensors), so loading never runs pickled code.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

import torch
from torch import Tensor

__all__ = [
    "WeightsUnavailableError",
    "torchvision_cache_path",
    "torchvision_state_dict",
    "load_state_dict_file",
    "local_weights_file",
    "resolve_weights",
]

_SAFETENSORS_EXT = (".safetensors",)


class WeightsUnavailableError(RuntimeError):
    """Weights were asked for but cannot be had: not cached and offline, a missing or corrupt file, ..."""


def _weights_name(weights_enum: Any) -> str:
    """``"VGG16_BN_Weights.IMAGENET1K_V1"`` for a torchvision weights enum member."""
    return f"{type(weights_enum).__name__}.{getattr(weights_enum, 'name', weights_enum)}"


def torchvision_cache_path(weights_enum: Any) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``weights_enum``'s file (honours ``TORCH_HOME``)."""
    filename = os.path.basename(urlparse(weights_enum.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def local_weights_file(
    weights: str | os.PathLike | None, weights_enum: Any, what: str
) -> tuple[Path | None, str]:
    """Where weights already are on disk, never downloading: ``(path or None, a sentence saying which or why not)``.

    ``weights`` (a local file) when given, else the file torchvision caches ``weights_enum`` as
    (:func:`torchvision_cache_path`); ``what`` names the network in the sentence (``"InceptionV3"``).
    """
    if weights is not None:
        p = Path(weights)
        if p.is_file():
            return p, f"{what} weights: local file {p}"
        return None, f"{what} weights: no file at {p}"
    p = torchvision_cache_path(weights_enum)
    if p.is_file():
        return p, f"{what} weights: torchvision cache {p}"
    return None, (
        f"{what} weights are not in the torchvision cache: place {p.name} (from {weights_enum.url}) "
        f"at {p}, set TORCH_HOME, or pass weights=<local .pth>; nothing is downloaded"
    )


def _short_reason(err: BaseException) -> str:
    """One line saying why a download failed, without the urllib stack."""
    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        reason = err.reason
        return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _unavailable_message(weights_enum: Any, reason: str) -> str:
    name, path = _weights_name(weights_enum), torchvision_cache_path(weights_enum)
    return (
        f"pretrained weights {name} are not cached and could not be downloaded ({reason}).\n"
        f"  URL:  {weights_enum.url}\n"
        f"  Download that file on a connected machine and place it at:\n"
        f"    {path}\n"
        f"  (the cache lives under $TORCH_HOME/hub/checkpoints; set TORCH_HOME to move it).\n"
        f'  Or pass weights="/path/to/file.pth" to load a local copy, '
        f"or pretrained=False for a random initialisation."
    )


def _check_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}`` and check the result maps names to tensors."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsUnavailableError(
            f"{source} does not hold a state dict (got {type(obj).__name__}); expected a mapping of "
            f'parameter names to tensors, possibly under a "state_dict" or "model" key'
        )
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise WeightsUnavailableError(
            f"{source} is not a plain state dict: {len(bad)} entries are not name -> tensor (e.g. {bad[:3]})"
        )
    return dict(obj)


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on CPU: never executes pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_error(path: Path, err: Exception, what: str) -> WeightsUnavailableError:
    hint = ""
    if isinstance(err, pickle.UnpicklingError):
        hint = " (it holds objects other than tensors, refused by weights_only=True loading)"
    return WeightsUnavailableError(f"{what} {path} could not be read{hint}: {type(err).__name__}: {err}")


def torchvision_state_dict(weights_enum: Any) -> dict[str, Tensor]:
    """The state dict of a torchvision weights enum member, from the torch hub cache or downloaded.

    ``weights_enum`` is e.g. ``torchvision.models.ResNet34_Weights.IMAGENET1K_V1``. A cached file is
    loaded without touching the network. Offline and uncached -> :class:`WeightsUnavailableError`
    naming the URL and the exact path to place the file at.
    """
    path = torchvision_cache_path(weights_enum)
    if not path.is_file():
        try:
            state = weights_enum.get_state_dict(progress=True, map_location="cpu", weights_only=True)
        except OSError as err:  # URLError, HTTPError, socket errors, ConnectionError, TimeoutError, disk
            raise WeightsUnavailableError(_unavailable_message(weights_enum, _short_reason(err))) from None
        except Exception as err:  # a truncated/corrupt download fails inside torch.load with many types
            raise _load_error(path, err, f"downloaded {_weights_name(weights_enum)} weights") from None
        return _check_state_dict(state, f"{_weights_name(weights_enum)} ({path})")
    try:
        state = _torch_load(path)
    except Exception as err:  # corrupt pickles raise RuntimeError, EOFError, UnpicklingError, ...
        raise WeightsUnavailableError(
            f"cached {_weights_name(weights_enum)} weights at {path} could not be read "
            f"({type(err).__name__}: {err}); delete the file to download it again, or replace it "
            f"with a good copy of {weights_enum.url}"
        ) from None
    return _check_state_dict(state, f"cached {_weights_name(weights_enum)} weights ({path})")


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Load a local ``.pth``/``.pt`` (``weights_only=True``) or ``.safetensors`` state dict onto the CPU.

    Accepts a plain state dict or a dict holding one under ``"state_dict"`` or ``"model"``. A missing,
    corrupt or unsafe file (one that pickles arbitrary objects) -> :class:`WeightsUnavailableError`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsUnavailableError(f"weights file {path} does not exist")
    if path.is_dir():
        raise WeightsUnavailableError(f"weights file {path} is a directory; pass the .pth/.safetensors file")
    if path.name.lower().endswith(_SAFETENSORS_EXT):
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own SafetensorError, OSError, ...
            raise _load_error(path, err, "safetensors weights file") from None
    else:
        try:
            state = _torch_load(path)
        except Exception as err:  # corrupt pickles raise RuntimeError, EOFError, UnpicklingError, ...
            raise _load_error(path, err, "weights file") from None
    return _check_state_dict(state, f"weights file {path}")


def resolve_weights(
    weights_enum: Any, pretrained: bool = True, weights: str | Path | None = None
) -> dict[str, Tensor] | None:
    """The state dict to load: a local ``weights`` file wins, then ``pretrained`` (torchvision), else None."""
    if weights is not None:
        return load_state_dict_file(weights)
    if pretrained:
        if weights_enum is None:
            raise ValueError("pretrained=True needs a torchvision weights enum; pass weights=<file> instead")
        return torchvision_state_dict(weights_enum)
    return None
