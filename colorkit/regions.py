"""Which colour where": does the model put blue in skies, green in vegetation, skin tones on skin?

Loss and PSNR say how far the colours are, not whether a colorizer has learned what is usually which
colour. :func:`region_hues` picks the pixels whose *true* colour is sky-blue, vegetation-green or
skin-like (by Lab ranges, no labels needed) and reports, per region, how much colour the prediction
puts there and how often its hue is within 45 degrees of the truth's. :class:`RegionHueTracker` logs
that after every epoch on a fixed handful of photos, so a long run shows when the model starts to get
it (loss curves alone do not).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from fastai.callback.core import Callback
from torch import Tensor

from .color import rgb_to_lab

__all__ = ["REGIONS", "RegionHueTracker", "fixed_photos", "region_hues", "region_masks"]

# name -> (L range, a range, b range) of the truth's Lab colour
REGIONS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "sky": ((35, 98), (-25, 12), (-60, -8)),  # blue
    "vegetation": ((10, 90), (-60, -8), (-5, 70)),  # green to yellow-green
    "skin": ((30, 85), (8, 30), (10, 35)),  # skin tones (and other warm browns)
}
_MIN_CHROMA = 5.0  # a predicted pixel with less chroma than this has no hue
_HIT_DEGREES = 45.0


def region_masks(lab: Tensor) -> dict[str, Tensor]:
    """Boolean masks ``(B, H, W)`` of the pixels of Lab ``(B, 3, H, W)`` that fall in each of :data:`REGIONS`."""
    L, a, b = lab.unbind(1)
    out = {}
    for name, ((l0, l1), (a0, a1), (b0, b1)) in REGIONS.items():
        out[name] = (L >= l0) & (L <= l1) & (a >= a0) & (a <= a1) & (b >= b0) & (b <= b1)
    return out


def _hue(ab: Tensor) -> Tensor:
    return torch.atan2(ab[1], ab[0])


@torch.no_grad()
def region_hues(pred: Tensor, targ: Tensor) -> dict[str, float]:
    """Per region of :data:`REGIONS` in the truth: ``{region}_px`` (share of pixels), ``{region}_chroma``
    (mean predicted chroma there; the truth's is ``{region}_true_chroma``) and ``{region}_hit`` (share of
    those pixels whose predicted hue is within 45 degrees of the truth's, with chroma >= 5).

    ``pred``, ``targ``: RGB ``(B, 3, H, W)`` in [0, 1]. Regions with no pixels are left out.
    """
    lp, lt = rgb_to_lab(pred.float().clamp(0, 1)), rgb_to_lab(targ.float().clamp(0, 1))
    out: dict[str, float] = {}
    total = lt[:, 0].numel()
    for name, m in region_masks(lt).items():
        n = int(m.sum())
        if not n:
            continue
        ap, at = lp[:, 1:].movedim(1, 0)[:, m], lt[:, 1:].movedim(1, 0)[:, m]  # (2, n)
        cp, ct = ap.norm(dim=0), at.norm(dim=0)
        diff = torch.remainder(_hue(ap) - _hue(at) + math.pi, 2 * math.pi) - math.pi
        hit = (diff.abs() <= math.radians(_HIT_DEGREES)) & (cp >= _MIN_CHROMA)
        out.update({f"{name}_px": n / total, f"{name}_chroma": float(cp.mean()),
                    f"{name}_true_chroma": float(ct.mean()), f"{name}_hit": float(hit.float().mean())})
    return out


class RegionHueTracker(Callback):
    """After every epoch, score :func:`region_hues` (and mean CIEDE2000, colourfulness) on fixed photos.

    ``photos``: colour images ``(N, 3, H, W)`` in [0, 1] (e.g. a seeded handful of validation photos);
    results are appended to ``self.history`` and, with ``fname``, as JSON lines to that file.
    """

    order = 65  # after the recorder

    def __init__(self, photos: Tensor, fname: str | Path | None = None, bs: int = 16):
        self.photos, self.fname, self.bs, self.history = photos, fname, bs, []

    def after_epoch(self) -> None:
        from .color import to_gray
        from .metrics import ciede2000, colorfulness

        model = self.learn.model
        was = model.training
        model.eval()
        dev = next(model.parameters()).device
        try:
            with torch.no_grad():
                preds = []
                for i in range(0, len(self.photos), self.bs):
                    out = model(to_gray(self.photos[i : i + self.bs].to(dev), channels=3))
                    preds.append((out[0] if isinstance(out, tuple) else out).float().cpu())
        finally:
            model.train(was)
        pred = torch.cat(preds)
        rec: dict[str, Any] = {"epoch": int(self.epoch), "iter": int(self.train_iter)}
        rec["ciede2000"] = float(ciede2000(pred, self.photos).mean())
        rec["colorfulness"] = float(colorfulness(pred).mean())
        rec["true_colorfulness"] = float(colorfulness(self.photos).mean())
        rec.update(region_hues(pred, self.photos))
        self.history.append(rec)
        if self.fname is not None:
            with open(self.fname, "a") as f:
                f.write(json.dumps(rec) + "\n")


def fixed_photos(paths: Sequence[str | Path], size: int = 128) -> Tensor:
    """Centre crops of ``paths`` resized to ``size`` -> ``(N, 3, size, size)`` in [0, 1] (for the tracker)."""
    from .memory import MemoryPhotos, _decode

    ds = MemoryPhotos([_decode(Path(p), size) for p in paths], size, train=False)
    return torch.stack([ds[i][1].as_subclass(Tensor) for i in range(len(ds))])
