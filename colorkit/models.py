"""Generator kinds and their registry. Today one kind: ``"resnet_unet"``, a fastai DynamicUnet on a
torchvision ResNet body.

Every generator is a :class:`ColorizerNet` around a network of some kind. The wrapper owns every
normalisation: it takes a batch ``(B, 3, H, W)`` in ``[0, 1]`` (gray or colour; colour is made gray first),
feeds the network ImageNet-normalised gray, and returns RGB ``(B, 3, H, W)`` in ``[0, 1]``. In ``"rgb"``
mode the network predicts RGB directly; in ``"lab"`` mode only the chroma ``a, b`` (or, with a colour-class
head, a distribution over ab bins), recombined with the input's lightness, so the output's ``L`` is the
input's by construction.

The registry (:data:`GENERATORS`, BasicSR's ``ARCH_REGISTRY`` in our own words) maps a kind's name to its
config dataclass, the function that builds its network and its parameter groups. A config's ``to_dict()``
records its ``kind``; :func:`build_generator` rebuilds any registered kind from it, which is how
:func:`colorkit.load_colorizer` reads saved models. A new architecture registers itself with
:func:`register_generator` (see docs/architecture.md, "Extending colorkit").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchvision.models as tvm
from fastai.layers import NormType
from fastai.vision.learner import create_unet_model
from torch import Tensor, nn

from ._weights import WeightsUnavailableError, resolve_weights
from .color import AB_SCALE, imagenet_normalize, lab_to_rgb, rgb_to_luminance, to_gray
from .colorclass import ab_bins, annealed_mean
from .modelcard import DEFAULT_KIND

__all__ = [
    "ARCHS",
    "GENERATORS",
    "ColorizerNet",
    "GeneratorConfig",
    "GeneratorKind",
    "WeightsUnavailableError",
    "arch_name",
    "build_generator",
    "check_head",
    "create_generator",
    "encoder_state_dict",
    "generator_config",
    "generator_kind",
    "generator_split",
    "load_encoder_weights",
    "register_generator",
    "resnet_with_weights",
]

# name -> (torchvision constructor, ImageNet weights enum member)
ARCHS: dict[str, tuple[Callable[..., nn.Module], Any]] = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V2),
    "resnet101": (tvm.resnet101, tvm.ResNet101_Weights.IMAGENET1K_V2),
}
MODES = ("rgb", "lab")
CHROMA_HEADS = ("regress", "classes")


def arch_name(arch: str | Callable[..., nn.Module]) -> str:
    """The table name of ``arch`` (a name like ``"resnet34"`` or a torchvision constructor)."""
    name = arch if isinstance(arch, str) else getattr(arch, "__name__", repr(arch))
    if name not in ARCHS:
        raise ValueError(f"unknown arch {name!r}; choose one of {', '.join(ARCHS)}")
    return name


def check_head(mode: str, chroma_head: str = "regress", bin_step: float = 10.0, temperature: float = 0.38) -> None:
    """Validate the output-head settings every generator config carries (ValueError saying which is wrong)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if chroma_head not in CHROMA_HEADS:
        raise ValueError(f"chroma_head must be one of {CHROMA_HEADS}, got {chroma_head!r}")
    if chroma_head == "classes" and mode != "lab":
        raise ValueError("chroma_head='classes' needs mode='lab' (the classes are Lab chroma bins)")
    if temperature <= 0 or bin_step <= 0:
        raise ValueError(f"temperature and bin_step must be > 0, got {temperature}, {bin_step}")


