"""Robust image reading and writing: EXIF orientation, every common mode, atomic saves.

Every file colorkit reads goes through :func:`read_image` / :func:`load_image`, which return a fully
decoded 8-bit RGB PIL image or raise :class:`ImageLoadError` naming the file and the reason. Every
file colorkit writes goes through :func:`save_image`, which writes atomically and never onto its
source. :func:`find_images` turns files, folders and glob patterns into a sorted list of images,
and :func:`as_pil` turns paths, PIL images, numpy arrays and torch tensors into RGB PIL images.

Decompression bombs: images with more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`) are
refused from their header, before any pixel is decoded. At import this module raises Pillow's own
global ``Image.MAX_IMAGE_PIXELS`` to at least :data:`MAX_PIXELS` (never lowers it, leaves ``None``
alone) so Pillow's warning does not fire below our limit; Pillow's ``DecompressionBombWarning`` /
``DecompressionBombError`` raised while opening are reported as :class:`ImageLoadError` (the
warning is turned into an error with ``warnings.catch_warnings``, which is process-wide: read from
DataLoader worker processes, not from many threads, if exact warning filters matter to you).
Truncated files are errors unless someone sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``; this module
never does.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "ImageMeta",
    "read_image",
    "load_image",
    "as_pil",
    "save_image",
    "atomic_write",
    "write_text_atomic",
    "write_json_atomic",
    "remove_stale_temps",
    "find_images",
    "is_glob",
    "glob_base",
]

MAX_PIXELS: int = 200_000_000
"""Largest image (width * height, in pixels) :func:`read_image` accepts by default."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
"""Lower-case file extensions (with the dot) that :func:`find_images` treats as images."""

