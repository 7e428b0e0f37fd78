"""NoGAN: critics, critic pretraining on generated images, short GAN fine-tuning keeping the best generator.

The sequence (``nogan`` runs it all; each step is also a function of its own):

1. :func:`render_generated` renders the generator's outputs for a seeded sample of the training photos
   into a cache folder (atomic PNG writes, a ``manifest.json`` recording the generator's weights hash,
   so a second run reuses them and another generator does not);
2. :func:`critic_dls` + :func:`critic_learner` + :func:`pretrain_critic` train a critic to tell real
   photos (label ``real`` = 1) from generated ones (``fake`` = 0) with binary cross-entropy;
3. :func:`gan_finetune` fine-tunes generator and critic together with fastai's ``GANLearner``
   (adaptive switching on the critic's loss, Adam betas (0, 0.9), critic lr x5), scoring the generator
   every ``every`` iterations on held-out photos and putting the best checkpoint back at the end.

Critics take RGB ``(B, 3, H, W)`` in ``[0, 1]`` (as the generator produces) and return logits
``(B, N)``, one per patch; they ImageNet-normalise internally. The generator stays an ordinary
:class:`~colorkit.models.ColorizerNet` inside the ``colorize_learner`` it came from, so
``learn.colorize``, ``save_colorizer`` and ``load_colorizer`` work on the result unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from fastai.data.block import CategoryBlock, DataBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor, ItemGetter, RandomSplitter
from fastai.layers import ConvLayer, NormType, SelfAttention
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.vision.augment import Flip
from fastai.vision.core import PILImage
from fastai.vision.gan import AdaptiveGANSwitcher, AdaptiveLoss, GANLearner, accuracy_thresh_expand
from PIL import Image, ImageOps
from torch import Tensor, nn

from .color import imagenet_normalize, to_gray
from .data import CenterCropResize, OpenPhoto, open_photo
from .io import ImageLoadError, find_images, save_image, write_json_atomic
from .learner import _generator, colorize_learner, load_colorizer, save_colorizer
from .metrics import colorfulness, psnr
from .models import ARCHS, ColorizerNet, WeightsUnavailableError, arch_name, encoder_state_dict
from .train import set_seed

__all__ = [
    "CRITICS",
    "CriticNet",
    "spectral_critic",
    "patch_critic",
    "resnet_critic",
    "create_critic",
    "critic_loss",
    "gan_opt_func",
    "weights_hash",
    "RenderResult",
    "render_generated",
    "critic_dls",
    "critic_learner",
    "pretrain_critic",
    "EvalSet",
    "load_eval_set",
    "evaluate_generator",
    "nogan_score",
    "check_divergence",
    "CriticLRMult",
    "GANCheckpoint",
    "gan_finetune",
    "nogan",
    "train_gan",
]

MANIFEST = "manifest.json"
_MANIFEST_FORMAT = 1
REAL, FAKE = "real", "fake"  # CategoryBlock sorts the vocab: fake -> 0, real -> 1


# ----------------------------------------------------------------------------------------------
# critics


class CriticNet(nn.Module):
    """RGB ``(B, 3, H, W)`` in [0, 1] -> real/fake logits ``(B, N)``, one per patch of the image.

    ``body`` maps an ImageNet-normalised batch to ``(B, 1, h, w)`` (or ``(B, N)``). ``min_size`` is
    the smallest side the body accepts; smaller inputs raise a ValueError saying so.
    """

    def __init__(self, body: nn.Module, min_size: int = 8, config: dict[str, Any] | None = None):
        super().__init__()
        self.body, self.min_size = body, int(min_size)
        self.config: dict[str, Any] = dict(config or {})

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"the critic expects RGB (B, 3, H, W) in [0, 1], got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"the critic {self.config.get('kind', '')!r} needs images of at least "
                             f"{self.min_size} px a side, got {tuple(x.shape[-2:])}")
        x = x if type(x) is Tensor else x.as_subclass(Tensor)
        x = x.float() if not x.is_floating_point() else x
        return self.body(imagenet_normalize(x)).flatten(1)


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _conv(ni: int, nf: int, ks: int = 3, stride: int = 1, norm: NormType | None = NormType.Spectral,
          act: bool = True, attention: bool = False, padding: int | None = None) -> nn.Module:
    return ConvLayer(ni, nf, ks=ks, stride=stride, padding=padding, norm_type=norm,
                     act_cls=_leaky if act else None, xtra=SelfAttention(nf) if attention else None)


def spectral_critic(
    nf: int = 256, n_blocks: int = 3, p: float = 0.15, self_attention: bool = True
) -> CriticNet:
    """The published NoGAN critic: spectral-norm convolutions, LeakyReLU 0.2, dropout ``p``, self-attention.

    A stride-2 4x4 stem to ``nf`` filters, then ``n_blocks`` blocks (3x3 conv, dropout, stride-2 4x4
    conv doubling the filters; self-attention after the first block's when ``self_attention``), a 3x3
    conv and a 3x3 conv to one logit per position. A ``S`` px input gives ``(S / 2**(n_blocks+1))**2``
    patch logits; the smallest input is ``2**(n_blocks+1)`` px.
    """
    if nf < 1 or n_blocks < 0 or not 0 <= p < 1:
        raise ValueError(f"spectral_critic: need nf >= 1, n_blocks >= 0 and 0 <= p < 1, "
                         f"got nf={nf}, n_blocks={n_blocks}, p={p}")
    cfg = dict(kind="spectral", nf=nf, n_blocks=n_blocks, p=p, self_attention=self_attention)
    layers: list[nn.Module] = [_conv(3, nf, ks=4, stride=2), nn.Dropout2d(p / 2)]
    for i in range(n_blocks):
        layers += [_conv(nf, nf), nn.Dropout2d(p),
                   _conv(nf, nf * 2, ks=4, stride=2, attention=self_attention and i == 0)]
        nf *= 2
    layers += [_conv(nf, nf), _conv(nf, 1, act=False)]
    return CriticNet(nn.Sequential(*layers), min_size=2 ** (n_blocks + 1), config=cfg)


_NORMS: dict[str | None, NormType | None] = {
    "spectral": NormType.Spectral, "batch": NormType.Batch, "instance": NormType.Instance, None: None,
}


def patch_critic(nf: int = 64, n_layers: int = 3, norm: str | None = "spectral") -> CriticNet:
    """A pix2pix-style PatchGAN: 4x4 convs, ``n_layers`` of stride 2, filters doubling up to ``8 * nf``.

    With ``n_layers=3`` each logit sees a 70x70 px patch. ``norm`` is ``"spectral"``, ``"batch"``,
    ``"instance"`` or None. The smallest input is ``3 * 2**n_layers`` px.
    """
    if norm not in _NORMS:
        raise ValueError(f"patch_critic: norm must be one of {list(_NORMS)}, got {norm!r}")
    if nf < 1 or n_layers < 1:
        raise ValueError(f"patch_critic: need nf >= 1 and n_layers >= 1, got {nf}, {n_layers}")
    nt = _NORMS[norm]
    layers: list[nn.Module] = [_conv(3, nf, ks=4, stride=2, norm=None)]
    mult = 1
    for i in range(1, n_layers + 1):
        prev, mult = mult, min(2**i, 8)
        layers.append(_conv(nf * prev, nf * mult, ks=4, stride=2 if i < n_layers else 1, norm=nt))
    layers.append(_conv(nf * mult, 1, ks=4, stride=1, norm=None, act=False, padding=1))
    cfg = dict(kind="patch", nf=nf, n_layers=n_layers, norm=norm)
    return CriticNet(nn.Sequential(*layers), min_size=3 * 2**n_layers, config=cfg)


def resnet_critic(arch: str = "resnet34", pretrained: bool = True, weights: str | Path | None = None,
                  p: float = 0.15) -> CriticNet:
    """A critic on a torchvision ResNet body (ImageNet weights when ``pretrained``) + a 1x1 conv head.

    Weights follow the generator's rules: torchvision's cache (``TORCH_HOME``) or a local ``weights``
    file; offline and uncached -> :class:`~colorkit.models.WeightsUnavailableError` naming the file to
    place, or pass ``pretrained=False``. One logit per 32x32 px cell; the smallest input is 32 px.
    """
    name = arch_name(arch)
    ctor, _ = ARCHS[name]
    sd = encoder_state_dict(name, pretrained, weights)
    full = ctor(weights=None)
    if sd is not None:
        try:
            missing, _unexpected = full.load_state_dict(sd, strict=False)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise WeightsUnavailableError(f"the weights do not fit {name}: {first}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise WeightsUnavailableError(f"the weights do not fit {name}: {len(missing)} tensors missing "
                                          f"(e.g. {missing[:3]})")
    n_feat = full.fc.in_features
    body = nn.Sequential(*list(full.children())[:-2], nn.Dropout2d(p), nn.Conv2d(n_feat, 1, 1))
    cfg = dict(kind="resnet", arch=name, pretrained=sd is not None, p=p)
    return CriticNet(body, min_size=32, config=cfg)


CRITICS: dict[str, Callable[..., CriticNet]] = {
    "spectral": spectral_critic,
    "patch": patch_critic,
    "resnet": resnet_critic,
}


def create_critic(kind: str = "spectral", **kwargs: Any) -> CriticNet:
    """Build a critic by name (``"spectral"``, ``"patch"``, ``"resnet"``); ``kwargs`` go to its builder."""
    if kind not in CRITICS:
        raise ValueError(f"unknown critic {kind!r}; choose one of {', '.join(CRITICS)}")
    return CRITICS[kind](**kwargs)


def critic_loss() -> nn.Module:
    """Binary cross-entropy on every patch logit against the image's label (real 1, fake 0)."""
    return AdaptiveLoss(nn.BCEWithLogitsLoss())


def gan_opt_func(betas: tuple[float, float] = (0.0, 0.9)) -> Callable[..., Any]:
    """fastai's Adam with the GAN phase's ``betas`` (momentum 0, squared-gradient average 0.9)."""
    return partial(Adam, mom=float(betas[0]), sqr_mom=float(betas[1]))


# ----------------------------------------------------------------------------------------------
# step 1: render the generator's outputs to a cache


def weights_hash(model: nn.Module) -> str:
    """SHA-256 (hex) of a model's state dict: names, dtypes, shapes and bytes, in sorted order.

    The architecture shows in the names and shapes; nothing else (such as the size a generator was
    built at) enters, so the same weights give the same hash.
    """
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous().reshape(-1)
        h.update(f"{k}|{t.dtype}|{tuple(v.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_name(src: Path) -> str:
    digest = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:10]
    return f"{src.stem}-{digest}.png"


def _files(source: Any, what: str) -> list[Path]:
    """Image files from a folder (recursive), a file, or a list of files/folders, sorted, at least one."""
    if isinstance(source, RenderResult):
        return list(source.files)
    files = find_images(source, recursive=True)
    if not files:
        raise ValueError(f"no image files ({what}) found in {source}")
    return files


def _sample(files: list[Path], n: int | None, seed: int) -> list[Path]:
    if n is None or n >= len(files):
        return list(files)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    idx = np.random.default_rng([seed, 7]).permutation(len(files))[:n]  # nested: a larger n adds files
    return [files[i] for i in sorted(idx.tolist())]


def _to_pil(t: Tensor) -> Image.Image:
    arr = t.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def _to_tensor(img: Image.Image) -> Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).float().div_(255)