@dataclass
class GeneratorConfig:
    """The ResNet U-Net's config (kind ``"resnet_unet"``): everything needed to rebuild it without pickles.

    Every kind's config has the head fields ``mode``, ``img_size``, ``chroma_head``, ``bin_step`` and
    ``temperature`` (read by :class:`ColorizerNet`), ``n_out``, and a ``to_dict()`` that records ``kind``.
    """

    kind: ClassVar[str] = "resnet_unet"

    arch: str = "resnet34"
    mode: str = "lab"
    self_attention: bool = True
    blur: bool = True
    spectral: bool = True
    img_size: int = 64
    chroma_head: str = "regress"  # lab only: "regress" predicts ab, "classes" a distribution over ab bins
    bin_step: float = 10.0  # ab bin spacing of the class head (Lab units)
    temperature: float = 0.38  # annealed-mean temperature of the class head at inference
    chroma_gain: float = 1.0  # the predicted chroma is scaled by this at inference (a decode setting, like temperature)

    def __post_init__(self) -> None:
        self.arch = arch_name(self.arch)
        if not 0 < self.chroma_gain <= 4:
            raise ValueError(f"chroma_gain must be in (0, 4], got {self.chroma_gain}")
        check_head(self.mode, self.chroma_head, self.bin_step, self.temperature)

    @property
    def n_out(self) -> int:
        if self.mode == "rgb":
            return 3
        return len(ab_bins(self.bin_step)) if self.chroma_head == "classes" else 2

    @property
    def y_range(self) -> tuple[float, float] | None:
        if self.chroma_head == "classes":
            return None  # logits
        return (-0.05, 1.05) if self.mode == "rgb" else (-1.0, 1.0)

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for fastai's ``create_unet_model`` / ``unet_learner``."""
        return dict(
            self_attention=self.self_attention,
            blur=self.blur,
            norm_type=NormType.Spectral if self.spectral else NormType.Batch,
            y_range=self.y_range,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


class ColorizerNet(nn.Module):
    """Gray ``(B, 3, H, W)`` in [0, 1] -> colour ``(B, 3, H, W)`` in [0, 1] around a network of any kind.

    ``unet`` maps ImageNet-normalised gray ``(B, 3, H, W)`` to ``(B, n_out, H, W)`` within ``y_range``.
    ``config`` (a registered kind's config, kept as ``.config`` for saving) gives the head settings; the
    explicit ``mode``, ``chroma_head``, ``bin_step`` and ``temperature`` are for a bare network without one,
    and must agree with ``config`` when both are given. With a class head (``chroma_head="classes"``) the
    network returns logits ``(B, K, H, W)`` over the ab bins, decoded by the annealed mean: temperature 1
    while training (differentiable), ``temperature`` in eval mode. With ``return_logits`` set (by
    :class:`colorkit.colorclass.ColorClassLoss`) the forward pass returns ``(rgb, logits)``. In eval mode a lab
    network's chroma is multiplied by ``chroma_gain`` (from the config, default 1). Colour conversions always
    run in float32, also under autocast.
    """

    def __init__(self, unet: nn.Module, mode: str | None = None, chroma_head: str | None = None,
                 bin_step: float | None = None, temperature: float | None = None, *, config: Any = None):
        super().__init__()
        given = {"mode": mode, "chroma_head": chroma_head, "bin_step": bin_step, "temperature": temperature}
        head = {"mode": "lab", "chroma_head": "regress", "bin_step": 10.0, "temperature": 0.38}
        if config is not None:
            head = {k: getattr(config, k) for k in head}
            clash = [f"{k}={v!r}" for k, v in given.items() if v is not None and v != head[k]]
            if clash:
                raise ValueError(f"ColorizerNet: {', '.join(clash)} disagree with the config {config}")
        head.update({k: v for k, v in given.items() if v is not None})
        check_head(**head)
        self.unet, self.mode, self.chroma_head = unet, head["mode"], head["chroma_head"]
        self.bin_step, self.temperature, self.return_logits = float(head["bin_step"]), float(head["temperature"]), False
        self.config = config
        self.chroma_gain = float(getattr(config, "chroma_gain", 1.0))
        centres = ab_bins(self.bin_step) if self.chroma_head == "classes" else None
        self.register_buffer("bin_centres", centres, persistent=False)

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"ColorizerNet expects (B, 3, H, W) or (B, 1, H, W), got {tuple(x.shape)}")
        x = x.float() if not x.is_floating_point() else x
        gray = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else to_gray(x, channels=3)
        out = self.unet(imagenet_normalize(gray))
        with torch.autocast(device_type=out.device.type, enabled=False):
            out = out.float()
            if self.mode == "rgb":
                return out if self.training else out.clamp(0, 1)
            if self.bin_centres is not None:
                ab = annealed_mean(out, self.bin_centres, 1.0 if self.training else self.temperature)
            else:
                ab = out * AB_SCALE
            if not self.training and self.chroma_gain != 1:
                ab = ab * self.chroma_gain
            rgb = lab_to_rgb(torch.cat([rgb_to_luminance(gray.float()), ab], dim=1), clip=not self.training)
        return (rgb, out) if self.return_logits and self.bin_centres is not None else rgb


