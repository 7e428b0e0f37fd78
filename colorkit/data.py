"""Training data: (gray input, colour target) pairs made on the fly from any folder of colour photos.

``colorize_dls(folder)`` finds the photos (recursively), skips unreadable files (scanned once and
cached in-process), optionally drops near-gray photos from the training split, splits train/valid
with a seed, and returns fastai ``DataLoaders`` whose batches are ``(x, y)``:

- ``y``: the colour photo, a ``TensorImage`` ``(B, 3, H, W)`` in ``[0, 1]`` (not normalised);
- ``x``: a :class:`TensorGrayInput` ``(B, 3, H, W)`` in ``[0, 1]``: ``color.to_gray(y)``, or, with
  ``degrade=True`` on the training split, that gray made to look like an old photo.

Both blocks read the same file (decoded once, see :func:`open_photo`) and go through the same
item and batch augmentations; :class:`~colorkit.transforms.ToGray` turns ``x`` gray at the very end of the batch
pipeline, so ``x == to_gray(y)`` holds exactly even with random crops, flips and warps. Everything
the pipeline references is a module-level class or function, so ``Learner.export`` can pickle it.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from fastai.data.block import DataBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor, RandomSplitter
from fastai.vision.augment import RandomResizedCrop, aug_transforms
from fastai.vision.core import PILImage
from fasttransform import Transform
from PIL import Image, ImageOps
from torch import Tensor

from .color import rgb_to_lab
from .io import ImageLoadError, find_images, load_image
from .transforms import OldPhotoDegrade, PILGrayInput, TensorGrayInput, ToGray

__all__ = [
    "PILGrayInput",
    "TensorGrayInput",
    "open_photo",
    "OpenPhoto",
    "CenterCropResize",
    "center_crop",
    "ToGray",
    "OldPhotoDegrade",
    "photo_chroma",
    "ScanResult",
    "scan_images",
    "clear_scan_cache",
    "get_photo_files",
    "colorize_block",
    "colorize_dls",
    "find_photos",
    "PhotoSplit",
    "sample_files",
    "select_photos",
]

_JPEG_EXTS = {".jpg", ".jpeg"}
_CHROMA_SIDE = 64  # photo_chroma measures a thumbnail whose longest side is at most this
_SCAN_DRAFT = _CHROMA_SIDE // 2  # the scan decodes JPEGs at the smallest scale (1/8) down to this size
_MAX_NAMES = 10  # names listed in a warning before "and N more"


# ----------------------------------------------------------------------------------------------
# decoding


def _open_jpeg_draft(path: Path, min_side: int) -> Image.Image | None:
    """Decode a JPEG at a reduced scale (both sides >= ``min_side`` before EXIF rotation).

    Returns None when the fast path does not apply (unusual mode, huge file, any decode problem):
    the caller then goes through ``io.load_image``, which reads it fully or names the problem.
    """
    try:
        with Image.open(path) as src:
            if src.format != "JPEG" or src.mode not in ("RGB", "L") or src.width * src.height > 50_000_000:
                return None
            src.draft("RGB", (min_side, min_side))
            src.load()
            img = ImageOps.exif_transpose(src)
            img = img.convert("RGB") if img.mode != "RGB" else (img.copy() if img is src else img)
            img.load()
            return img
    except Exception:  # any failure falls back to io.load_image, which reports it
        return None


def open_photo(path: str | os.PathLike, min_side: int | None = None) -> Image.Image:
    """Read ``path`` as an RGB PIL image, EXIF orientation applied.

    With ``min_side``, JPEGs are decoded at a reduced scale (Pillow's ``draft``: 1/2, 1/4 or 1/8)
    as long as both sides stay >= ``min_side``, which is several times faster for small training
    sizes. Other files, and JPEGs the fast path cannot handle, go through ``io.load_image``.
    Raises ``io.ImageLoadError`` naming the file for anything unreadable.
    """
    path = Path(path)
    if min_side is not None and path.suffix.lower() in _JPEG_EXTS:
        img = _open_jpeg_draft(path, int(min_side))
        if img is not None:
            return img
    return load_image(path)


# One decoded image per process: the input and target blocks read the same file one after the
# other, so the second read is a copy instead of a second decode.
_LAST_DECODED: dict[tuple[str, int | None], Image.Image] = {}


def _open_photo_shared(path: Path, min_side: int | None) -> Image.Image:
    key = (str(path), min_side)
    img = _LAST_DECODED.get(key)
    if img is None:
        img = open_photo(path, min_side)
        _LAST_DECODED.clear()
        _LAST_DECODED[key] = img
    return img.copy()  # fastai re-classes PIL images in place: never hand out the cached object


class OpenPhoto(Transform):
    """Type transform: image ``Path`` -> ``out_type`` (``PILImage`` or :class:`PILGrayInput`).

    ``min_side`` (usually twice the training size) lets JPEGs decode at a reduced scale.
    """

    def __init__(self, min_side: int | None = None, out_type: type = PILImage) -> None:
        super().__init__()
        self.min_side, self.out_type = min_side, out_type

    def encodes(self, o: Path | str) -> Image.Image:
        return self.out_type(_open_photo_shared(Path(o), self.min_side))


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """The centre square of ``img`` resized (bilinear) to ``size`` x ``size``: the validation crop of training."""
    return ImageOps.fit(img, (int(size), int(size)), method=Image.Resampling.BILINEAR)


class CenterCropResize(Transform):
    """Deterministic item transform: centre square crop of a PIL image, resized to ``size``."""

    order = 1

    def __init__(self, size: int, split_idx: int | None = None) -> None:
        super().__init__(split_idx=split_idx)
        self.size = int(size)

    def encodes(self, x: Image.Image) -> Image.Image:
        out = center_crop(x, self.size)
        out.__class__ = type(x)  # keep fastai's PILImage / PILGrayInput type so ToTensor applies
        return out


# ----------------------------------------------------------------------------------------------
# chroma and the bad-file scan


def _thumb_tensor(img: Image.Image) -> Tensor:
    """RGB PIL image -> ``(3, h, w)`` float in [0, 1], longest side at most ``_CHROMA_SIDE``."""
    if max(img.size) > _CHROMA_SIDE:
        img = img.copy()
        img.thumbnail((_CHROMA_SIDE, _CHROMA_SIDE), Image.Resampling.BILINEAR)
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)


def _mean_chroma(rgb: Tensor) -> float:
    lab = rgb_to_lab(rgb.float())
    return float(lab[..., 1:, :, :].pow(2).sum(-3).sqrt().mean())


def photo_chroma(img_or_path: str | os.PathLike | Image.Image | Tensor) -> float:
    """Mean Lab chroma ``sqrt(a^2 + b^2)`` of a small thumbnail (longest side <= 64 px).

    Accepts a path, a PIL image or a tensor ``(3, H, W)`` in [0, 1]. About 0 for gray photos,
    2-5 for sepia or nearly gray ones, 10-30 for typical colour photos.
    """
    if isinstance(img_or_path, Tensor):
        t = img_or_path.detach().as_subclass(Tensor).float().cpu()
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"photo_chroma expects a tensor (3, H, W), got {tuple(t.shape)}")
        side = max(t.shape[-2:])
        if side > _CHROMA_SIDE:
            hw = tuple(max(1, round(s * _CHROMA_SIDE / side)) for s in t.shape[-2:])
            t = F.interpolate(t[None], size=hw, mode="area")[0]
        return _mean_chroma(t.clamp(0, 1))
    if isinstance(img_or_path, Image.Image):
        return _mean_chroma(_thumb_tensor(img_or_path))
    if isinstance(img_or_path, (str, os.PathLike)):
        return _mean_chroma(_thumb_tensor(open_photo(img_or_path, _SCAN_DRAFT)))
    raise TypeError(f"photo_chroma expects a path, PIL image or tensor, got {type(img_or_path).__name__}")


@dataclass(frozen=True)
class _Probe:
    ok: bool
    reason: str = ""
    chroma: float = float("nan")


# (absolute path, size in bytes, mtime in ns) -> probe result, for the life of the process
_SCAN_CACHE: dict[tuple[str, int, int], _Probe] = {}


def _probe_file(path: Path) -> _Probe | Tensor:
    """Decode ``path`` (JPEGs at 1/8 scale, which still reads every byte): its thumbnail
    ``(3, h, w)`` or a failed :class:`_Probe` with the reason."""
    try:
        return _thumb_tensor(open_photo(path, _SCAN_DRAFT))
    except ImageLoadError as e:
        return _Probe(False, e.reason)
    except Exception as e:  # the scan never crashes: it reports the file
        return _Probe(False, f"{type(e).__name__}: {e}")


def _chroma_many(thumbs: list[Tensor], chunk: int = 256) -> list[float]:
    """:func:`photo_chroma` of many thumbnails at once: their pixels go through Lab as one row."""
    out: list[float] = []
    for i in range(0, len(thumbs), chunk):
        part = [t.reshape(3, 1, -1) for t in thumbs[i : i + chunk]]
        lab = rgb_to_lab(torch.cat(part, dim=-1))
        c = lab[1:].pow(2).sum(0).sqrt().flatten()
        out.extend(float(v.mean()) for v in c.split([t.shape[-1] for t in part]))
    return out


@dataclass
class ScanResult:
    """What :func:`scan_images` found: readable files (input order), skipped ``(path, reason)``,
    the mean chroma of each readable file, how many files were decoded (not from the cache) and
    the seconds it took."""

    good: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    chroma: dict[Path, float] = field(default_factory=dict)
    n_decoded: int = 0
    seconds: float = 0.0


def _cache_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def scan_images(paths: Sequence[str | os.PathLike], num_threads: int | None = None) -> ScanResult:
    """Check that every file in ``paths`` decodes, once per (path, size, mtime) per process.

    Truncated and corrupt files are caught (JPEGs are decoded at 1/2 to 1/8 scale, which still
    reads every byte). Results are cached in-process, so a second call (e.g. rebuilding the
    loaders at another size) decodes nothing. Never raises for a bad file; see ``skipped``.
    """
    t0 = time.perf_counter()
    res = ScanResult()
    keys: dict[Path, tuple[str, int, int]] = {}
    todo: list[Path] = []
    for p in map(Path, paths):
        try:
            keys[p] = _cache_key(p)
        except OSError as e:
            res.skipped.append((p, f"cannot stat file ({e.strerror or e})"))
            continue
        if keys[p] not in _SCAN_CACHE:
            todo.append(p)
    if todo:
        n = num_threads if num_threads is not None else min(4, 2 * (os.cpu_count() or 1))
        if n > 1 and len(todo) > 8:
            with ThreadPoolExecutor(max_workers=n) as pool:  # Pillow decodes without the GIL
                probes = list(pool.map(_probe_file, todo))
        else:
            probes = [_probe_file(p) for p in todo]
        ok = [i for i, pr in enumerate(probes) if isinstance(pr, Tensor)]
        for i, c in zip(ok, _chroma_many([probes[i] for i in ok]), strict=True):
            probes[i] = _Probe(True, "", c)
        for p, pr in zip(todo, probes, strict=True):
            _SCAN_CACHE[keys[p]] = pr
        res.n_decoded = len(todo)
    for p in map(Path, paths):
        if p not in keys:
            continue
        pr = _SCAN_CACHE[keys[p]]
        if pr.ok:
            res.good.append(p)
            res.chroma[p] = pr.chroma
        else:
            res.skipped.append((p, pr.reason))
    res.seconds = time.perf_counter() - t0
    return res


def clear_scan_cache() -> None:
    """Forget every scan result (the next :func:`scan_images` decodes again)."""
    _SCAN_CACHE.clear()
    _LAST_DECODED.clear()


def _name_list(paths: Sequence[Path]) -> str:
    names = ", ".join(p.name for p in paths[:_MAX_NAMES])
    return names + (f" and {len(paths) - _MAX_NAMES} more" if len(paths) > _MAX_NAMES else "")


def _warn_skipped(skipped: Sequence[tuple[Path, str]], where: Any, stacklevel: int = 3) -> None:
    if skipped:
        warnings.warn(
            f"colorkit: skipped {len(skipped)} unreadable image file(s) in {where}: "
            f"{_name_list([p for p, _ in skipped])} (reasons in dls.colorize_info['skipped'])",
            UserWarning,
            stacklevel=stacklevel,
        )


def get_photo_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The readable images under ``source`` (folders searched recursively), sorted.

    Unreadable files are left out with one ``UserWarning`` naming them. A ``get_items`` for
    :func:`colorize_block`.
    """
    scan = scan_images(find_images(source, recursive=True))
    _warn_skipped(scan.skipped, source)
    return scan.good


# ----------------------------------------------------------------------------------------------
# the DataBlock


def colorize_block(
    size: int = 64,
    augment: bool = True,
    degrade: bool | OldPhotoDegrade = False,
    min_scale: float = 0.35,
    max_rotate: float = 5.0,
    max_warp: float = 0.1,
    get_items: Any = get_photo_files,
    splitter: Any = None,
    item_tfms: Sequence[Transform] | None = None,
    batch_tfms: Sequence[Transform] | None = None,
) -> DataBlock:
    """A fastai ``DataBlock`` of (gray input, colour target) from image paths, square ``size`` px.

    Items are image ``Path``s (``get_items`` turns the source into them: by default
    :func:`get_photo_files`, which skips unreadable files). Both blocks open the same file.
    Training: random resized crop (area ``min_scale``..1, aspect 3/4..4/3), horizontal flip, a
    light rotation (``max_rotate`` degrees) and warp; no colour or lighting change. Validation
    (and training with ``augment=False``): centre square crop resized to ``size``. ``x`` becomes
    ``to_gray(y)`` after all augmentations; ``degrade=True`` (or an :class:`OldPhotoDegrade`) then
    degrades the training inputs. ``splitter`` defaults to a 10% random split with seed 42.
    """
    size = int(size)
    if size < 2:
        raise ValueError(f"size must be >= 2 pixels, got {size}")
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    draft = 2 * size
    blocks = (
        TransformBlock(type_tfms=OpenPhoto(draft, PILGrayInput), batch_tfms=IntToFloatTensor()),
        TransformBlock(type_tfms=OpenPhoto(draft, PILImage), batch_tfms=IntToFloatTensor()),
    )
    if augment:
        crop = RandomResizedCrop(size, min_scale=min_scale, ratio=(3 / 4, 4 / 3))
        crop.split_idx = 0
        items = [crop, CenterCropResize(size, split_idx=1)]
        geo = aug_transforms(
            do_flip=True,
            max_rotate=max_rotate,
            max_zoom=1.0,
            max_warp=max_warp,
            max_lighting=0.0,
            p_affine=0.75,
            pad_mode="reflection",
        )
    else:
        items, geo = [CenterCropResize(size)], []
    batch = [*geo, ToGray()]
    if degrade is True:
        batch.append(OldPhotoDegrade())
    elif isinstance(degrade, OldPhotoDegrade):
        batch.append(degrade)
    elif degrade is not False:
        raise TypeError(f"degrade must be a bool or an OldPhotoDegrade, got {type(degrade).__name__}")
    return DataBlock(
        blocks=blocks,
        n_inp=1,
        get_items=get_items,
        splitter=splitter if splitter is not None else RandomSplitter(valid_pct=0.1, seed=42),
        item_tfms=[*items, *(item_tfms or [])],
        batch_tfms=[*batch, *(batch_tfms or [])],
    )


class _FixedSplitter:
    """Splitter for items laid out as ``n_train`` training then ``n_valid`` validation paths."""

    def __init__(self, n_train: int, n_valid: int) -> None:
        self.n_train, self.n_valid = n_train, n_valid

    def __call__(self, items: Sequence[Any]) -> tuple[list[int], list[int]]:
        if len(items) != self.n_train + self.n_valid:
            raise ValueError(f"expected {self.n_train + self.n_valid} items, got {len(items)}")
        return list(range(self.n_train)), list(range(self.n_train, self.n_train + self.n_valid))


def sample_files(files: Sequence[Path], n: int | None, seed: int = 42) -> list[Path]:
    """A seeded sample of ``n`` of ``files`` (all of them when ``n`` is None or not smaller), in input order.

    The one subsampler of colorkit (training data, ``--max-items``, the NoGAN renders and scoring photos):
    the same files for the same seed, and a larger ``n`` keeps the smaller sample's files and adds more.
    """
    if n is None or n >= len(files):
        return list(files)
    if n < 1:
        raise ValueError(f"the sample size must be >= 1, got {n}")
    idx = np.random.default_rng([seed, 0]).permutation(len(files))[:n]
    return [files[i] for i in sorted(idx.tolist())]


def find_photos(source: Any, what: str = "photos") -> list[Path]:
    """The image files under ``source`` (folders searched recursively), sorted; ValueError naming ``what``
    when there are none."""
    files = find_images(source, recursive=True)
    if not files:
        raise ValueError(f"no image files ({what}) found in {source}")
    return files


@dataclass
class PhotoSplit:
    """The photos :func:`colorize_dls` trains and validates on, and why the others were left out."""

    train: list[Path]
    valid: list[Path]
    skipped: list[tuple[Path, str]]
    dropped_gray: list[Path]
    source: Any
    valid_folder: Any
    seed: int
    scan_seconds: float

    def batch_size(self, bs: int) -> int:
        """``bs``, or the number of training photos (with a warning) when there are fewer; ValueError below 1."""
        if bs < 1:
            raise ValueError(f"bs must be >= 1, got {bs}")
        if bs > len(self.train):
            warnings.warn(f"colorkit: bs={bs} is more than the {len(self.train)} training photos; "
                          f"using bs={len(self.train)}", UserWarning, stacklevel=3)
            return len(self.train)
        return bs

    def info(self, size: int) -> dict[str, Any]:
        """The ``dls.colorize_info`` dictionary."""
        return {"n_train": len(self.train), "n_valid": len(self.valid), "skipped": list(self.skipped),
                "dropped_gray": self.dropped_gray, "size": int(size), "source": self.source,
                "valid_folder": self.valid_folder, "seed": self.seed, "scan_seconds": self.scan_seconds}


def select_photos(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    valid_pct: float = 0.1,
    valid_folder: str | os.PathLike | None = None,
    seed: int = 42,
    min_chroma: float | None = None,
    max_items: int | None = None,
    stacklevel: int = 2,
) -> PhotoSplit:
    """Find, scan, sample and split the photos for :func:`colorize_dls` (see there for the arguments)."""
    if not 0 <= valid_pct < 1:
        raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}")
    files = sample_files(find_photos(source, "source"), max_items, seed)
    valid_src = [] if valid_folder is None else sample_files(find_photos(valid_folder, "valid_folder"), max_items, seed)
    # scan first, split after: unreadable files must not empty the validation split
    scan = scan_images([*files, *valid_src])
    _warn_skipped(scan.skipped, source)
    ok = set(scan.good)
    files = [f for f in files if f in ok]
    if valid_folder is not None:
        train_files = files
        valid_files = [f for f in valid_src if f in ok]
    else:
        n_valid = 0 if valid_pct == 0 or len(files) < 2 else max(1, round(len(files) * valid_pct))
        perm = np.random.default_rng([seed, 1]).permutation(len(files))
        in_valid = set(perm[:n_valid].tolist())
        train_files = [f for i, f in enumerate(files) if i not in in_valid]
        valid_files = [f for i, f in enumerate(files) if i in in_valid]

    dropped: list[Path] = []
    if min_chroma is not None:
        dropped = [f for f in train_files if scan.chroma[f] < min_chroma]
        train_files = [f for f in train_files if scan.chroma[f] >= min_chroma]
        if dropped:
            warnings.warn(
                f"colorkit: dropped {len(dropped)} near-gray photo(s) (mean chroma < {min_chroma}) from the "
                f"training split: {_name_list(dropped)}",
                UserWarning,
                stacklevel=stacklevel,
            )
    if not train_files:
        raise ValueError(
            f"no usable training photos in {source}: {len(scan.skipped)} unreadable, "
            f"{len(dropped)} near-gray dropped, {len(valid_files)} in validation"
        )
    return PhotoSplit(train_files, valid_files, list(scan.skipped), dropped, source, valid_folder, seed,
                      scan.seconds)