def _load_square(path: Path, size: int) -> Tensor:
    """A photo centre-cropped and resized to ``size`` px -> ``(3, size, size)`` in [0, 1]."""
    img = open_photo(path, 2 * size)
    return _to_tensor(ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR))


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor) -> Tensor:
    """The generator's output for ``x`` (B, 3, H, W), in eval mode (restored after), on the CPU."""
    was = model.training
    model.eval()
    try:
        return model(x.to(_device_of(model))).float().clamp(0, 1).cpu()
    finally:
        model.train(was)


@dataclass
class RenderResult:
    """What :func:`render_generated` did. ``files[i]`` is the rendering of ``sources[i]``."""

    cache_dir: Path
    sources: list[Path]
    files: list[Path]
    rendered: int
    reused: int
    invalidated: int
    generator_hash: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cache_dir": str(self.cache_dir), "n": len(self.files), "rendered": self.rendered,
                "reused": self.reused, "invalidated": self.invalidated, "generator_hash": self.generator_hash,
                "skipped": [[str(p), r] for p, r in self.skipped]}


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("files"), dict) else None


def render_generated(
    learn_or_model: Any,
    source: Any,
    cache_dir: str | Path,
    size: int = 64,
    n: int | None = None,
    seed: int = 42,
    bs: int = 8,
) -> RenderResult:
    """Render the generator's outputs for a seeded sample of ``n`` photos of ``source`` into ``cache_dir``.

    Each photo is centre-cropped to a ``size`` px square, made gray, colorized and written as
    ``<stem>-<hash of its path>.png`` with ``io.save_image`` (atomic). ``manifest.json`` records the
    generator's :func:`weights_hash`, the size and the files: a later call skips what is already
    rendered; a different generator or size deletes the renderings listed in the old manifest (and
    nothing else) and renders again. Unreadable photos are skipped with one warning.
    """
    model = _generator(learn_or_model)
    if size < 8:
        raise ValueError(f"size must be >= 8 px, got {size}")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    sources = _sample(_files(source, "source"), n, seed)
    ghash = weights_hash(model)
    mpath = cache / MANIFEST
    old = _read_manifest(mpath)
    invalidated = 0
    keep = (old is not None and old.get("format") == _MANIFEST_FORMAT and old.get("generator") == ghash
            and old.get("size") == int(size))
    if old is not None and not keep:
        for name in old["files"]:
            f = cache / Path(name).name  # never outside the cache folder
            if f.is_file():
                f.unlink()
                invalidated += 1
    manifest = {"format": _MANIFEST_FORMAT, "generator": ghash, "size": int(size),
                "files": dict(old["files"]) if keep and old else {}}
    todo, reused = [], 0
    for src in sources:
        name = _cache_name(src)
        if name in manifest["files"] and (cache / name).is_file():
            reused += 1
        else:
            todo.append(src)
    skipped: list[tuple[Path, str]] = []
    rendered = 0
    for k in range(0, len(todo), bs):
        chunk, imgs = [], []
        for src in todo[k : k + bs]:
            try:
                imgs.append(_load_square(src, size))
                chunk.append(src)
            except ImageLoadError as e:
                skipped.append((src, e.reason))
        if not chunk:
            continue
        out = _predict(model, to_gray(torch.stack(imgs)))
        for src, o in zip(chunk, out, strict=True):
            name = _cache_name(src)
            save_image(_to_pil(o), cache / name)
            manifest["files"][name] = str(src)
        rendered += len(chunk)
        write_json_atomic(mpath, manifest)
    write_json_atomic(mpath, manifest)
    if skipped:
        names = ", ".join(p.name for p, _ in skipped[:5])
        names += f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"render_generated: skipped {len(skipped)} unreadable photo(s): {names}", stacklevel=2)
    bad = {p for p, _ in skipped}
    kept = [s for s in sources if s not in bad]
    return RenderResult(cache, kept, [cache / _cache_name(s) for s in kept], rendered, reused, invalidated,
                        ghash, skipped)


