"""Evaluate a colorizer (or a folder of someone's predictions) against colour ground truth.

The protocol, the same for every method so figures are comparable:

1. **Evaluation crop** (:func:`evaluation_crop`): each ground-truth photo is resized (bicubic) so its
   SHORTER side is ``size`` and centre-cropped to ``size`` x ``size``. No random crops, no flips.
2. **Gray input** (:func:`gray_input`): ``color.to_gray`` of that crop, rounded to 8 bits: the photo
   the colorizer sees.
3. **Prediction**: ``colorizer.colorize(gray, render_size=size)`` (a :class:`~colorkit.Colorizer` or
   a fastai ``Learner``), ``colorizer(gray)`` (any callable PIL -> image) or, for a bare
   ``nn.Module`` generator, :func:`colorkit.infer.colorize_image`. Predictions are rounded to 8 bits
   like any saved image.
4. **Scores** (:mod:`colorkit.metrics`, on RGB): per image PSNR, SSIM, mean CIEDE2000, mean ``a, b``
   error and colourfulness (Hasler & Suesstrunk 2003) of the prediction and of the ground truth.
   The summary gives their means over the images and the corpus-level colourfulness gap
   ``dCF = |mean CF(pred) - mean CF(gt)|``.

Reports (``metrics.json``, ``metrics.csv``, the grid, the text table) are written by :mod:`colorkit.report`.

Baselines, scored the same way in every report for context:

- ``"gray"``: the gray input itself (colourfulness 0, so its dCF is the ground truth's mean CF);
- ``"mean_chroma"``: the gray input's lightness ``L`` plus ONE constant ``a, b``: the mean chroma of
  all ground-truth pixels of the set being evaluated (a constant tint). It peeks at the evaluated
  set's mean colour, so it is a slightly optimistic baseline.

PSNR of an exactly reproduced image is ``inf``, and so is a mean that includes one. In Python
results it is ``float("inf")``; JSON has no infinity, so :func:`write_report` and
:meth:`EvalResult.to_dict` write it as the string ``"inf"`` (``float("inf")`` parses it back;
NaN becomes ``null``). FID is computed only when InceptionV3 weights are on disk
(:func:`colorkit.metrics.fid_available`); LPIPS is never computed by colorkit. Otherwise each is
reported as ``{"available": false, "reason": ...}``, never as a number.

Runs are deterministic for a given model and input: torch / numpy / random seeds are set (and the
previous generator states restored) around the run.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from . import metrics as _metrics
from ._tensors import image_to_tensor
from .color import lab_to_rgb_keep_lightness, rgb_to_lab, to_gray
from .io import IMAGE_EXTENSIONS, ImageLoadError, as_pil, find_images, load_image
from .report import METRIC_KEYS, EvalResult, Sample, format_table, write_report

__all__ = [
    "BASELINES",
    "METRIC_KEYS",
    "EvalResult",
    "Sample",
    "evaluate",
    "evaluate_predictions",
    "evaluation_crop",
    "format_table",
    "gray_input",
    "write_report",
]

BASELINES: tuple[str, ...] = ("gray", "mean_chroma")
"""Names of the built-in baselines (see the module docstring)."""

MODEL_METHOD, PREDICTIONS_METHOD = "model", "predictions"
_ASPECT_TOL = 0.02  # relative aspect-ratio difference tolerated between a prediction and its truth
_CACHE_BYTES = 512 * 2**20  # prepared images kept in memory between the two passes
_FID_CHUNK = 64  # images per InceptionV3 call
_CROP_NOTE = (
    "each ground-truth photo resized (bicubic) so its shorter side is `size`, then centre-cropped "
    "to size x size; gray input = color.to_gray of that crop, rounded to 8 bits"
)
_PSNR_NOTE = (
    "mean of per-image PSNR (dB, RGB, data range 1); an exactly reproduced image gives inf, "
    'written as the string "inf" in JSON and CSV'
)
_MEAN_CHROMA_NOTE = (
    "gray L + the mean a, b of all ground-truth pixels of this evaluated set (a constant tint); it "
    "peeks at the set's mean colour, so it is slightly optimistic"
)


# ----------------------------------------------------------------------------------------------
# results


class _Skip(Exception):
    """A file (or pair) that cannot be scored: recorded in ``skipped``, never fatal."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