# Raise (never lower) Pillow's own bomb limit so its warning does not fire below ours.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_EXIF_ORIENTATION = 0x0112
_EXIF_SUB_IFDS = (0x8769, 0x8825)  # Exif IFD, GPS IFD
# Descriptive IFD0 tags worth carrying over from a TIFF's tag directory.
_TIFF_EXIF_TAGS = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_TEMP_MARK = ".tmp-"
_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}
# Modes each format can store as they are; anything else is converted to RGB first.
_SAVE_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"},
    "BMP": {"1", "L", "P", "RGB"},
    "WEBP": {"RGB", "RGBA"},
}
_METADATA_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP"}
_JPEG_MAX_EXIF = 65533  # one APP1 segment
# Errors Pillow (and the codecs under it) raise for unreadable data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class ImageLoadError(ValueError):
    """An image file could not be read; ``str()`` is ``"{path}: {reason}"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.reason))


@dataclass
class ImageMeta:
    """What :func:`read_image` keeps from the file besides the pixels.

    ``mode`` is the original PIL mode, ``size`` is ``(width, height)`` after EXIF orientation was
    applied, ``exif`` is the EXIF block with its Orientation tag reset to 1 (or ``None``).
    """

    format: str | None
    mode: str
    size: tuple[int, int]
    exif: bytes | None
    icc_profile: bytes | None


# ----------------------------------------------------------------------------------------------
# mode conversion


def _composite_on_white(img: Image.Image) -> Image.Image:
    """RGBA-able image -> RGB composited over an opaque white background."""
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map a single-channel array of any numeric range onto ``uint8``, scaling rather than clipping.

    Unsigned 16-bit data is divided by 257, so 0..65535 maps exactly onto 0..255. Other arrays are
    judged by their finite range: floats within ``[0, 1]`` are multiplied by 255; values within
    ``[0, 255]`` are kept; values within ``[0, 65535]`` (16-bit data stored as 32-bit ``I``) are
    divided by 257; anything else (negative, larger) is stretched from its min..max onto 0..255.
    NaN becomes 0, +inf 255 and -inf 0.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "b":
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        return np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    a = arr.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.where(np.isposinf(a), 255, 0).astype(np.uint8)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    if arr.dtype.kind == "f" and lo >= 0 and hi <= 1:
        scaled = a * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = a
    elif lo >= 0 and hi <= 65535:
        scaled = a / 257.0
    elif hi > lo:
        scaled = (a - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(a)
    scaled = np.where(finite, scaled, np.where(np.isposinf(a), 255.0, 0.0))
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB: the conversion rules of :func:`read_image` and :func:`as_pil`.

    - transparency (alpha band, ``RGBa``/``La``/``PA``, or a ``transparency`` key in ``img.info``,
      as in P or L PNGs) is composited on white;
    - 16-bit, 32-bit integer and float gray (``I;16*``, ``I``, ``F``) go through
      ``_scale_to_uint8``; 48-bit RGB TIFFs are already reduced to 8 bits by Pillow;
    - 1, L, P, CMYK, YCbCr, HSV, RGBX use Pillow's conversion; LAB goes through ImageCms.

    An RGB image without transparency is returned unchanged (the same object). Modes Pillow cannot
    convert raise ValueError.
    """
    mode = img.mode
    if mode in {"I", "F"} or mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img)), "L").convert("RGB")
    has_alpha = mode in {"RGBA", "RGBa", "LA", "La", "PA"} or "transparency" in img.info
    if mode == "RGB" and not has_alpha:
        return img
    if mode in {"RGBa", "La"}:  # premultiplied alpha: un-premultiply first
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
    if has_alpha:
        return _composite_on_white(img)
    if mode == "LAB":
        from PIL import ImageCms  # only needed for the rare Lab TIFF

        return ImageCms.profileToProfile(
            img, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    return img.convert("RGB")


# ----------------------------------------------------------------------------------------------
# reading


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageLoadError(path, "file not found")
    if path.is_dir():
        raise ImageLoadError(path, "is a directory, not an image file")
    if not path.is_file():
        raise ImageLoadError(path, "not a regular file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageLoadError(path, f"cannot stat file ({e})") from e
    if size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")


def _exif_bytes(img: Image.Image) -> bytes | None:
    """The image's EXIF block with Orientation reset to 1, or None when it has none.

    Works on a copy: the image's own (cached) EXIF is left alone so ``exif_transpose`` still sees
    the orientation. For TIFF, whose "EXIF" is the whole tag directory, only descriptive tags and
    the EXIF / GPS sub-directories are kept (strip offsets and the like would be wrong elsewhere).
    """
    try:
        exif = img.getexif()
        if not exif:
            return None
        clean = Image.Exif()
        if img.format == "TIFF":
            for tag in _TIFF_EXIF_TAGS:
                if tag in exif:
                    clean[tag] = exif[tag]
            for ifd in _EXIF_SUB_IFDS:
                sub = exif.get_ifd(ifd)
                if sub:
                    clean[ifd] = dict(sub)
        else:
            clean.load(exif.tobytes())
        if not clean:
            return None
        if _EXIF_ORIENTATION in clean:
            clean[_EXIF_ORIENTATION] = 1
        return clean.tobytes()
    except Exception:  # malformed EXIF must not reject a readable image
        return None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, ImageMeta]:
    """Read ``path`` into a fully decoded 8-bit RGB PIL image plus its :class:`ImageMeta`.

    EXIF orientation is applied, transparency is composited on white, CMYK is converted, 16-bit and
    float gray are rescaled (see ``_scale_to_uint8``). Images with more than ``max_pixels`` pixels
    are refused from their header. Any failure raises :class:`ImageLoadError`; no file handle is
    left open.
    """
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            limit = Image.MAX_IMAGE_PIXELS
            action = "ignore" if limit is not None and max_pixels > limit else "error"
            warnings.simplefilter(action, Image.DecompressionBombWarning)
            with Image.open(path) as src:
                w, h = src.size
                if w <= 0 or h <= 0:
                    raise ImageLoadError(path, f"invalid image size {w}x{h}")
                if w * h > max_pixels:  # from the header, before any pixel is decoded
                    raise ImageLoadError(
                        path, f"too many pixels ({w}x{h} = {w * h:,} > max_pixels={max_pixels:,})"
                    )
                src.load()
                fmt, mode = src.format, src.mode
                icc = src.info.get("icc_profile") or None
                exif = _exif_bytes(src)
                try:
                    img = ImageOps.exif_transpose(src)
                except Exception:  # malformed orientation data: keep the pixels as stored
                    img = src
                try:
                    rgb = _to_rgb(img)
                except ValueError as e:
                    raise ImageLoadError(path, f"unsupported image mode {img.mode!r} ({e})") from e
                if rgb is src:
                    rgb = src.copy()
                rgb.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(path, f"too many pixels, refused as a decompression bomb ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(path, "not an image, or a format Pillow cannot read") from e
    except FileNotFoundError as e:  # removed between the checks and the open
        raise ImageLoadError(path, "file not found") from e
    except PermissionError as e:
        raise ImageLoadError(path, f"permission denied ({e.strerror or e})") from e
    except MemoryError as e:
        raise ImageLoadError(path, "out of memory while decoding") from e
    except _DECODE_ERRORS as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            raise ImageLoadError(path, f"truncated or corrupt image data ({msg})") from e
        raise ImageLoadError(path, f"corrupt or unreadable image data ({type(e).__name__}: {msg})") from e
    meta = ImageMeta(format=fmt, mode=mode, size=rgb.size, exif=exif, icc_profile=icc)
    return rgb, meta


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read ``path`` as a fully decoded 8-bit RGB PIL image (see :func:`read_image`)."""
    return read_image(path, max_pixels=max_pixels)[0]


# ----------------------------------------------------------------------------------------------
# in-memory conversion


def _array_to_pil(arr: np.ndarray, what: str) -> Image.Image:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> RGB PIL image."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(
            f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} is empty: shape {tuple(arr.shape)}")
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        u8 = arr
    elif arr.dtype == np.uint16:
        u8 = np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    elif kind == "b":
        u8 = arr.astype(np.uint8) * 255
    elif kind == "f":
        a = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        u8 = np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise TypeError(f"{what} has dtype {arr.dtype}; expected uint8, uint16, bool or float in [0, 1]")
    u8 = np.ascontiguousarray(u8)
    if u8.ndim == 2:
        return Image.fromarray(u8, "L").convert("RGB")
    if u8.shape[-1] == 4:
        return _composite_on_white(Image.fromarray(u8, "RGBA"))
    return Image.fromarray(u8, "RGB")


def as_pil(obj: Any) -> Image.Image:
    """Turn a path, PIL image, numpy array or torch tensor into an 8-bit RGB PIL image.

    - ``str`` / ``Path``: :func:`load_image`.
    - PIL image, any mode: converted like :func:`read_image` does (an RGB image is returned as is).
    - numpy array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``: uint8, uint16 or float
      in ``[0, 1]`` (clipped); alpha is composited on white.
    - torch tensor ``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` (also ``(4, H, W)``): float in
      ``[0, 1]`` or uint8.

    Raises TypeError for other types and ValueError for other shapes.
    """
    if isinstance(obj, (str, os.PathLike)):
        return load_image(obj)
    if isinstance(obj, Image.Image):
        return _to_rgb(obj)
    if isinstance(obj, np.ndarray):
        return _array_to_pil(obj, "array")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        elif t.ndim != 2:
            raise ValueError(f"tensor must have shape (3, H, W), (1, H, W) or (H, W), got {tuple(obj.shape)}")
        if t.dtype == torch.uint8:
            arr = t.numpy()
        elif t.is_floating_point():
            arr = t.float().numpy()
        else:
            raise TypeError(f"tensor has dtype {t.dtype}; expected float in [0, 1] or uint8")
        return _array_to_pil(arr, f"tensor of shape {tuple(obj.shape)}")
    raise TypeError(
        f"as_pil expects a path, PIL image, numpy array or torch tensor, got {type(obj).__module__}."
        f"{type(obj).__qualname__}"
    )


# ----------------------------------------------------------------------------------------------
# writing


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            pass
    return a.resolve() == b.resolve()


def save_image(
    img: Image.Image,
    path: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    meta: ImageMeta | None = None,
    quality: int = 95,
) -> Path:
    """Write ``img`` to ``path`` atomically and return ``path`` as a :class:`Path`.

    The format comes from the extension (jpg/jpeg, png, tif/tiff, bmp, webp; anything else is a
    ValueError). Parent folders are created. The image is written to a hidden temp file
    ``.{name}.tmp-<random>`` in the same folder and moved over ``path`` with ``os.replace``, so a
    crash never leaves a partial file under the final name; the temp file is removed on error.
    Refuses (ValueError) to overwrite ``source``. With ``meta`` the ICC profile and EXIF are kept
    where the format supports them (JPEG, PNG, TIFF, WebP). Modes the format cannot store are
    converted to RGB (alpha composited on white). ``quality`` (1-100) applies to JPEG and WebP.
    """
    if not isinstance(img, Image.Image):
        raise TypeError(f"save_image expects a PIL image, got {type(img).__name__} (use as_pil first)")
    path = Path(path)
    ext = path.suffix.lower()
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise ValueError(
            f"{path}: cannot tell the image format from extension {ext!r}; use one of "
            f"{', '.join(sorted(_FORMATS))}"
        )
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if source is not None and _same_file(path, Path(source)):
        raise ValueError(f"{path}: refusing to overwrite the source image {source}")
    if img.mode not in _SAVE_MODES[fmt]:
        img = _to_rgb(img)
    kwargs: dict[str, Any] = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if meta is not None and fmt in _METADATA_FORMATS:
        if meta.icc_profile:
            kwargs["icc_profile"] = meta.icc_profile
        if meta.exif and not (fmt == "JPEG" and len(meta.exif) > _JPEG_MAX_EXIF):
            kwargs["exif"] = meta.exif
        elif meta.exif:
            warnings.warn(
                f"{path}: EXIF block of {len(meta.exif)} bytes is too large for JPEG; saved without it",
                stacklevel=2,
            )

    def write(tmp: Path) -> None:
        with open(tmp, "xb") as fh:
            img.save(fh, format=fmt, **kwargs)

    return atomic_write(path, write)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Make ``path`` all at once: ``write(tmp)`` fills a hidden temp file ``.{name}.tmp-<random>`` in the
    same folder, which is synced and moved over ``path`` with ``os.replace``. A crash never leaves a
    partial file under the final name, and the temp file is removed on error. Creates parent folders.
    Every file colorkit writes (images, models, configs, reports) goes through here.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TEMP_MARK}{secrets.token_hex(4)}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(paths: Iterable[str | os.PathLike]) -> int:
    """Delete the temp files (``.{name}.tmp-*``) that a killed earlier :func:`atomic_write` left next to
    ``paths`` (the final files; other files are never touched). Returns how many were removed."""
    names: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        names.setdefault(p.parent, set()).add(p.name)
    removed = 0
    for folder, ours in names.items():
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            for entry in it:
                n = entry.name
                if n.startswith(".") and _TEMP_MARK in n and n[1 : n.rindex(_TEMP_MARK)] in ours:
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except OSError:
                        pass
    return removed


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` with :func:`atomic_write`."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (non-JSON values as ``str``) with :func:`atomic_write`."""
    return write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------------------------
# finding files


def _is_candidate(name: str) -> bool:
    """A visible, non-temp file name with an image extension."""
    if name.startswith(".") or _TEMP_MARK in name:
        return False
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _scan_dir(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        found.extend(Path(root) / f for f in files if _is_candidate(f))
    return found


def is_glob(s: str) -> bool:
    """Whether ``s`` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
    return any(c in s for c in "*?[")


def glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard: ``photos/*/a*.jpg`` -> ``photos``."""
    fixed: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if is_glob(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def find_images(paths: str | os.PathLike | Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Image files under ``paths``: sorted, de-duplicated.

    ``paths`` is one path or a list of them. Each may be a file (always included), a folder (the
    images inside by extension, case-insensitive, sub-folders too when ``recursive``; hidden files,
    hidden folders and ``save_image`` temp files skipped) or a glob pattern (``**`` spans folders
    when ``recursive``; matched folders are scanned, matched non-image files skipped). A path that
    does not exist, or a pattern that matches nothing, raises FileNotFoundError.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found.extend(_scan_dir(p, recursive))
        elif p.exists():
            found.append(p)
        elif is_glob(str(item)):
            matches = glob.glob(str(item), recursive=recursive)
            if not matches:
                raise FileNotFoundError(f"no files match the pattern {str(item)!r}")
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    found.extend(_scan_dir(mp, recursive))
                elif mp.is_file() and _is_candidate(mp.name):
                    found.append(mp)
        else:
            raise FileNotFoundError(f"no such file or folder: {str(item)!r}")
    unique: dict[str, Path] = {}
    for f in found:
        unique.setdefault(os.path.normcase(os.path.abspath(f)), f)
    return sorted(unique.values())