# ----------------------------------------------------------------------------------------------
# step 2: the critic's data, learner and pretraining


def critic_dls(
    real: Any,
    fake: Any,
    size: int = 64,
    bs: int = 16,
    valid_pct: float = 0.2,
    seed: int = 42,
    augment: bool = True,
    num_workers: int = 0,
    device: Any = None,
) -> DataLoaders:
    """``DataLoaders`` of (image ``(B, 3, size, size)`` in [0, 1], label): ``real`` = 1, ``fake`` = 0.

    ``real``: colour photos (folder, files, or None to take ``fake.sources`` of a :class:`RenderResult`).
    ``fake``: generated images (a :class:`RenderResult`, a folder, or files). Every image is centre-cropped
    and resized to ``size`` (as the renderings were made); ``augment`` adds horizontal flips. The split
    is a seeded ``valid_pct`` share of all items.
    """
    if real is None:
        if not isinstance(fake, RenderResult):
            raise ValueError("critic_dls: real=None needs fake to be a RenderResult "
                             "(its sources are the real photos)")
        real = fake.sources
    real_files, fake_files = _files(real, "real photos"), _files(fake, "generated images")
    items = [(p, REAL) for p in real_files] + [(p, FAKE) for p in fake_files]
    if bs > len(items):
        bs = len(items)
    block = DataBlock(
        blocks=(TransformBlock(type_tfms=OpenPhoto(2 * size, PILImage), batch_tfms=IntToFloatTensor()),
                CategoryBlock(vocab=[FAKE, REAL])),
        get_x=ItemGetter(0),
        get_y=ItemGetter(1),
        splitter=RandomSplitter(valid_pct=valid_pct, seed=seed),
        item_tfms=[CenterCropResize(size)],
        batch_tfms=[Flip(p=0.5)] if augment else [],
    )
    dls = block.dataloaders(items, bs=bs, num_workers=num_workers, device=device)
    dls.critic_info = {"n_real": len(real_files), "n_fake": len(fake_files), "size": int(size)}
    return dls