# ----------------------------------------------------------------------------------------------
# image preparation


def evaluation_crop(img: Image.Image, size: int) -> Image.Image:
    """The evaluation view of a photo: resize (bicubic) so the SHORTER side is ``size``, centre-crop.

    Returns a ``size`` x ``size`` RGB PIL image. Small photos are upscaled. Deterministic.
    """
    size = _check_size(size)
    img = as_pil(img)
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def gray_input(img: Image.Image) -> Image.Image:
    """The gray photo a colorizer is given: ``color.to_gray`` of ``img``, 3 equal channels, 8 bits."""
    return as_pil(_u8(to_gray(_tensor(np.asarray(as_pil(img))))))


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 (pixels of the square evaluation crop), got {size!r}")
    return int(size)


def _tensor(arr: np.ndarray) -> Tensor:
    """uint8 (H, W, 3) -> float64 (1, 3, H, W) in [0, 1]."""
    return image_to_tensor(arr, torch.float64).unsqueeze(0)


def _u8(x: Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> uint8 (H, W, 3), rounded as a saved image would be."""
    return x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    ra, rb = a[0] / a[1], b[0] / b[1]
    return abs(ra - rb) <= _ASPECT_TOL * rb


# ----------------------------------------------------------------------------------------------
# what is being evaluated


def _predictor(colorizer: Any, size: int) -> Callable[[Image.Image], Any]:
    """A function gray PIL -> prediction for a Colorizer / Learner (``.colorize``), module or callable;
    ``size`` is the render size."""
    colorize = getattr(colorizer, "colorize", None)
    if callable(colorize):

        def predict(gray: Image.Image) -> Any:
            return colorize(gray, render_size=size)

        return predict
    if isinstance(colorizer, nn.Module):
        from .infer import colorize_image

        def predict_module(gray: Image.Image) -> Any:
            return colorize_image(colorizer, gray, render_size=size)

        return predict_module
    if callable(colorizer):
        return colorizer
    raise TypeError(
        "colorizer must be a Colorizer, a colorize_learner Learner, a generator nn.Module, a callable "
        f"PIL image -> image, or None for baselines only; got {type(colorizer).__module__}."
        f"{type(colorizer).__qualname__}"
    )


def _model_info(colorizer: Any) -> dict[str, Any] | None:
    """What was evaluated, for the report: type, and path / config when the object knows them."""
    if colorizer is None:
        return None
    info: dict[str, Any] = {"type": type(colorizer).__name__}
    path = getattr(colorizer, "path", None)
    if path is not None:
        info["path"] = str(path)
    config = getattr(colorizer, "config", None)
    if config is None:
        config = getattr(colorizer, "colorizer_config", None)  # a colorize_learner Learner
    if config is None and hasattr(colorizer, "model"):
        config = getattr(colorizer.model, "config", None)
    if config is not None:
        info["config"] = config.to_dict() if hasattr(config, "to_dict") else config
    render_size = getattr(colorizer, "render_size", None)
    if isinstance(render_size, int):
        info["default_render_size"] = render_size
    if not isinstance(colorizer, nn.Module) and not hasattr(colorizer, "colorize"):
        info["name"] = getattr(colorizer, "__qualname__", type(colorizer).__qualname__)
    return info


def _check_baselines(baselines: Sequence[str] | str | None) -> list[str]:
    if baselines is None:
        return []
    names = [baselines] if isinstance(baselines, str) else list(baselines)
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    return list(dict.fromkeys(names))


def _check_common(size: int, limit: int | None, sample: int,
                  baselines: Sequence[str] | str | None) -> tuple[int, int | None, int, list[str]]:
    """The arguments :func:`evaluate` and :func:`evaluate_predictions` share, checked."""
    return (_check_size(size), _check_count(limit, "limit", allow_none=True),
            _check_count(sample, "sample", allow_none=False), _check_baselines(baselines))


def _check_count(value: int | None, name: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        alt = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a non-negative integer{alt}, got {value!r}")
    return int(value)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU), numpy and random for the block; restore their previous states after."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


# ----------------------------------------------------------------------------------------------
# the shared engine


@dataclass
class _Case:
    name: str  # shown in reports: path relative to the folder
    truth: Path
    pred: Path | None = None  # a prediction file (evaluate_predictions)


def _load(case: _Case, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Ground truth (and prediction file) of ``case`` as uint8 (size, size, 3); raises _Skip."""
    try:
        truth_img = load_image(case.truth)
    except ImageLoadError as e:
        raise _Skip(case.name, e.reason) from None
    truth = np.asarray(evaluation_crop(truth_img, size))
    if case.pred is None:
        return truth, None
    pred_name = f"{case.name} (prediction {case.pred.name})"
    try:
        pred_img = load_image(case.pred)
    except ImageLoadError as e:
        raise _Skip(pred_name, e.reason) from None
    if not _same_aspect(pred_img.size, truth_img.size):
        raise _Skip(
            pred_name,
            f"prediction is {pred_img.size[0]}x{pred_img.size[1]} but the ground truth is "
            f"{truth_img.size[0]}x{truth_img.size[1]}: different aspect ratios cannot be aligned",
        )
    return truth, np.asarray(evaluation_crop(pred_img, size))


def _check_prediction(out: Any, name: str, size: int) -> np.ndarray:
    """A colorizer's output -> uint8 (size, size, 3); resized if it has the right aspect ratio."""
    try:
        img = as_pil(out)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: the colorizer returned something that is not an image ({e})") from None
    if img.size != (size, size):
        if not _same_aspect(img.size, (size, size)):
            raise ValueError(
                f"{name}: the colorizer returned a {img.size[0]}x{img.size[1]} image "
                f"for a {size}x{size} input"
            )
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img)


