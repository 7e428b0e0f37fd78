"""Evaluation results and reports: :class:`EvalResult`, ``metrics.json`` / ``metrics.csv`` / ``grid.png``
(:func:`write_report`), the text table (:func:`format_table`), and before/after image grids (:func:`image_grid`,
also used by ``colorkit demo``).

:func:`colorkit.evaluate.evaluate` and :func:`~colorkit.evaluate.evaluate_predictions` make the results.
"""

from __future__ import annotations

import csv
import io as _stdio
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import __version__
from .io import save_image, write_text_atomic

__all__ = ["METRIC_KEYS", "EvalResult", "Sample", "format_table", "image_grid", "json_safe", "write_report"]

METRIC_KEYS: tuple[str, ...] = (
    "psnr",
    "ssim",
    "ciede2000",
    "ab_error",
    "colorfulness",
    "colorfulness_target",
)
"""Per-image figures, in the order of ``metrics.csv`` (``colorfulness_target`` is the ground truth's)."""

_TITLES = {"model": "prediction", "predictions": "prediction", "mean_chroma": "mean chroma"}


@dataclass
class Sample:
    """The images of one photo kept for the report grid, all ``size`` x ``size`` RGB PIL images.

    ``predictions`` maps a method name to its prediction (the ``"gray"`` baseline is left out: it is
    the ``gray`` input itself).
    """

    file: str
    gray: Image.Image
    truth: Image.Image
    predictions: dict[str, Image.Image]


@dataclass
class EvalResult:
    """What :func:`~colorkit.evaluate.evaluate` and :func:`~colorkit.evaluate.evaluate_predictions` return.

    - ``methods``: method names in report order: the model (``"model"``) or the prediction folder
      (``"predictions"``) first when there is one, then the baselines.
    - ``summary``: ``{method: {"n", "psnr", "ssim", "ciede2000", "ab_error", "colorfulness",
      "colorfulness_target", "colorfulness_gap", "fid", "lpips"}}``: means over the scored images
      (``None`` when no image was scored), the corpus-level gap, and FID / LPIPS as
      ``{"available": bool, "reason": str, "value": float (only when computed)}``.
    - ``per_image``: one dict per image and method: ``{"file", "method", *METRIC_KEYS}``.
    - ``skipped``: ``[{"file", "reason"}]``: unreadable files (and, for predictions, pairs that
      could not be compared); never fatal.
    - ``missing`` / ``extra``: (predictions only) ground-truth files with no prediction, and
      predictions with no ground truth, by file name.
    - ``settings``, ``model``: how the figures were made, and what was evaluated (path / config).
    - ``samples``: images for the grid (first ``sample`` scored files in sorted order).
    - ``paths``: the files :func:`write_report` wrote (empty until then).
    """

    methods: list[str]
    summary: dict[str, dict[str, Any]]
    per_image: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    settings: dict[str, Any]
    model: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list, repr=False)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        """Number of images scored (the same for every method)."""
        return max((s["n"] for s in self.summary.values()), default=0)

    def to_dict(self, per_image: bool = True) -> dict[str, Any]:
        """JSON-safe dict (the content of ``metrics.json``): ``inf`` -> ``"inf"``, NaN -> ``None``."""
        d: dict[str, Any] = {
            "colorkit_version": __version__,
            "settings": self.settings,
            "model": self.model,
            "methods": self.methods,
            "summary": self.summary,
            "n_images": self.n_images,
            "skipped": self.skipped,
            "missing": self.missing,
            "extra": self.extra,
            "sample_files": [s.file for s in self.samples],
        }
        if per_image:
            d["per_image"] = self.per_image
        return json_safe(d)

    def table(self) -> str:
        """:func:`format_table` of this result."""
        return format_table(self)