def critic_learner(
    dls: DataLoaders,
    critic: str | nn.Module = "spectral",
    loss_func: nn.Module | None = None,
    metrics: Any = None,
    wd: float = 1e-3,
    **critic_kwargs: Any,
) -> Learner:
    """A ``Learner`` for a critic (a :class:`CriticNet` or the name of one in :data:`CRITICS`).

    Loss: :func:`critic_loss` (BCE per patch logit); metric: ``accuracy_thresh_expand`` (share of patch
    logits on the right side of 0). ``critic_kwargs`` go to the critic's builder.
    """
    model = create_critic(critic, **critic_kwargs) if isinstance(critic, str) else critic
    if critic_kwargs and not isinstance(critic, str):
        raise TypeError("critic_kwargs are only used when critic is a name")
    return Learner(dls, model, loss_func=loss_func if loss_func is not None else critic_loss(),
                   metrics=[accuracy_thresh_expand] if metrics is None else metrics, wd=wd)


def _final_record(learn: Learner) -> dict[str, float | None]:
    rec = learn.recorder
    names = [n for n in rec.metric_names[1:] if n != "time"]
    vals = rec.values[-1] if rec.values else []
    out: dict[str, float | None] = {}
    for n, v in zip(names, vals, strict=False):
        try:
            out[n] = None if v is None or math.isnan(float(v)) else float(v)
        except (TypeError, ValueError):
            continue
    return out


def pretrain_critic(
    crit_learn: Learner, epochs: int = 3, lr: float = 1e-3, progress: bool = True
) -> dict[str, Any]:
    """Pretrain the critic with ``fit_one_cycle(epochs, lr)``; returns the last epoch's losses, accuracy."""
    import fastai.callback.schedule  # noqa: F401  (attaches fit_one_cycle)

    t0 = time.time()
    if progress:
        crit_learn.fit_one_cycle(epochs, lr)
    else:
        with crit_learn.no_bar(), crit_learn.no_logging():
            crit_learn.fit_one_cycle(epochs, lr)
    rec = _final_record(crit_learn)
    return {"epochs": epochs, "lr": lr, "seconds": round(time.time() - t0, 1), **rec,
            "accuracy": rec.get("accuracy_thresh_expand")}


# ----------------------------------------------------------------------------------------------
# step 3: scoring generators on held-out photos


@dataclass
class EvalSet:
    """Held-out photos as tensors: ``gray`` and ``color`` ``(N, 3, size, size)`` in [0, 1]."""

    gray: Tensor
    color: Tensor
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.paths)


def load_eval_set(source: Any, size: int = 64, n: int | None = None, seed: int = 42) -> EvalSet:
    """A seeded sample of ``n`` photos of ``source`` centre-cropped to ``size`` px (unreadable: skipped)."""
    color, paths = [], []
    for p in _sample(_files(source, "evaluation photos"), n, seed):
        try:
            color.append(_load_square(p, size))
            paths.append(p)
        except ImageLoadError as e:
            warnings.warn(f"load_eval_set: skipping {p}: {e.reason}", stacklevel=2)
    if not paths:
        raise ValueError(f"no readable evaluation photos in {source}")
    c = torch.stack(color)
    return EvalSet(to_gray(c), c, paths)


def evaluate_generator(model: nn.Module, eval_set: EvalSet, bs: int = 16) -> dict[str, float]:
    """Score a generator on ``eval_set`` -> ``{"psnr", "colorfulness", "colorfulness_target",
    "colorfulness_gap", "output_std", "saturated"}``.

    ``psnr`` is the mean per-image PSNR (dB); ``colorfulness_gap`` the corpus-level
    ``|mean CF(pred) - mean CF(target)|``; ``output_std`` the mean per-image standard deviation of the
    output; ``saturated`` the share of output pixels with a channel at 0 or 1 (after 8-bit rounding).
    """
    preds = torch.cat([_predict(model, eval_set.gray[k : k + bs]) for k in range(0, len(eval_set), bs)])
    targ = eval_set.color
    p, cf_p, cf_t = psnr(preds, targ).double(), colorfulness(preds).double(), colorfulness(targ).double()
    q = (preds * 255).round()
    sat = ((q <= 0) | (q >= 255)).any(dim=1).double().mean()
    out = {
        "psnr": p.mean().item(),
        "colorfulness": cf_p.mean().item(),
        "colorfulness_target": cf_t.mean().item(),
        "output_std": preds.flatten(1).std(dim=1).double().mean().item(),
        "saturated": sat.item(),
    }
    out["colorfulness_gap"] = abs(out["colorfulness"] - out["colorfulness_target"])
    return out