def colorize_dls(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    size: int = 64,
    bs: int = 16,
    valid_pct: float = 0.1,
    valid_folder: str | os.PathLike | None = None,
    seed: int = 42,
    min_chroma: float | None = None,
    augment: bool = True,
    degrade: bool | OldPhotoDegrade = False,
    num_workers: int | None = None,
    device: Any = None,
    max_items: int | None = None,
    in_memory: bool = False,
    **kwargs: Any,
) -> DataLoaders:
    """``DataLoaders`` of (gray input, colour target) batches ``(B, 3, size, size)`` in [0, 1].

    ``source``: a folder (searched recursively) or a list of files/folders of colour photos.
    Validation is ``valid_folder`` when given (``valid_pct`` is then ignored), else a ``valid_pct``
    share of the files chosen with ``seed``: the same files for the same seed and file list,
    whatever ``size``. ``max_items`` keeps a seeded sample of that many files (of the source, and
    of ``valid_folder``) for quick runs. Unreadable files are skipped with one warning; the scan is
    cached, so rebuilding at another size is cheap. ``min_chroma`` drops near-gray photos (mean
    chroma of a thumbnail below it, see :func:`photo_chroma`) from the training split only.
    ``degrade`` adds :class:`OldPhotoDegrade` to the training inputs. Other keywords go to
    ``DataBlock.dataloaders`` (e.g. ``shuffle``, ``pin_memory``). ``in_memory=True`` decodes every photo
    once into memory and augments with crops and flips only (:func:`colorkit.memory.memory_dls`): several
    times faster at small sizes, where decoding dominates.

    The result has ``dls.colorize_info``: ``n_train``, ``n_valid``, ``skipped`` (list of
    ``(path, reason)``), ``dropped_gray`` (paths), ``size``, ``source``, ``valid_folder``,
    ``seed``, ``scan_seconds``.
    """
    if in_memory:
        from .memory import memory_dls

        if degrade is not False:
            raise ValueError("in_memory=True does not support degrade (use the DataBlock pipeline for old-photo "
                             "inputs)")
        return memory_dls(source, size=size, bs=bs, valid_pct=valid_pct, valid_folder=valid_folder, seed=seed,
                          min_chroma=min_chroma, augment=augment, device=device, max_items=max_items, **kwargs)
    split = select_photos(source, valid_pct, valid_folder, seed, min_chroma, max_items, stacklevel=3)
    train_files, valid_files, bs = split.train, split.valid, split.batch_size(bs)

    block = colorize_block(
        size=size,
        augment=augment,
        degrade=degrade,
        get_items=None,
        splitter=_FixedSplitter(len(train_files), len(valid_files)),
    )
    dls = block.dataloaders(
        [*train_files, *valid_files],
        bs=bs,
        num_workers=0 if num_workers is None else num_workers,
        device=device,
        **kwargs,
    )
    dls.colorize_info = split.info(size)
    return dls