def json_safe(x: Any) -> Any:
    """Recursively: inf -> "inf", -inf -> "-inf", NaN -> None, Path -> str, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, type(None), str, int)):
        return x
    if isinstance(x, (float, np.floating)):
        v = float(x)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return str(x)


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return ""
        return repr(v)
    return v


def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def image_grid(rows: Sequence[Sequence[Image.Image]], titles: Sequence[str], height: int = 240,
               labels: Sequence[str] | None = None) -> Image.Image:
    """Rows of PIL images -> one grid image with a title over each column (and ``labels`` on each row).

    Every cell is scaled to ``height`` px tall, keeping its aspect ratio (enlarged with nearest neighbours,
    so small evaluation crops stay crisp; shrunk with Lanczos); columns are as wide as their widest cell.
    """
    if not rows or any(len(r) != len(titles) for r in rows):
        raise ValueError(f"image_grid needs rows of {len(titles)} images (one per title), got {[len(r) for r in rows]}")
    pad, head = 8, 28

    def scaled(im: Image.Image) -> Image.Image:
        w = max(1, round(im.width * height / im.height))
        if (w, height) == im.size:
            return im
        up = height > im.height
        return im.convert("RGB").resize((w, height), Image.Resampling.NEAREST if up else Image.Resampling.LANCZOS)

    cells = [[scaled(im) for im in row] for row in rows]
    col_w = [max(r[c].width for r in cells) for c in range(len(titles))]
    grid = Image.new("RGB", (sum(col_w) + pad * (len(col_w) + 1), head + len(cells) * (height + pad) + pad),
                     (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font, small = _font(15), _font(11)
    x = pad
    for c, title in enumerate(titles):
        draw.text((x + (col_w[c] - draw.textlength(title, font=font)) / 2, 6), title, fill=(0, 0, 0), font=font)
        for r, row in enumerate(cells):
            grid.paste(row[c], (x, head + r * (height + pad)))
        x += col_w[c] + pad
    for r, label in enumerate(labels or []):
        text = label if len(label) <= 40 else "..." + label[-37:]
        y = head + r * (height + pad) + height - 16
        box = draw.textbbox((pad + 4, y), text, font=small)
        draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
        draw.text((pad + 4, y), text, fill=(255, 255, 255), font=small)
    return grid


def _eval_grid(result: EvalResult) -> Image.Image | None:
    """Rows = sample photos; columns = gray input | predictions (model, baselines) | ground truth."""
    if not result.samples:
        return None
    methods = [m for m in result.methods if m in result.samples[0].predictions]
    titles = ["gray input", *[_TITLES.get(m, m) for m in methods], "ground truth"]
    rows = [[s.gray, *[s.predictions[m] for m in methods], s.truth] for s in result.samples]
    cell = max(result.samples[0].truth.size[0], 128)  # tiny evaluation sizes are enlarged to stay readable
    return image_grid(rows, titles, height=cell, labels=[s.file for s in result.samples])


def write_report(result: EvalResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``metrics.json``, ``metrics.csv`` and ``grid.png`` into ``out_dir``; return their paths.

    - ``metrics.json``: :meth:`EvalResult.to_dict` (colorkit version, settings, model path / config,
      summary per method, per-image rows, skipped / missing / extra files); PSNR ``inf`` is the
      string ``"inf"``.
    - ``metrics.csv``: one row per image and method: ``file, method, *METRIC_KEYS`` (``inf`` as is).
    - ``grid.png``: the sample photos (rows) x gray input | prediction | baselines | ground truth
      (columns, titled); the gray baseline is not repeated. Not written when there is no sample
      (``sample=0`` or no image scored); its entry is then missing from the returned dict.

    Every file is written atomically (temp file + ``os.replace``). Keys: ``"json"``, ``"csv"``,
    ``"grid"``. Also stored in ``result.paths``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder; write_report needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    paths["json"] = write_text_atomic(out / "metrics.json", text)
    buf = _stdio.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "method", *METRIC_KEYS])
    for row in result.per_image:
        writer.writerow([row["file"], row["method"], *[_csv_value(row[k]) for k in METRIC_KEYS]])
    paths["csv"] = write_text_atomic(out / "metrics.csv", buf.getvalue())
    grid = _eval_grid(result)
    if grid is not None:
        paths["grid"] = save_image(grid, out / "grid.png")
    result.paths = dict(paths)
    return paths


def _fmt(v: Any, digits: int) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def format_table(result: EvalResult) -> str:
    """A short aligned text table of the summary, one row per method, plus a footer.

    Columns: method | PSNR (dB) | SSIM | dE2000 | ab err | CF (of the predictions) | dCF
    (corpus-level gap to the ground truth's mean CF, given in the footer with the image count).
    """
    header = ["method", "PSNR", "SSIM", "dE2000", "ab err", "CF", "dCF"]
    spec = [("psnr", 2), ("ssim", 4), ("ciede2000", 2), ("ab_error", 2)]
    spec += [("colorfulness", 2), ("colorfulness_gap", 2)]
    body = [[m, *[_fmt(result.summary[m][k], d) for k, d in spec]] for m in result.methods]
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cells[0].ljust(widths[0]) if c == 0 else cells[c].rjust(widths[c]) for c in range(len(cells))
        )

    lines = [line(header), "  ".join("-" * w for w in widths), *[line(r) for r in body]]
    n = result.n_images
    gt_cf = next((s["colorfulness_target"] for s in result.summary.values()), None)
    plural = "s" if n != 1 else ""
    foot = f"{n} image{plural} at {result.settings.get('size')}px; ground-truth CF {_fmt(gt_cf, 2)}"
    if result.skipped:
        foot += f"; {len(result.skipped)} skipped"
    if result.missing:
        foot += f"; {len(result.missing)} missing"
    if result.extra:
        foot += f"; {len(result.extra)} extra"
    lines.append(foot)
    first = result.summary[result.methods[0]] if result.methods else {}
    for key, label in (("fid", "FID"), ("lpips", "LPIPS")):
        entry = first.get(key)
        if isinstance(entry, dict) and entry.get("available"):
            vals = ", ".join(f"{m} {_fmt(result.summary[m][key].get('value'), 2)}" for m in result.methods)
            lines.append(f"{label}: {vals}")
        elif isinstance(entry, dict):
            lines.append(f"{label}: not available ({entry.get('reason')})")
    return "\n".join(lines)