# ----------------------------------------------------------------------------------------------
# the registry


def _no_encoder_weights(config: Any, pretrained: bool = False, weights: str | Path | None = None) -> None:
    if pretrained or weights is not None:
        raise ValueError(f"generator kind {config.kind!r} has no pretrained encoder; pass pretrained=False")
    return None


@dataclass(frozen=True)
class GeneratorKind:
    """A registered generator kind: ``config`` (a dataclass: ``config(**fields)`` validates), ``build(config,
    encoder_state_dict or None) -> network``, ``split(ColorizerNet) -> parameter groups`` (for
    discriminative learning rates and freezing) and ``encoder_weights(config, pretrained, weights) -> state
    dict or None`` (the pretrained weights to build with, fetched before anything else so an offline run
    fails early)."""

    name: str
    config: type
    build: Callable[[Any, dict | None], nn.Module]
    split: Callable[[ColorizerNet], list[list[nn.Parameter]]]
    encoder_weights: Callable[..., dict | None] = _no_encoder_weights

    def create(self, config: Any, encoder_state_dict: dict | None = None) -> ColorizerNet:
        """The :class:`ColorizerNet` of ``config``, its encoder loaded from ``encoder_state_dict`` if given."""
        return ColorizerNet(self.build(config, encoder_state_dict), config=config)


GENERATORS: dict[str, GeneratorKind] = {}
"""Registered generator kinds by name (``"resnet_unet"``, ...): see :func:`register_generator`."""