def _mean_chroma_prediction(gray: Tensor, mean_ab: Tensor) -> Tensor:
    """Gray (1, 3, S, S) + constant chroma ``mean_ab`` (2,) -> RGB (1, 3, S, S), lightness kept."""
    L = rgb_to_lab(gray)[:, :1]
    ab = mean_ab.to(L.dtype).view(1, 2, 1, 1).expand(1, 2, *L.shape[-2:])
    return lab_to_rgb_keep_lightness(torch.cat([L, ab], dim=1))


class _FidFeatures:
    """InceptionV3 features of one image stream, computed in chunks so memory stays bounded."""

    def __init__(self, weights: str | os.PathLike | None) -> None:
        self.weights, self.buffer, self.feats = weights, [], []

    def add(self, arr: np.ndarray) -> None:
        self.buffer.append(arr)
        if len(self.buffer) >= _FID_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            batch = torch.cat([_tensor(a).float() for a in self.buffer])
            self.feats.append(_metrics.inception_features(batch, weights=self.weights).cpu())
            self.buffer = []

    def features(self) -> Tensor:
        self.flush()
        return torch.cat(self.feats) if self.feats else torch.empty(0, 0)


def _unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def _lpips_entry() -> dict[str, Any]:
    ok, reason = _metrics.lpips_available()
    if ok:
        reason = f"not computed: colorkit does not compute LPIPS itself ({reason})"
    return _unavailable(reason)


def _summarize(scores: dict[str, list[float]], n: int) -> dict[str, Any]:
    if n == 0:
        out: dict[str, Any] = {"n": 0, **{k: None for k in METRIC_KEYS}, "colorfulness_gap": None}
        return out
    out = {"n": n}
    for k in METRIC_KEYS:
        v = scores[k]
        out[k] = math.inf if any(math.isinf(x) and x > 0 for x in v) else float(np.mean(v))
    out["colorfulness_gap"] = abs(out["colorfulness"] - out["colorfulness_target"])
    return out


