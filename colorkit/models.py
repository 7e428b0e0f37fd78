"""Generator: a fastai DynamicUnet on a torchvision ResNet body, wrapped so it maps gray RGB to colour RGB.

The wrapper (:class:`ColorizerNet`) owns every normalisation: it takes a batch ``(B, 3, H, W)`` in
``[0, 1]`` (gray or colour; colour is made gray first), feeds the encoder ImageNet-normalised gray, and
returns RGB ``(B, 3, H, W)`` in ``[0, 1]``. In ``"rgb"`` mode the U-Net predicts RGB directly; in
``"lab"`` mode it predicts only the chroma ``a, b`` and the result is recombined with the input's
lightness, so the output's ``L`` is the input's by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision.models as tvm
from fastai.layers import NormType
from fastai.vision.learner import create_unet_model
from torch import Tensor, nn

from ._weights import WeightsUnavailableError, resolve_weights
from .color import AB_SCALE, imagenet_normalize, lab_to_rgb, rgb_to_luminance, to_gray
from .colorclass import ab_bins, annealed_mean

__all__ = [
    "ARCHS",
    "ColorizerNet",
    "GeneratorConfig",
    "WeightsUnavailableError",
    "arch_name",
    "create_generator",
    "encoder_state_dict",
    "generator_split",
    "load_encoder_weights",
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


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a generator without pickles (stored as JSON next to the weights)."""

    arch: str = "resnet34"
    mode: str = "lab"
    self_attention: bool = True
    blur: bool = True
    spectral: bool = True
    img_size: int = 64
    chroma_head: str = "regress"  # lab only: "regress" predicts ab, "classes" a distribution over ab bins
    bin_step: float = 10.0  # ab bin spacing of the class head (Lab units)
    temperature: float = 0.38  # annealed-mean temperature of the class head at inference

    def __post_init__(self) -> None:
        self.arch = arch_name(self.arch)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.chroma_head not in CHROMA_HEADS:
            raise ValueError(f"chroma_head must be one of {CHROMA_HEADS}, got {self.chroma_head!r}")
        if self.chroma_head == "classes" and self.mode != "lab":
            raise ValueError("chroma_head='classes' needs mode='lab' (the classes are Lab chroma bins)")
        if self.temperature <= 0 or self.bin_step <= 0:
            raise ValueError(f"temperature and bin_step must be > 0, got {self.temperature}, {self.bin_step}")

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
        return asdict(self)


class ColorizerNet(nn.Module):
    """Gray ``(B, 3, H, W)`` in [0, 1] -> colour ``(B, 3, H, W)`` in [0, 1] around a U-Net.

    ``unet`` maps ImageNet-normalised gray ``(B, 3, H, W)`` to ``(B, n_out, H, W)`` within ``y_range``.
    With a class head (``chroma_head="classes"``) it returns logits ``(B, K, H, W)`` over the ab bins,
    decoded by the annealed mean: temperature 1 while training (differentiable), ``temperature`` in eval
    mode. With ``return_logits`` set (by :class:`colorkit.colorclass.ColorClassLoss`) the forward pass
    returns ``(rgb, logits)``. Colour conversions always run in float32, also under autocast.
    """

    def __init__(self, unet: nn.Module, mode: str = "lab", chroma_head: str = "regress", bin_step: float = 10.0,
                 temperature: float = 0.38):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.unet, self.mode, self.chroma_head = unet, mode, chroma_head
        self.bin_step, self.temperature, self.return_logits = float(bin_step), float(temperature), False
        centres = ab_bins(bin_step) if chroma_head == "classes" else None
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
            rgb = lab_to_rgb(torch.cat([rgb_to_luminance(gray.float()), ab], dim=1), clip=not self.training)
        return (rgb, out) if self.return_logits and self.bin_centres is not None else rgb


def generator_split(model: ColorizerNet) -> list[list[nn.Parameter]]:
    """Parameter groups for discriminative learning rates: encoder stem+early layers, late layers, decoder."""
    body, decoder = model.unet[0], model.unet[1:]  # DynamicUnet indexes its layers like a list
    return [list(body[:6].parameters()), list(body[6:].parameters()), list(decoder.parameters())]


def encoder_state_dict(arch: str, pretrained: bool = True, weights: str | Path | None = None) -> dict | None:
    """ImageNet weights for ``arch``'s encoder, from a local file or torchvision's cache (None when random)."""
    _, enum = ARCHS[arch_name(arch)]
    return resolve_weights(enum, pretrained, weights)


def load_encoder_weights(unet: nn.Module, arch: str, state_dict: dict) -> None:
    """Load a torchvision ResNet ``state_dict`` into the U-Net's encoder (``unet[0]``)."""
    ctor, _ = ARCHS[arch_name(arch)]
    full = ctor(weights=None)
    try:
        missing, unexpected = full.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise WeightsUnavailableError(f"the weights do not fit {arch}: {first}") from None
    enc_missing = [k for k in missing if not k.startswith("fc.")]
    if enc_missing:
        raise WeightsUnavailableError(
            f"the weights do not fit {arch}: {len(enc_missing)} encoder tensors missing "
            f"(e.g. {enc_missing[:3]}); unexpected keys: {list(unexpected)[:3]}"
        )
    body = nn.Sequential(*list(full.children())[:-2])
    unet[0].load_state_dict(body.state_dict())


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
    """Build the colorizer network outside a Learner (for loading saved models or custom loops).

    ``pretrained=True`` loads torchvision's ImageNet encoder weights (cached under ``TORCH_HOME``);
    ``weights`` loads them from a local file instead. Raises :class:`WeightsUnavailableError` offline.
    """
    cfg = GeneratorConfig(arch, mode, self_attention, blur, spectral, img_size, chroma_head, bin_step, temperature)
    sd = encoder_state_dict(cfg.arch, pretrained, weights)
    ctor, _ = ARCHS[cfg.arch]
    unet = create_unet_model(ctor, cfg.n_out, (img_size, img_size), pretrained=False, **cfg.unet_kwargs())
    if sd is not None:
        load_encoder_weights(unet, cfg.arch, sd)
    net = ColorizerNet(unet, cfg.mode, cfg.chroma_head, cfg.bin_step, cfg.temperature)
    net.config = cfg  # type: ignore[attr-defined]
    return net
