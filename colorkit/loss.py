"""Perceptual (feature) loss on RGB batches ``(B, 3, H, W)`` in ``[0, 1]``, as the generator produces.

:class:`FeatureLoss` takes its feature extractor as an argument (any ``nn.Sequential``-like stack), so
tests run it on a two-layer CNN; :func:`vgg16_feature_loss` builds the usual one on torchvision's
VGG16-BN. The extractor is frozen, stays in eval mode, follows the data's device and dtype, and is
never pickled into an exported Learner when it can be rebuilt from a small spec.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._tensors import plain
from ._weights import WeightsUnavailableError, resolve_weights
from .color import AB_SCALE, imagenet_normalize, rgb_to_lab
from .colorclass import ab_to_bin, bin_prior, rebalance_weights

__all__ = ["LOSSES", "ChromaL1Loss", "FeatureLoss", "gram_matrix", "make_loss", "vgg16_bn_features",
           "vgg16_feature_loss"]



def gram_matrix(f: Tensor) -> Tensor:
    """Gram matrix ``(B, C, C)`` of features ``(B, C, H, W)`` divided by ``C*H*W``, in float32 or float64."""
    b, c, h, w = f.shape
    if f.dtype not in (torch.float32, torch.float64):
        f = f.float()
    flat = f.reshape(b, c, h * w)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def _compute_dtype(*xs: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half inputs are upcast; autocast still applies)."""
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


