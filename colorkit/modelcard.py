"""The saved-model format, owned in one place: a colorizer folder and its model card (``config.json``).

A colorizer folder holds ``model.safetensors`` (weights only), ``config.json`` (a :class:`ModelCard`: what
to rebuild, the render size, how it was trained) and, when known, ``metrics.json``. Every module that
reads or writes a model folder (learner, train, nogan, the CLI) goes through :class:`ModelCard`, and the
handling of older formats lives only in :meth:`ModelCard.from_dict`.

This module imports only the standard library, so ``colorkit info`` and the CLI's checks are instant.
It also holds :class:`Record`, the mapping-style read access shared by the training reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_KIND",
    "FORMAT_VERSION",
    "METRICS_FILE",
    "STAGE_KEYS",
    "STARTER_MODEL",
    "WEIGHTS_FILE",
    "ModelCard",
    "Record",
    "check_model_dir",
    "read_metrics",
]

FORMAT_VERSION = 2
"""Written into every ``config.json``. 1: no generator ``kind`` (always the ResNet U-Net); 2: ``kind``."""

WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE = "model.safetensors", "config.json", "metrics.json"

STARTER_MODEL: Path = Path(__file__).resolve().parent / "weights" / "starter"
"""The starter model shipped inside the package (docs/starter-model.md): ``load_colorizer()`` and every
``colorkit`` command default to it."""

DEFAULT_KIND = "resnet_unet"
"""The generator kind of configs written before kinds existed (format 1)."""

DEFAULT_RENDER_SIZE = 256  # = infer.DEFAULT_RENDER_SIZE (not imported: this module stays torch-free)

STAGE_KEYS = frozenset({"stage", "size", "epochs", "lr", "bs", "frozen", "data_pct", "seconds"})
"""Keys of a training-history entry that describe the stage; the others are its results (losses, metrics)."""


class Record:
    """Read access by key to a dataclass report (``report["best_iter"]``, ``report.get(...)``), through its
    ``to_dict()``, so code written when the reports were plain dicts keeps working."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def keys(self) -> Any:
        return self.to_dict().keys()

    def items(self) -> Any:
        return self.to_dict().items()


def check_model_dir(path: str | Path) -> Path:
    """``path`` as a Path if it is a colorizer folder (``config.json`` and ``model.safetensors``), else
    FileNotFoundError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder (a colorkit model is a folder with {CONFIG_FILE} "
                                f"and {WEIGHTS_FILE}, as written by `colorkit train` or save_colorizer)")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: not found; a colorizer folder holds {CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE}")
    return path


def read_metrics(folder: str | Path) -> dict[str, Any]:
    """``folder/metrics.json`` as a dict ({} when there is none); ValueError naming the file when unreadable."""
    f = Path(folder) / METRICS_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{f}: unreadable metrics ({e})") from None
    return data if isinstance(data, dict) else {"value": data}


@dataclass
class ModelCard:
    """What ``config.json`` says about a saved colorizer.

    ``generator`` is the generator's config as a dict, with its ``kind`` (see
    :func:`colorkit.models.build_generator`); ``render_size`` the side the network renders at by default;
    ``dtype`` the stored weights' float type; ``training`` the record of how it was trained (data, stages,
    per-stage ``history``, seed, and ``gan`` for NoGAN fine-tuning). Keys this version does not know are kept
    in ``extra`` and written back. ``path`` is the folder it was read from (not written).
    """

    generator: dict[str, Any]
    render_size: int = DEFAULT_RENDER_SIZE
    dtype: str = "float32"
    n_params: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    colorkit_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = CONFIG_FILE) -> ModelCard:
        """A card from a parsed ``config.json``; older formats are brought up to date here (and only here):
        no generator ``kind`` -> :data:`DEFAULT_KIND`; a ResNet U-Net without ``mode`` -> ``"rgb"`` (written
        before lab became the default). ValueError naming ``source`` for anything that is not a config."""
        if not isinstance(data, dict) or not isinstance(data.get("generator"), dict):
            got = type(data).__name__ if not isinstance(data, dict) else f"keys {sorted(data)}"
            raise ValueError(f"{source}: not a colorkit config (no 'generator' section; got {got})")
        version = data.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"{source}: format version {version} is newer than this colorkit "
                             f"({FORMAT_VERSION}); upgrade colorkit")
        gen = dict(data["generator"])
        gen.setdefault("kind", DEFAULT_KIND)
        if gen["kind"] == DEFAULT_KIND:
            gen.setdefault("mode", "rgb")
        known = {f.name for f in fields(cls)} - {"extra", "path", "generator"}
        try:
            render_size = int(data.get("render_size") or DEFAULT_RENDER_SIZE)
        except (TypeError, ValueError):
            raise ValueError(f"{source}: render_size must be a number, got {data.get('render_size')!r}") from None
        return cls(
            generator=gen,
            render_size=render_size,
            dtype=str(data.get("dtype", "float32")),
            n_params=data.get("n_params"),
            training=dict(data.get("training") or {}),
            format_version=version,
            colorkit_version=str(data.get("colorkit_version", "")),
            extra={k: v for k, v in data.items() if k not in known and k != "generator"},
        )

    @classmethod
    def from_dir(cls, folder: str | Path, require_weights: bool = True) -> ModelCard:
        """The card of the colorizer folder ``folder`` (FileNotFoundError when it is not one)."""
        folder = Path(folder)
        if require_weights:
            check_model_dir(folder)
        f = folder / CONFIG_FILE
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{f}: not found; a colorizer folder holds {CONFIG_FILE} and "
                                    f"{WEIGHTS_FILE}") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"{f}: not a colorkit config ({e})") from None
        card = cls.from_dict(data, source=str(f))
        card.path = folder
        return card

    # -- writing ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of ``config.json``."""
        return {
            "format_version": self.format_version,
            "colorkit_version": self.colorkit_version,
            "generator": dict(self.generator),
            "render_size": self.render_size,
            "dtype": self.dtype,
            "n_params": self.n_params,
            "training": self.training,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def write(self, folder: str | Path) -> Path:
        """Write ``folder/config.json`` atomically; returns its path."""
        from .io import write_text_atomic

        return write_text_atomic(Path(folder) / CONFIG_FILE, self.to_json())

    # -- what readers ask --------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return str(self.generator.get("kind", DEFAULT_KIND))

    @property
    def arch(self) -> str | None:
        return self.generator.get("arch")

    @property
    def mode(self) -> str | None:
        return self.generator.get("mode")

    @property
    def history(self) -> list[dict[str, Any]]:
        """The per-stage training history (``[]`` when there is none)."""
        return list(self.training.get("history") or [])

    def final_metrics(self) -> dict[str, Any]:
        """The last training stage's results (validation loss and metrics), without the stage's settings."""
        hist = self.history
        return {k: v for k, v in (hist[-1] if hist else {}).items() if k not in STAGE_KEYS}

    def describe(self) -> str:
        """One line: ``"resnet34 U-Net, lab output, self-attention"``."""
        g = self.generator
        if self.kind == DEFAULT_KIND:
            net = f"{self.arch} U-Net"
        else:
            net = self.kind + (f" ({self.arch})" if self.arch else "")
        head = ", colour-class head" if g.get("chroma_head") == "classes" else ""
        return f"{net}, {self.mode} output{head}{', self-attention' if g.get('self_attention') else ''}"