def register_generator(
    name: str, config: type, *, split: Callable[[ColorizerNet], list[list[nn.Parameter]]],
    encoder_weights: Callable[..., dict | None] = _no_encoder_weights,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``build(config, encoder_state_dict) -> network`` as the generator kind ``name``.

    ``config`` is the kind's config dataclass: its ``kind`` class attribute must be ``name``, it carries the
    head fields (see :class:`GeneratorConfig`) and its ``to_dict()`` records ``kind``. Registering a name
    twice with another builder is a ValueError.
    """

    def deco(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if getattr(config, "kind", None) != name:
            raise ValueError(f"register_generator({name!r}): {config.__name__}.kind must be {name!r}")
        old = GENERATORS.get(name)
        if old is not None and old.build is not build:
            raise ValueError(f"generator kind {name!r} is already registered (by {old.build.__qualname__})")
        GENERATORS[name] = GeneratorKind(name, config, build, split, encoder_weights)
        return build

    return deco


def generator_kind(name: str) -> GeneratorKind:
    """The registered kind ``name`` (ValueError listing the known ones)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator kind {name!r}; registered: {', '.join(GENERATORS)}")
    return GENERATORS[name]


def generator_config(data: Mapping[str, Any] | Any) -> Any:
    """The config object of a saved generator dict (``{"kind": ..., fields...}``); a config object is
    returned as is. Unknown fields are a ValueError (the model was made by a newer colorkit)."""
    if not isinstance(data, Mapping):
        return data
    d = dict(data)
    kind = generator_kind(d.pop("kind", DEFAULT_KIND))
    names = {f.name for f in fields(kind.config)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"generator kind {kind.name!r} has no setting(s) {unknown}; known: {sorted(names)}")
    return kind.config(**d)


def build_generator(config: Mapping[str, Any] | Any, pretrained: bool = False,
                    weights: str | Path | None = None) -> ColorizerNet:
    """Build the :class:`ColorizerNet` of any registered kind from its config (object or saved dict).

    ``pretrained`` / ``weights`` load the kind's pretrained encoder weights (torchvision's cache or a local
    file); offline and uncached that is a :class:`WeightsUnavailableError`.
    """
    cfg = generator_config(config)
    kind = generator_kind(cfg.kind)
    return kind.create(cfg, kind.encoder_weights(cfg, pretrained, weights))


# ----------------------------------------------------------------------------------------------
# the ResNet U-Net


def generator_split(model: ColorizerNet) -> list[list[nn.Parameter]]:
    """Parameter groups for discriminative learning rates: encoder stem+early layers, late layers, decoder."""
    body, decoder = model.unet[0], model.unet[1:]  # DynamicUnet indexes its layers like a list
    return [list(body[:6].parameters()), list(body[6:].parameters()), list(decoder.parameters())]


def encoder_state_dict(arch: str, pretrained: bool = True, weights: str | Path | None = None) -> dict | None:
    """ImageNet weights for ``arch``'s encoder, from a local file or torchvision's cache (None when random)."""
    _, enum = ARCHS[arch_name(arch)]
    return resolve_weights(enum, pretrained, weights)


def resnet_with_weights(arch: str, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """A torchvision ResNet ``arch`` with ``state_dict`` loaded (its ``fc`` head may be missing or differ).

    Weights that do not fit are a :class:`WeightsUnavailableError` naming ``arch``. Used for the generator's
    encoder and the ResNet critic alike.
    """
    name = arch_name(arch)
    ctor, _ = ARCHS[name]
    full = ctor(weights=None)
    try:
        missing, unexpected = full.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise WeightsUnavailableError(f"the weights do not fit {name}: {first}") from None
    body_missing = [k for k in missing if not k.startswith("fc.")]
    if body_missing:
        raise WeightsUnavailableError(
            f"the weights do not fit {name}: {len(body_missing)} encoder tensors missing "
            f"(e.g. {body_missing[:3]}); unexpected keys: {list(unexpected)[:3]}"
        )
    return full


def load_encoder_weights(unet: nn.Module, arch: str, state_dict: dict) -> None:
    """Load a torchvision ResNet ``state_dict`` into the U-Net's encoder (``unet[0]``)."""
    body = nn.Sequential(*list(resnet_with_weights(arch, state_dict).children())[:-2])
    unet[0].load_state_dict(body.state_dict())


def _resnet_encoder_weights(config: GeneratorConfig, pretrained: bool = False,
                            weights: str | Path | None = None) -> dict | None:
    return encoder_state_dict(config.arch, pretrained, weights)


@register_generator("resnet_unet", GeneratorConfig, split=generator_split, encoder_weights=_resnet_encoder_weights)
def resnet_unet(config: GeneratorConfig, encoder_state_dict: dict | None = None) -> nn.Module:
    """fastai's DynamicUnet on a torchvision ResNet body (``config.arch``), ``n_out`` channels out."""
    ctor, _ = ARCHS[config.arch]
    size = (config.img_size, config.img_size)
    unet = create_unet_model(ctor, config.n_out, size, pretrained=False, **config.unet_kwargs())
    if encoder_state_dict is not None:
        load_encoder_weights(unet, config.arch, encoder_state_dict)
    return unet


def create_generator(
    arch: str = "resnet34",
    mode: str = "lab",
    pretrained: bool = False,
    weights: str | Path | None = None,
    img_size: int = 64,
    self_attention: bool = True,
    blur: bool = True,
    spectral: bool = True,
    chroma_head: str = "regress",
    bin_step: float = 10.0,
    temperature: float = 0.38,
) -> ColorizerNet:
    """Build the ResNet U-Net colorizer outside a Learner (for loading saved models or custom loops).

    ``pretrained=True`` loads torchvision's ImageNet encoder weights (cached under ``TORCH_HOME``);
    ``weights`` loads them from a local file instead. Raises :class:`WeightsUnavailableError` offline.
    Other kinds: :func:`build_generator`.
    """
    cfg = GeneratorConfig(arch, mode, self_attention, blur, spectral, img_size, chroma_head, bin_step, temperature)
    return build_generator(cfg, pretrained, weights)


# The preset networks register their kinds here, so a saved model of any of them loads (colorkit.archs).
from . import archs as _archs  # noqa: E402,F401

# A Learner holding a ColorizerNet gets ``learn.colorize`` and ``learn.save_colorizer`` even when it was unpickled
# (fastai's ``load_learner``) without colorkit.learner having been imported yet.
from . import learner as _learner  # noqa: E402,F401