def _run(
    cases: list[_Case],
    *,
    size: int,
    predict: Callable[[Image.Image], Any] | None,
    primary: str | None,
    baselines: list[str],
    sample: int,
    fid: bool,
    fid_weights: str | os.PathLike | None,
    progress: Callable[[int, int], None] | None,
    skipped: list[dict[str, str]],
) -> tuple[list[str], dict[str, dict[str, Any]], list[dict[str, Any]], list[Sample], dict[str, Any]]:
    """Score every case for the primary method and the baselines; see :func:`evaluate`."""
    methods = ([primary] if primary else []) + baselines
    cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
    cached_bytes = 0
    extra_settings: dict[str, Any] = {}

    # pass 1 (only for mean_chroma): read every file once, keep the readable ones, sum the chroma
    mean_ab: Tensor | None = None
    order = list(range(len(cases)))
    if "mean_chroma" in baselines:
        ab_sum, n_px, readable = torch.zeros(2, dtype=torch.float64), 0, []
        for i in order:
            try:
                arrays = _load(cases[i], size)
            except _Skip as s:
                skipped.append({"file": s.file, "reason": s.reason})
                continue
            readable.append(i)
            ab_sum += rgb_to_lab(_tensor(arrays[0]))[0, 1:].sum(dim=(1, 2))
            n_px += size * size
            nbytes = sum(a.nbytes for a in arrays if a is not None)
            if cached_bytes + nbytes <= _CACHE_BYTES:
                cache[i] = arrays
                cached_bytes += nbytes
        order = readable
        if n_px:
            mean_ab = ab_sum / n_px
            extra_settings["mean_chroma_ab"] = [float(v) for v in mean_ab]

    do_fid, fid_reason = _metrics.fid_available(fid_weights) if fid else (False, "not requested (fid=False)")
    feats = {m: _FidFeatures(fid_weights) for m in [*methods, "__truth__"]} if do_fid else {}
    scores: dict[str, dict[str, list[float]]] = {m: {k: [] for k in METRIC_KEYS} for m in methods}
    rows: list[dict[str, Any]] = []
    samples: list[Sample] = []
    n = 0
    for done, i in enumerate(order, 1):
        case = cases[i]
        try:
            truth_u8, pred_file_u8 = cache.pop(i) if i in cache else _load(case, size)
        except _Skip as s:
            skipped.append({"file": s.file, "reason": s.reason})
            continue
        truth = _tensor(truth_u8)
        gray_u8 = _u8(to_gray(truth))
        preds: dict[str, np.ndarray] = {}
        if primary is not None:
            if pred_file_u8 is not None:
                preds[primary] = pred_file_u8
            else:
                assert predict is not None
                try:
                    out = predict(as_pil(gray_u8))
                except Exception as e:
                    raise RuntimeError(f"{case.name}: the colorizer failed ({type(e).__name__}: {e})") from e
                preds[primary] = _check_prediction(out, case.name, size)
        if "gray" in baselines:
            preds["gray"] = gray_u8
        if "mean_chroma" in baselines:
            assert mean_ab is not None
            preds["mean_chroma"] = _u8(_mean_chroma_prediction(_tensor(gray_u8), mean_ab))
        for m in methods:
            # one method at a time: a figure must not depend on which other methods share its batch
            figures = _metrics.score_batch(_tensor(preds[m]), truth)
            row: dict[str, Any] = {"file": case.name, "method": m}
            for k in METRIC_KEYS:
                row[k] = float(figures[k][0])
                scores[m][k].append(row[k])
            rows.append(row)
            if do_fid:
                feats[m].add(preds[m])
        if do_fid:
            feats["__truth__"].add(truth_u8)
        if len(samples) < sample:
            samples.append(
                Sample(
                    file=case.name,
                    gray=as_pil(gray_u8),
                    truth=as_pil(truth_u8),
                    predictions={m: as_pil(preds[m]) for m in methods if m != "gray"},
                )
            )
        n += 1
        if progress is not None:
            progress(done, len(order))

    summary = {m: _summarize(scores[m], n) for m in methods}
    lpips = _lpips_entry()
    fid_entries = {m: _unavailable(fid_reason) for m in methods}
    if do_fid:
        if n < 2:
            fid_entries = {m: _unavailable(f"FID needs at least 2 images, got {n}") for m in methods}
        else:
            try:
                truth_feats = feats["__truth__"].features()
                for m in methods:
                    # a distance: round-off can leave identical sets a hair below zero
                    value = max(0.0, _metrics.fid(feats[m].features(), truth_feats))
                    fid_entries[m] = {"available": True, "reason": fid_reason, "value": value}
            except Exception as e:  # a failure after a long run is reported, not raised
                fid_entries = {m: _unavailable(f"FID failed: {type(e).__name__}: {e}") for m in methods}
    for m in methods:
        summary[m]["fid"] = fid_entries[m]
        summary[m]["lpips"] = dict(lpips)
    skipped.sort(key=lambda s: s["file"])
    return methods, summary, rows, samples, extra_settings