def nogan_score(
    metrics: Mapping[str, float], start: Mapping[str, float], max_psnr_drop: float = 0.5
) -> float:
    """The checkpoint score (higher is better): ``-colorfulness_gap``, or ``-inf`` when PSNR fell more
    than ``max_psnr_drop`` dB below the starting generator's (or a value is not finite).

    A checkpoint replaces the best one only with a strictly higher score, so the GAN phase is kept only
    when it shrinks the colourfulness gap while costing at most ``max_psnr_drop`` dB of PSNR.
    """
    gap, p, p0 = metrics.get("colorfulness_gap"), metrics.get("psnr"), start.get("psnr")
    if gap is None or p is None or p0 is None:
        raise KeyError(f"nogan_score needs 'colorfulness_gap' and 'psnr', got {sorted(metrics)}")
    if not (math.isfinite(gap) and not math.isnan(p)):
        return -math.inf
    if math.isfinite(p0) and p < p0 - max_psnr_drop:
        return -math.inf
    return -float(gap)


def check_divergence(
    metrics: Mapping[str, float],
    start: Mapping[str, float],
    min_std_ratio: float = 0.25,
    max_cf_ratio: float = 3.0,
    max_saturated: float = 0.5,
) -> str | None:
    """Why a checkpoint looks diverged, or None. Uses whichever keys of :func:`evaluate_generator` exist.

    Diverged: a non-finite metric (PSNR may be ``+inf``); outputs flat (``output_std`` below
    ``min_std_ratio`` x the start's); colourfulness above ``max_cf_ratio`` x max(start's, target's,
    1); or more than ``max(max_saturated, start + 0.25)`` of the pixels saturated.
    """
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and (math.isnan(v) or (math.isinf(v) and k != "psnr")):
            return f"non-finite {k} ({v})"
    std, std0 = metrics.get("output_std"), start.get("output_std")
    if std is not None and std0 is not None and std < min_std_ratio * std0:
        return f"flat outputs (std {std:.4f}, {std0:.4f} at the start)"
    cf = metrics.get("colorfulness")
    if cf is not None:
        ref = max(start.get("colorfulness", 0.0), metrics.get("colorfulness_target", 0.0), 1.0)
        if cf > max_cf_ratio * ref:
            return f"colourfulness exploded ({cf:.1f}, more than {max_cf_ratio:g} x {ref:.1f})"
    sat, sat0 = metrics.get("saturated"), start.get("saturated", 0.0)
    if sat is not None and sat > max(max_saturated, sat0 + 0.25):
        return f"saturated outputs ({sat:.0%} of the pixels at 0 or 1, {sat0:.0%} at the start)"
    return None


# ----------------------------------------------------------------------------------------------
# step 3: callbacks of the GAN phase


class CriticLRMult(Callback):
    """Multiply the learning rate by ``mult`` during critic steps (GAN training), restoring it after.

    Unlike fastai's ``GANDiscriminativeLR`` it remembers whether it multiplied, so the rate is put back
    exactly whichever callback switches modes first. Runs after ``ParamScheduler`` (order 60).
    """

    order = 65

    def __init__(self, mult: float = 5.0):
        self.mult, self._saved = float(mult), None

    def before_batch(self) -> None:
        if self.training and not self.learn.gan_trainer.gen_mode and self.mult != 1:
            self._saved = [h["lr"] for h in self.learn.opt.hypers]
            for h in self.learn.opt.hypers:
                h["lr"] = h["lr"] * self.mult

    def after_batch(self) -> None:
        self._restore()

    def after_cancel_batch(self) -> None:
        self._restore()

    def after_fit(self) -> None:  # a CancelFitException raised in after_batch skips our after_batch
        self._restore()

    def _restore(self) -> None:
        if self._saved is not None:
            for h, lr in zip(self.learn.opt.hypers, self._saved, strict=True):
                h["lr"] = lr
            self._saved = None


class _GANStepHygiene(Callback):
    """Make a GAN step touch only the model being trained.

    - fastai's ``TrainEvalCallback`` puts the whole GAN module in train mode at ``before_train``, after
      ``GANTrainer`` chose the modes: the model not being trained is put back in eval mode, so critic
      steps do not move the generator's BatchNorm statistics (and vice versa).
    - fastai's optimizer steps every parameter that has a ``.grad`` tensor (zeroed, not None, after the
      first step), so weight decay would shrink the frozen model on every step: its gradients are
      dropped before the step.
    """

    order = 0

    def before_train(self) -> None:
        tr = self.learn.gan_trainer
        if getattr(tr, "switch_eval", False):
            (tr.generator if tr.gen_mode else tr.critic).train()
            (tr.critic if tr.gen_mode else tr.generator).eval()

    def before_step(self) -> None:
        tr = self.learn.gan_trainer
        for p in (tr.critic if tr.gen_mode else tr.generator).parameters():
            p.grad = None