class FeatureLoss(nn.Module):
    """``pixel_weight * L1(pred, targ) + sum_i w_i * L1(f_i(pred), f_i(targ)) + gram term``.

    ``pred``/``targ`` are RGB ``(B, 3, H, W)`` in ``[0, 1]``. ``f_i`` is the output of
    ``extractor[layer_ids[i]]`` (the stack runs step by step and stops after the largest id), on
    ImageNet-normalised inputs when ``normalize``. The gram term is
    ``gram_weight * sum_i w_i**2 * L1(gram(f_i(pred)), gram(f_i(targ)))`` with grams divided by
    ``C*H*W``. ``last_parts`` holds the weighted pixel / feature / gram parts and the total of the
    last call, as floats.

    The extractor is frozen and always in eval mode; it moves to the input's device and dtype on the
    fly. Pickling (``learn.export``) drops the extractor when the loss was built by a factory such as
    :func:`vgg16_feature_loss` and rebuilds it lazily on first use; a custom extractor with no spec
    is pickled as is (it is the user's module, and there is no other way to restore it).
    """

    def __init__(
        self,
        extractor: nn.Module,
        layer_ids: Sequence[int],
        layer_weights: Sequence[float],
        pixel_weight: float = 1.0,
        gram_weight: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        ids, wts = [int(i) for i in layer_ids], [float(w) for w in layer_weights]
        if not ids:
            raise ValueError("FeatureLoss needs at least one layer id")
        if len(ids) != len(wts):
            raise ValueError(f"got {len(ids)} layer_ids {ids} but {len(wts)} layer_weights {wts}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"layer_ids must be distinct, got {ids}")
        if not (hasattr(extractor, "__len__") and hasattr(extractor, "__getitem__")):
            raise TypeError(f"extractor must be an nn.Sequential-like stack, got {type(extractor).__name__}")
        n = len(extractor)  # type: ignore[arg-type]
        if min(ids) < 0 or max(ids) >= n:
            raise ValueError(f"layer_ids {ids} out of range for an extractor of {n} modules (0..{n - 1})")
        self.layer_ids, self.layer_weights = ids, wts
        self.pixel_weight, self.gram_weight = float(pixel_weight), float(gram_weight)
        self.normalize = normalize
        self._spec: dict[str, Any] | None = None
        self._last: dict[str, Tensor] = {}
        self.extractor: nn.Module | None = None
        self._set_extractor(extractor)

    # -- extractor handling -------------------------------------------------------------------------
    def _set_extractor(self, extractor: nn.Module) -> None:
        extractor.requires_grad_(False)
        extractor.eval()
        # A captured feature must not be overwritten in place by the next module (e.g. ReLU(inplace)).
        for i in self.layer_ids:
            if i + 1 < len(extractor) and getattr(extractor[i + 1], "inplace", False):
                extractor[i + 1].inplace = False
        self.extractor = extractor

    def _get_extractor(self) -> nn.Module:
        """The extractor, rebuilt from the spec after unpickling."""
        if self.extractor is None:
            if self._spec is None:
                raise RuntimeError("FeatureLoss has no extractor and no spec to rebuild it from")
            spec = dict(self._spec)
            factory = _FACTORIES[spec.pop("factory")]
            extractor, ids = factory(**spec)
            if ids != self.layer_ids:
                raise RuntimeError(f"rebuilt extractor has layer ids {ids}, this loss uses {self.layer_ids}")
            self._set_extractor(extractor)
        assert self.extractor is not None
        return self.extractor

    def train(self, mode: bool = True) -> FeatureLoss:
        """Set the loss's mode; the extractor stays in eval mode (frozen BatchNorm statistics)."""
        super().train(mode)
        if self.extractor is not None:
            self.extractor.eval()
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = {}
        if self._spec is not None:  # rebuildable: keep the spec, drop the weights
            state["_modules"] = {**state["_modules"], "extractor": None}
        return state

    # -- computation --------------------------------------------------------------------------------
    def _features(self, extractor: nn.Module, x: Tensor) -> list[Tensor]:
        wanted, last, found = set(self.layer_ids), max(self.layer_ids), {}
        for i, layer in enumerate(extractor):
            x = layer(x)
            if i in wanted:
                found[i] = x
            if i >= last:
                break
        return [found[i] for i in self.layer_ids]

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        """Scalar loss for ``pred``, ``targ`` ``(B, 3, H, W)`` in ``[0, 1]``; only ``pred`` gets gradients."""
        pred, targ = plain(pred), plain(targ)
        if pred.shape != targ.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(
                f"FeatureLoss expects pred and targ of the same shape (B, 3, H, W), "
                f"got {tuple(pred.shape)} and {tuple(targ.shape)}"
            )
        dtype = _compute_dtype(pred, targ)
        pred, targ = pred.to(dtype), targ.detach().to(dtype)
        extractor = self._get_extractor()
        ref = next(itertools.chain(extractor.parameters(), extractor.buffers()), None)
        if ref is not None and (ref.device != pred.device or ref.dtype != dtype):
            extractor.to(device=pred.device, dtype=dtype)

        pixel = F.l1_loss(pred, targ)
        x_in, t_in = (imagenet_normalize(pred), imagenet_normalize(targ)) if self.normalize else (pred, targ)
        fp = self._features(extractor, x_in)
        with torch.no_grad():
            ft = self._features(extractor, t_in)
        layers = list(zip(self.layer_weights, fp, ft, strict=True))
        zero = pixel.new_zeros(())
        feature = sum((w * F.l1_loss(a.to(dtype), b.to(dtype)) for w, a, b in layers), zero)
        gram = zero
        if self.gram_weight:
            terms = (w**2 * F.l1_loss(gram_matrix(a), gram_matrix(b)) for w, a, b in layers)
            gram = self.gram_weight * sum(terms, zero)
        pixel = self.pixel_weight * pixel
        total = pixel + feature + gram
        self._last = {"pixel": pixel.detach(), "feature": feature.detach(), "gram": gram.detach()}
        self._last["total"] = total.detach()
        return total

    @property
    def last_parts(self) -> dict[str, float]:
        """Weighted parts of the last call: ``{"pixel", "feature", "gram", "total"}`` as floats."""
        return {k: float(v) for k, v in self._last.items()}

    @property
    def metrics(self) -> dict[str, float]:
        """Alias of :attr:`last_parts`, for logging callbacks."""
        return self.last_parts

    def extra_repr(self) -> str:
        return (
            f"layer_ids={self.layer_ids}, layer_weights={self.layer_weights}, "
            f"pixel_weight={self.pixel_weight}, gram_weight={self.gram_weight}, normalize={self.normalize}"
        )


# -- VGG16-BN -----------------------------------------------------------------------------------------
def _relus_before_pools(features: nn.Sequential, pools: Sequence[int]) -> list[int]:
    """Indices of the modules feeding MaxPool2d number ``pools`` (1-based), checked to be ReLUs."""
    pool_ids = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    ids = []
    for k in pools:
        if not 1 <= k <= len(pool_ids):
            raise ValueError(f"asked for the input of max-pool {k}, but the stack has {len(pool_ids)} pools")
        i = pool_ids[k - 1] - 1
        if not isinstance(features[i], nn.ReLU):
            raise ValueError(f"module {i} before max-pool {k} is {type(features[i]).__name__}, not ReLU")
        ids.append(i)
    return ids


def _init_vgg_(features: nn.Module) -> None:
    """torchvision's VGG initialisation (kaiming-normal convs, unit BatchNorm), on the global RNG."""
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def vgg16_bn_features(
    pretrained: bool = True, weights: str | Path | None = None, pools: Sequence[int] = (3, 4, 5)
) -> tuple[nn.Sequential, list[int]]:
    """torchvision's VGG16-BN ``features``, truncated after the ReLU feeding the last of ``pools``.

    Returns ``(features, layer_ids)``, ``layer_ids`` the ReLUs feeding max-pools ``pools`` (1-based).
    Weights: a local ``weights`` file (a full VGG16-BN state dict or its ``features`` part), else
    ImageNet (``pretrained``), else a random initialisation seeded with 0 (same on every run, and the
    global RNG is left untouched). Only the convolutional stack is ever allocated.
    """
    from torchvision.models import VGG16_BN_Weights, vgg16_bn

    state = resolve_weights(VGG16_BN_Weights.IMAGENET1K_V1, pretrained, weights)
    with torch.device("meta"):  # builds the 138M-parameter classifier for free; only features is kept
        features = vgg16_bn(weights=None).features
    features = features.to_empty(device="cpu")
    if state is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            _init_vgg_(features)
    else:
        if any(k.startswith("features.") for k in state):
            state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        missing, unexpected = features.load_state_dict(state, strict=False)
        if missing:
            source = weights if weights is not None else "VGG16_BN_Weights.IMAGENET1K_V1"
            raise WeightsUnavailableError(
                f"weights {source} do not fit vgg16_bn features: {len(missing)} tensors missing "
                f"(e.g. {missing[:3]}); unexpected keys: {unexpected[:3]}"
            )
    ids = _relus_before_pools(features, pools)
    return features[: max(ids) + 1], ids


_FACTORIES: dict[str, Callable[..., tuple[nn.Module, list[int]]]] = {"vgg16_bn": vgg16_bn_features}


def vgg16_feature_loss(
    pretrained: bool = True,
    weights: str | Path | None = None,
    layer_weights: Sequence[float] = (20, 70, 10),
    pixel_weight: float = 1.0,
    gram_weight: float = 0.0,
) -> FeatureLoss:
    """Feature loss on VGG16-BN activations just before max-pools 3, 4 and 5.

    ``pretrained=True`` needs torchvision's ImageNet weights (cached, or downloadable; see
    :class:`~colorkit.models.WeightsUnavailableError`), ``weights`` a local copy of them.
    ``pretrained=False`` gives a seeded random VGG: still a usable, structure-aware loss (random
    convolutions respond to edges and textures), but far weaker than ImageNet features; for tests
    and offline experiments. The loss pickles as a small spec and rebuilds the VGG on first use.
    """
    weights = None if weights is None else str(weights)
    extractor, ids = vgg16_bn_features(pretrained=pretrained, weights=weights)
    loss = FeatureLoss(extractor, ids, layer_weights, pixel_weight=pixel_weight, gram_weight=gram_weight)
    loss._spec = {"factory": "vgg16_bn", "pretrained": bool(pretrained), "weights": weights}
    return loss


class ChromaL1Loss(nn.Module):
    """Mean absolute error of the Lab chroma ``ab`` (divided by ``AB_SCALE``) of RGB ``(B, 3, H, W)`` batches.

    In lab mode the lightness is the input's by construction, so this is the whole error a colorizer can make.
    ``rebalance`` (0..1, Zhang et al.'s lambda; 0 = off) weights each pixel by the class weight of its target's
    ab bin (:func:`colorkit.colorclass.rebalance_weights`, rescaled to mean 1 over the pixels counted), so rare,
    saturated colours count more than the common near-grays. The bin prior is counted over the targets of the
    first ``prior_batches`` batches the loss sees (the weights follow that running count until then, and are
    fixed after).
    """

    def __init__(self, rebalance: float = 0.0, prior_batches: int = 16, bin_step: float = 10.0):
        super().__init__()
        if not 0 <= rebalance <= 1 or prior_batches < 1:
            raise ValueError(f"need 0 <= rebalance <= 1 and prior_batches >= 1; got {rebalance}, {prior_batches}")
        self.rebalance, self.prior_batches, self.bin_step = float(rebalance), int(prior_batches), float(bin_step)
        self.counts: Tensor | None = None  # (K,) bin counts of the targets seen so far
        self.weights: Tensor | None = None  # (K,) class weights, mean 1 under the prior
        self.seen = 0

    def _pixel_weights(self, ab_targ: Tensor) -> Tensor:
        """Class weights ``(B, 1, H, W)`` of the targets' bins, updating the prior while it is still counted."""
        if self.seen < self.prior_batches:
            counts = bin_prior(ab_targ, self.bin_step).double() * ab_targ[:, 0].numel()
            self.counts = counts if self.counts is None else self.counts + counts
            self.seen += 1
            prior = self.counts / self.counts.sum()
            w = rebalance_weights(prior, self.rebalance, step=self.bin_step).double()
            self.weights = (w / (w * prior).sum()).float()  # mean 1 over the pixels seen: the loss keeps its scale
        return self.weights.to(ab_targ.device)[ab_to_bin(ab_targ, self.bin_step)].unsqueeze(1)

    def forward(self, pred: Tensor, targ: Tensor) -> Tensor:
        pred, targ = plain(pred).float(), plain(targ).float()
        ab_pred, ab_targ = rgb_to_lab(pred)[:, 1:], rgb_to_lab(targ.detach())[:, 1:]
        if not self.rebalance:
            return F.l1_loss(ab_pred, ab_targ) / AB_SCALE
        return (self._pixel_weights(ab_targ) * (ab_pred - ab_targ).abs()).mean() / AB_SCALE

    def extra_repr(self) -> str:
        return f"rebalance={self.rebalance}" if self.rebalance else ""


def _chroma_l1(pretrained: bool = True, rebalance: float = 0.0) -> nn.Module:
    return ChromaL1Loss(rebalance=rebalance)


LOSSES: dict[str, Callable[..., nn.Module]] = {"feature": vgg16_feature_loss, "l1": _chroma_l1}
"""Generator losses by name: ``factory(pretrained=...) -> nn.Module`` on RGB ``(B, 3, H, W)`` in [0, 1].
A new loss is one entry here (and one choice more for ``colorkit train --loss``)."""


def make_loss(name: str = "feature", pretrained: bool = True, rebalance: float = 0.0) -> nn.Module:
    """The generator loss by name: ``"feature"`` (VGG16-BN feature loss, :func:`vgg16_feature_loss`, ImageNet
    VGG when ``pretrained``) or ``"l1"`` (:class:`ChromaL1Loss`, class-rebalanced by ``rebalance``); see
    :data:`LOSSES`. Only ``"l1"`` takes ``rebalance``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    if rebalance and name != "l1":
        raise ValueError(f"rebalance={rebalance}: only the l1 loss can be rebalanced, not {name!r}")
    return LOSSES[name](pretrained=pretrained, **({"rebalance": rebalance} if rebalance else {}))