def _settings(size: int, limit: int | None, baselines: list[str], sample: int, seed: int) -> dict[str, Any]:
    s: dict[str, Any] = {
        "size": size,
        "limit": limit,
        "baselines": baselines,
        "sample": sample,
        "seed": seed,
        "crop": _CROP_NOTE,
        "psnr": _PSNR_NOTE,
    }
    if "mean_chroma" in baselines:
        s["mean_chroma"] = _MEAN_CHROMA_NOTE
    return s


def _display_name(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


# ----------------------------------------------------------------------------------------------
# public API


def evaluate(
    colorizer: Any,
    source: str | os.PathLike | Sequence[str | os.PathLike],
    size: int = 256,
    limit: int | None = None,
    baselines: Sequence[str] | None = BASELINES,
    sample: int = 8,
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    recursive: bool = True,
    fid: bool = True,
    fid_weights: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    render_size: int | None = None,
) -> EvalResult:
    """Evaluate ``colorizer`` on a folder of colour photos; returns per-image and summary figures.

    Each photo in ``source`` (a folder, file, glob or list, as :func:`colorkit.io.find_images`;
    sub-folders when ``recursive``) is cropped with :func:`evaluation_crop` to ``size`` x ``size``,
    made gray (:func:`gray_input`), colorized, and compared with the crop. ``colorizer`` is a
    :class:`~colorkit.Colorizer` or ``colorize_learner`` Learner (``.colorize(gray,
    render_size=render_size)``; ``render_size`` defaults to ``size``), a generator ``nn.Module``, any
    callable PIL image -> image (PIL, array or tensor; same size, or same aspect ratio and then
    resized), or ``None`` for baselines only.
    ``limit`` keeps the first ``limit`` files in sorted order; ``baselines`` is any of
    :data:`BASELINES`; the first ``sample`` scored photos are kept for the report grid. With
    ``out``, :func:`write_report` writes the report there (``result.paths``).

    Unreadable files are skipped and listed in ``result.skipped`` with their reasons. A colorizer
    that raises, or returns something that is not an image of the input's shape, raises an error
    naming the file. ``fid=False`` skips FID even when its weights are on disk (``fid_weights``: a
    local InceptionV3 state dict). ``progress(done, total)`` is called after each photo.
    """
    size, limit, sample, names = _check_common(size, limit, sample, baselines)
    if colorizer is None and not names:
        raise ValueError("nothing to evaluate: colorizer is None and no baselines were asked for")
    render_size = size if render_size is None else _check_size(render_size)
    predict = _predictor(colorizer, render_size) if colorizer is not None else None
    files = find_images(source, recursive=recursive)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {source!s}")
    n_found = len(files)
    if limit is not None:
        files = files[:limit]
    root = Path(source) if isinstance(source, (str, os.PathLike)) and Path(source).is_dir() else None
    cases = [_Case(_display_name(f, root), f) for f in files]
    skipped: list[dict[str, str]] = []
    with _seeded(seed), torch.no_grad():
        methods, summary, rows, samples, extra = _run(
            cases, size=size, predict=predict, primary=MODEL_METHOD if colorizer is not None else None,
            baselines=names, sample=sample, fid=fid, fid_weights=fid_weights, progress=progress, skipped=skipped)
    settings = {
        "mode": "model" if colorizer is not None else "baselines",
        "source": [str(s) for s in source] if not isinstance(source, (str, os.PathLike)) else str(source),
        "n_found": n_found,
        **_settings(size, limit, names, sample, seed),
        **({"render_size": render_size} if colorizer is not None else {}),
        **extra,
    }
    result = EvalResult(methods, summary, rows, skipped, settings, _model_info(colorizer), samples=samples)
    if out is not None:
        write_report(result, out)
    return result


def _index_by_stem(
    files: list[Path], root: Path, what: str, skipped: list[dict[str, str]]
) -> dict[str, Path]:
    """{lower-case stem: file}; stems that occur more than once are ambiguous and listed as skipped."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(f.stem.lower(), []).append(f)
    index = {}
    for stem, group in groups.items():
        if len(group) == 1:
            index[stem] = group[0]
        else:
            names = ", ".join(_display_name(f, root) for f in group)
            for f in group:
                skipped.append(
                    {
                        "file": _display_name(f, root),
                        "reason": f"ambiguous {what}: several files share the stem {stem!r} ({names})",
                    }
                )
    return index


def evaluate_predictions(
    predictions_dir: str | os.PathLike,
    truth_dir: str | os.PathLike,
    size: int = 256,
    limit: int | None = None,
    baselines: Sequence[str] | None = BASELINES,
    sample: int = 8,
    out: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    recursive: bool = True,
    fid: bool = True,
    fid_weights: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score a folder of existing predictions (any tool's) against a folder of ground truth.

    Files are matched by stem, case-insensitively and whatever their image extensions
    (``Photo_1.PNG`` matches ``photo_1.jpg``); with ``recursive``, files in sub-folders are matched
    by stem too. Both images of a pair go through :func:`evaluation_crop`, so a prediction may be at
    the ground truth's size or any size with the same aspect ratio (within 2%); pairs whose aspect
    ratios differ are skipped with that reason. The baselines are made from the ground truth of the
    matched, readable pairs, so every method is scored on the same images.

    ``result.missing`` lists ground-truth files with no prediction, ``result.extra`` predictions with
    no ground truth, and ``result.skipped`` unreadable files and ambiguous stems, with reasons; none
    of these is fatal. ``limit`` keeps the first ``limit`` matched pairs in sorted order. Other
    arguments as :func:`evaluate`.
    """
    size, limit, sample, names = _check_common(size, limit, sample, baselines)
    pred_root, truth_root = Path(predictions_dir), Path(truth_dir)
    for what, d in (("predictions_dir", pred_root), ("truth_dir", truth_root)):
        if not d.is_dir():
            raise NotADirectoryError(f"{what} {d} is not a folder")
    skipped: list[dict[str, str]] = []
    truths = _index_by_stem(find_images(truth_root, recursive=recursive), truth_root, "ground truth", skipped)
    preds = _index_by_stem(find_images(pred_root, recursive=recursive), pred_root, "prediction", skipped)
    if not truths:
        raise FileNotFoundError(f"no usable ground-truth images in {truth_root}")
    matched = sorted(set(truths) & set(preds), key=lambda s: _display_name(truths[s], truth_root))
    missing = sorted(_display_name(truths[s], truth_root) for s in set(truths) - set(preds))
    extra = sorted(_display_name(preds[s], pred_root) for s in set(preds) - set(truths))
    if limit is not None:
        matched = matched[:limit]
    cases = [_Case(_display_name(truths[s], truth_root), truths[s], preds[s]) for s in matched]
    with _seeded(seed), torch.no_grad():
        methods, summary, rows, samples, extra_settings = _run(
            cases, size=size, predict=None, primary=PREDICTIONS_METHOD, baselines=names, sample=sample, fid=fid,
            fid_weights=fid_weights, progress=progress, skipped=skipped)
    settings = {
        "mode": "predictions",
        "predictions_dir": str(pred_root),
        "truth_dir": str(truth_root),
        "n_truth": len(truths),
        "n_predictions": len(preds),
        "n_matched": len(matched),
        "matching": "by file stem, case-insensitive, any image extension",
        **_settings(size, limit, names, sample, seed),
        **extra_settings,
    }
    model = {"type": "predictions", "path": str(pred_root)}
    return_value = EvalResult(
        methods, summary, rows, skipped, settings, model, missing=missing, extra=extra, samples=samples
    )
    if out is not None:
        write_report(return_value, out)
    return return_value