def _floats(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in m.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


class GANCheckpoint(Callback):
    """Score the generator every ``every`` GAN iterations, keep the best, stop on divergence or ``max_iter``.

    ``evaluate(generator) -> dict`` of metrics (called in eval mode under ``no_grad``);
    ``score(metrics, start_metrics) -> float``, higher is better; ``diverged(metrics, start_metrics)``
    -> reason or None. The starting generator is checkpoint 0; a checkpoint replaces the best only with a
    strictly higher score (``-inf``, recorded as ``None``, never does). A NaN/inf loss, or a diverged
    checkpoint, stops training. At the end the best checkpoint's weights are put back into the
    generator. With ``checkpoint_dir`` the best generator is saved there as a colorizer folder
    (``best/``), and ``gan_history.json`` lists every checkpoint.
    """

    order = 10  # after GANTrainer and the switchers (order 0), before Recorder (50)

    def __init__(
        self,
        evaluate: Callable[[nn.Module], Mapping[str, float]],
        score: Callable[[Mapping[str, float], Mapping[str, float]], float] = nogan_score,
        every: int = 100,
        max_iter: int | None = None,
        diverged: Callable[[Mapping[str, float], Mapping[str, float]], str | None] | None = check_divergence,
        checkpoint_dir: str | Path | None = None,
        skip_validation: bool = True,
    ):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.evaluate, self.score, self.every, self.max_iter = evaluate, score, int(every), max_iter
        self.diverged, self.skip_validation = diverged, skip_validation
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._best_score = -math.inf
        self.best_state: dict[str, Tensor] | None = None
        self.divergence: str | None = None
        self.diverged_at: int | None = None
        self.restored = False
        self.iteration = self.gen_steps = self.crit_steps = 0

    # -- events ----------------------------------------------------------------------------------
    def before_fit(self) -> None:
        self.gen = self.learn.model.generator
        self.iteration = self.gen_steps = self.crit_steps = 0
        self.history, self.best, self.best_state, self._best_score = [], None, None, -math.inf
        self.divergence = self.diverged_at = None
        self.restored = False
        self._gen_step = False
        self.checkpoint()

    def before_batch(self) -> None:
        if self.training:
            self._gen_step = bool(self.learn.gan_trainer.gen_mode)

    def after_batch(self) -> None:
        if not self.training:
            return
        self.iteration += 1
        if self._gen_step:
            self.gen_steps += 1
        else:
            self.crit_steps += 1
        loss = float(self.learn.loss.detach())
        if not math.isfinite(loss):
            who = "generator" if self._gen_step else "critic"
            self._stop(f"the {who} loss is {loss} at iteration {self.iteration}")
        if self.iteration % self.every == 0:
            self.checkpoint()
            if self.divergence is not None:
                raise CancelFitException()
        if self.max_iter is not None and self.iteration >= self.max_iter:
            raise CancelFitException()

    def before_validate(self) -> None:
        if self.skip_validation:
            raise CancelValidException()

    def after_fit(self) -> None:
        if self.divergence is None and self.history and self.history[-1]["iter"] != self.iteration:
            self.checkpoint()
        self.restore_best()

    # -- work ------------------------------------------------------------------------------------
    def _stop(self, reason: str) -> None:
        self.divergence, self.diverged_at = reason, self.iteration
        raise CancelFitException()

    def checkpoint(self) -> dict[str, Any]:
        """Evaluate the generator now, record it, and keep its weights if it is the best so far."""
        gen = self.gen
        was = gen.training
        gen.eval()
        try:
            with torch.no_grad():
                metrics = _floats(self.evaluate(gen))
        finally:
            gen.train(was)
        start = self.history[0]["metrics"] if self.history else metrics
        reason = self.diverged(metrics, start) if (self.diverged is not None and self.history) else None
        s = -math.inf if reason else float(self.score(metrics, start))
        if math.isnan(s):
            s = -math.inf
        # score None: not eligible (diverged, or outside the score's limits); keeps the JSON strict
        entry = {"iter": self.iteration, "gen_steps": self.gen_steps, "crit_steps": self.crit_steps,
                 "metrics": metrics, "score": s if math.isfinite(s) else None, "diverged": reason}
        self.history.append(entry)
        if self.best is None or s > self._best_score:
            self.best, self._best_score = entry, s
            self.best_state = {k: v.detach().cpu().clone() for k, v in gen.state_dict().items()}
            if self.checkpoint_dir is not None and isinstance(gen, ColorizerNet) and hasattr(gen, "config"):
                save_colorizer(gen, self.checkpoint_dir / "best", half=False,
                               metrics={**metrics, "gan_iter": self.iteration})
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.checkpoint_dir / "gan_history.json",
                        {"history": self.history, "best_iter": self.best["iter"]})
        if reason is not None:
            self.divergence, self.diverged_at = reason, self.iteration
        return entry

    def restore_best(self) -> None:
        """Put the best checkpoint's weights back into the generator (idempotent)."""
        if self.best_state is not None and not self.restored:
            self.gen.load_state_dict(self.best_state)
            self.restored = True


def _smoothed(avg: Any) -> float | None:
    """The value of a fastai ``AvgSmoothLoss``, or None before its first batch."""
    if not getattr(avg, "count", 0):
        return None
    v = float(avg.value)
    return v if math.isfinite(v) else None


def _resolve_eval(gen_learn: Learner, eval_set: Any, size: int, n_eval: int | None, seed: int) -> EvalSet:
    if isinstance(eval_set, EvalSet):
        return eval_set
    if eval_set is None:
        items = [p for p in getattr(gen_learn.dls.valid_ds, "items", []) if isinstance(p, (str, Path))]
        if not items:
            raise ValueError("gan_finetune needs held-out photos: pass eval_set (a folder, files or an "
                             "EvalSet), or a learner whose validation set holds image paths")
        eval_set = items
    return load_eval_set(eval_set, size=size, n=n_eval, seed=seed)


def _image_size(dls: DataLoaders) -> int:
    """The side in px of a ``colorize_dls`` batch (from its info, else from one batch)."""
    size = getattr(dls, "colorize_info", {}).get("size")
    return int(size) if size else int(dls.one_batch()[0].shape[-1])


def gan_finetune(
    gen_learn: Learner,
    crit_learn: Learner,
    n_iter: int = 200,
    lr: float = 1e-5,
    *,
    every: int = 50,
    eval_set: Any = None,
    n_eval: int | None = 64,
    critic_weight: float = 1.0,
    feature_weight: float = 1.5,
    critic_thresh: float = 0.65,
    switcher: Callback | None = None,
    critic_lr_mult: float = 5.0,
    betas: tuple[float, float] = (0.0, 0.9),
    wd: float = 1e-3,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    score: Callable[[Mapping[str, float], Mapping[str, float]], float] | None = None,
    max_psnr_drop: float = 0.5,
    diverged: Callable[[Mapping[str, float], Mapping[str, float]], str | None] | None = check_divergence,
    checkpoint_dir: str | Path | None = None,
    seed: int | None = 42,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``gen_learn``'s generator against ``crit_learn``'s critic for ``n_iter`` iterations.

    Built with ``GANLearner.from_learners``: generator loss ``critic_weight * BCE(critic(fake), 1) +
    feature_weight * gen_learn.loss_func``; ``AdaptiveGANSwitcher(critic_thresh=...)`` (the critic
    trains until its loss is below ``critic_thresh``, then the generator takes one step) unless
    ``switcher`` is given; Adam with ``betas``; constant ``lr``, times ``critic_lr_mult`` on critic steps.
    An iteration is one batch (generator or critic step). Every ``every`` iterations the generator is
    scored with ``evaluate`` (default :func:`evaluate_generator` on ``eval_set``, by default the
    learner's validation photos, ``n_eval`` of them) and ``score`` (default :func:`nogan_score` with
    ``max_psnr_drop``); the starting generator is checkpoint 0, and the best checkpoint's weights are
    in ``gen_learn.model`` when this returns, also after an error or a divergence (which stops
    training and warns). Returns a JSON-ready report: ``iterations``, ``gen_steps``, ``crit_steps``,
    ``checkpoints``, ``best_iter``, ``start_metrics``, ``best_metrics``, ``improved``, ``diverged``,
    ``diverged_at``, ``seconds``.
    """
    gen = _generator(gen_learn)
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if evaluate is None:
        es = _resolve_eval(gen_learn, eval_set, _image_size(gen_learn.dls), n_eval, seed or 0)
        evaluate = partial(evaluate_generator, eval_set=es)
    if score is None:
        score = partial(nogan_score, max_psnr_drop=max_psnr_drop)
    ckpt = GANCheckpoint(evaluate, score, every=every, max_iter=n_iter, diverged=diverged,
                         checkpoint_dir=checkpoint_dir)
    if switcher is None:
        switcher = AdaptiveGANSwitcher(critic_thresh=critic_thresh)
    # fastai builds the optimizer from parameters that require grad: train the whole generator and critic
    flags = {id(p): p.requires_grad for m in (gen, crit_learn.model) for p in m.parameters()}
    for m in (gen, crit_learn.model):
        m.requires_grad_(True)
        for p in m.parameters():
            p.grad = None  # stale gradients from earlier training would be stepped (weight decay)
    gan = GANLearner.from_learners(
        gen_learn, crit_learn, switcher=switcher, weights_gen=(float(critic_weight), float(feature_weight)),
        opt_func=gan_opt_func(betas), wd=wd, show_img=False,
        cbs=[CriticLRMult(critic_lr_mult), _GANStepHygiene(), ckpt],
    )
    n_batches = max(1, len(gen_learn.dls.train))
    t0 = time.time()
    if seed is not None:
        set_seed(seed)
    try:
        with warnings.catch_warnings():
            # fastai's own GANTrainer sets attributes (generator, critic, gen_mode) that it then warns about
            warnings.filterwarnings("ignore", message="You are shadowing an attribute")
            if progress:
                gan.fit(math.ceil(n_iter / n_batches), lr)
            else:
                with gan.no_bar(), gan.no_logging():
                    gan.fit(math.ceil(n_iter / n_batches), lr)
    finally:
        ckpt.restore_best()  # never leave half-trained or NaN weights behind, whatever happened
        for m in (gen, crit_learn.model):
            for p in m.parameters():
                p.requires_grad_(flags.get(id(p), True))
        gen.train()
    best = ckpt.best or {}
    trainer = gan.gan_trainer
    report = {
        "iterations": ckpt.iteration,
        "gen_steps": ckpt.gen_steps,
        "crit_steps": ckpt.crit_steps,
        "n_iter": n_iter,
        "lr": lr,
        "every": every,
        "critic_weight": critic_weight,
        "feature_weight": feature_weight,
        "critic_thresh": critic_thresh,
        "critic_lr_mult": critic_lr_mult,
        "checkpoints": ckpt.history,
        "best_iter": best.get("iter"),
        "best_metrics": best.get("metrics"),
        "start_metrics": ckpt.history[0]["metrics"] if ckpt.history else None,
        "improved": bool(best) and best.get("iter", 0) != 0,
        "diverged": ckpt.divergence,
        "diverged_at": ckpt.diverged_at,
        "last_gen_loss": _smoothed(trainer.gen_loss),
        "last_crit_loss": _smoothed(trainer.crit_loss),
        "seconds": round(time.time() - t0, 1),
    }
    gen_learn.gan_report = report
    if ckpt.divergence is not None:
        warnings.warn(f"the GAN phase diverged at iteration {ckpt.diverged_at}: {ckpt.divergence}; "
                      f"kept checkpoint {report['best_iter']} "
                      f"({'the starting generator' if not report['improved'] else 'a GAN checkpoint'})",
                      stacklevel=2)
    elif not report["improved"]:
        warnings.warn(f"the GAN phase did not beat the starting generator in {ckpt.iteration} iterations "
                      "(see report['checkpoints']); kept the starting generator", stacklevel=2)
    return report


# ----------------------------------------------------------------------------------------------
# the whole sequence


def nogan(
    gen_learn: Learner,
    cache_dir: str | Path,
    source: Any = None,
    *,
    size: int | None = None,
    n_render: int | None = None,
    critic: str | nn.Module = "spectral",
    critic_kwargs: dict[str, Any] | None = None,
    critic_epochs: int = 3,
    critic_lr: float = 1e-3,
    critic_bs: int = 16,
    n_iter: int = 200,
    lr: float = 1e-5,
    every: int = 50,
    eval_set: Any = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 42,
    progress: bool = True,
    **gan_kwargs: Any,
) -> dict[str, Any]:
    """The NoGAN sequence on a pretrained generator: render, pretrain a critic, short GAN fine-tuning.

    ``source``: the training photos to render and show the critic (default: ``gen_learn``'s training
    items); ``size`` defaults to ``gen_learn``'s batch size in px. The critic (``critic`` by name with
    ``critic_kwargs``, or a module) is pretrained ``critic_epochs`` epochs at ``critic_lr``; then
    :func:`gan_finetune` runs ``n_iter`` iterations at ``lr`` with ``gan_kwargs``. ``gen_learn.model``
    holds the best generator afterwards. Returns ``{"render": ..., "critic": ..., **gan report}``.
    """
    t0 = time.time()
    size = int(size or _image_size(gen_learn.dls))
    if source is None:
        source = [p for p in getattr(gen_learn.dls.train_ds, "items", []) if isinstance(p, (str, Path))]
        if not source:
            raise ValueError("nogan needs source photos: pass source=, or a learner whose training items "
                             "are paths")
    print(f"NoGAN 1/3: rendering the generator's outputs to {cache_dir}")
    rendered = render_generated(gen_learn, source, cache_dir, size=size, n=n_render, seed=seed)
    print(f"  {rendered.rendered} rendered, {rendered.reused} reused from the cache")
    set_seed(seed)
    dls = critic_dls(None, rendered, size=size, bs=critic_bs, seed=seed, device=gen_learn.dls.device)
    crit = critic_learner(dls, critic, **(critic_kwargs or {}))
    print(f"NoGAN 2/3: pretraining the critic ({critic_epochs} epoch(s), lr {critic_lr})")
    crit_report = pretrain_critic(crit, epochs=critic_epochs, lr=critic_lr, progress=progress)
    crit_report["config"] = getattr(crit.model, "config", {})
    print(f"NoGAN 3/3: GAN fine-tuning ({n_iter} iterations, lr {lr}, checkpoint every {every})")
    gan_report = gan_finetune(gen_learn, crit, n_iter=n_iter, lr=lr, every=every, eval_set=eval_set,
                              checkpoint_dir=checkpoint_dir, seed=seed, progress=progress, **gan_kwargs)
    report = {"render": rendered.to_dict(), "critic": crit_report, **gan_report,
              "total_seconds": round(time.time() - t0, 1)}
    gen_learn.gan_report = report
    return report


def train_gan(
    model: str | Path,
    data: Any,
    out: str | Path,
    *,
    valid: str | Path | None = None,
    size: int = 64,
    bs: int = 8,
    max_items: int | None = None,
    loss_pretrained: bool = True,
    loss_func: nn.Module | None = None,
    cache_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 42,
    **nogan_kwargs: Any,
) -> dict[str, Any]:
    """NoGAN fine-tuning of the saved colorizer ``model`` on the photos in ``data``; the best goes to ``out``.

    The CLI's ``--gan`` calls this. The generator trains at ``size`` px (batch ``bs``) with the VGG16-bn
    feature loss (``loss_pretrained`` needs its ImageNet weights, see
    :class:`~colorkit.models.WeightsUnavailableError`; or pass ``loss_func``). Held-out photos for
    checkpoint scoring: ``valid`` when given, else a 10% split of ``data``. Renderings are cached in
    ``cache_dir`` (default ``out/gan_cache``, reused across runs), checkpoints in ``checkpoint_dir``
    (default ``out/gan_checkpoints``). ``out`` receives the best generator (the starting one if the GAN
    phase did not help) with the report in ``config.json`` ``training.gan`` and its metrics in
    ``metrics.json``. ``nogan_kwargs`` go to :func:`nogan`. Returns the report.
    """
    from .data import colorize_dls
    from .loss import vgg16_feature_loss

    out = Path(out)
    clr = load_colorizer(model)
    g = clr.config["generator"]
    set_seed(seed)
    dls = colorize_dls(data, size=size, bs=bs, valid_folder=valid, max_items=max_items, seed=seed)
    if loss_func is None:
        loss_func = vgg16_feature_loss(pretrained=loss_pretrained)
    learn = colorize_learner(dls, arch=g["arch"], mode=g["mode"], pretrained=False, loss_func=loss_func,
                             metrics=[], self_attention=g.get("self_attention", True),
                             blur=g.get("blur", True), spectral=g.get("spectral", True))
    learn.model.load_state_dict(clr.model.state_dict())
    start_hash = weights_hash(learn.model)
    report = nogan(learn, cache_dir if cache_dir is not None else out / "gan_cache",
                   checkpoint_dir=checkpoint_dir if checkpoint_dir is not None else out / "gan_checkpoints",
                   seed=seed, **nogan_kwargs)
    report["from_model"] = str(model)
    report["kept_start"] = weights_hash(learn.model) == start_hash
    training = {"gan": {k: v for k, v in report.items() if k != "checkpoints"},
                "gan_checkpoints": report["checkpoints"],
                "data": {"source": str(data), "valid": str(valid) if valid else None, "size": size, "bs": bs,
                         "max_items": max_items},
                "from_model": str(model), "from_model_training": clr.config.get("training"), "seed": seed}
    save_colorizer(learn, out, training=training, render_size=clr.render_size,
                   metrics=report.get("best_metrics"))
    return report

