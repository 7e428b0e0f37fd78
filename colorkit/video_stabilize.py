"""Colour that holds still from frame to frame: scene cuts and a running blend of chroma where nothing moves.

Each frame of a film is colorized on its own, so its predicted chroma jitters from frame to frame (film grain,
exposure flicker, compression noise and small motions all move the network's guess). :class:`ChromaStabilizer`
smooths that jitter at render size, one frame at a time (causal, so a film streams through in segments):

1. **Scene cuts** (:func:`cut_score`): the frame is cut into 8x8-pixel blocks and compared with the previous
   one, aligned for global motion (:func:`estimate_shift`: a pan, gate weave) and with the median change of
   lightness taken out, so exposure flicker, fades and pans do not count. When more than ``cut_threshold`` (40%) of the
   blocks changed by over 8 L units, or the block layout no longer correlates (r under 0.4), a new scene
   starts. Its first frame is a **key frame**: its colour is the network's own and nothing is carried
   across the cut.
2. **Carry where the picture is still**: per pixel, the carried chroma ``c`` and the new prediction ``p`` are
   blended as ``p + stability * w * (c - p)``, where ``w`` is 1 where the pixel's lightness did not change
   (within ``still_tolerance`` L units once the frame's median change is taken out, 3x3 box-filtered) and
   falls to 0 at twice that. Where something moves, the frame keeps its own prediction; where nothing moves,
   the colour is a running average over about ``(1 + s) / (1 - s)`` frames. ``stability=0`` is frame by
   frame.

The carried colour is deliberately not moved along with a pan: the networks' colour depends on the position
in the frame as well as on the content, and colour dragged along with the picture drifts away from what the
network sees at each place (measured in docs/video.md). Everything is numpy on small arrays (a few ms per
frame). :meth:`ChromaStabilizer.state_dict` and :meth:`~ChromaStabilizer.load_state_dict` carry the state
across segments, so a resumed run continues exactly. :func:`chroma_flicker` is the measure of the result:
mean ``|delta ab|`` between consecutive frames where the lightness does not change.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

import numpy as np

__all__ = ["ChromaStabilizer", "chroma_flicker", "cut_score", "estimate_shift", "shift_image"]

_BLOCK = 8  # block size (render-size pixels) for the cut test's block means
_BLOCK_CHANGE = 8.0  # L units: a block whose mean moved more than this changed
_SHIFT_GAIN = 0.75  # a shift must bring the median block error below this fraction of no motion's


def _check_gray(gray: np.ndarray) -> np.ndarray:
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or gray.shape[0] < 1 or gray.shape[1] < 1:
        raise ValueError(f"gray must have shape (h, w), got {gray.shape}")
    return gray


def estimate_shift(prev: np.ndarray, cur: np.ndarray, max_frac: float = 0.25, candidates: int = 8) -> tuple[int, int]:
    """Integer ``(dy, dx)`` with ``cur[y, x] ~ prev[y - dy, x - dx]``: the global motion between two gray
    frames ``(h, w)`` (a pan, gate weave).

    The ``candidates`` highest peaks of the phase correlation (Hann window) are tried; the one that moves
    ``prev`` onto ``cur`` with the smallest median error over 8x8 blocks wins (so objects moving across a still
    background, a minority of the blocks, do not drag the whole picture), if that error is under 3/4 of the
    error without motion: on weak texture a guess would do more harm than no shift. Shifts beyond ``max_frac``
    of the frame are not considered."""
    prev, cur = _check_gray(prev), _check_gray(cur)
    if prev.shape != cur.shape:
        raise ValueError(f"frames differ in shape: {prev.shape} vs {cur.shape}")
    h, w = cur.shape
    if h < 4 or w < 4:
        return 0, 0
    win = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    fa = np.fft.rfft2((prev - prev.mean()) * win)
    fb = np.fft.rfft2((cur - cur.mean()) * win)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-6
    corr = np.fft.irfft2(cross, s=(h, w)).ravel()
    tried: list[tuple[int, int]] = [(0, 0)]
    for i in np.argpartition(corr, -candidates)[-candidates:] if corr.size > candidates else range(corr.size):
        dy, dx = divmod(int(i), w)
        dy, dx = (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)
        if abs(dy) <= max_frac * h and abs(dx) <= max_frac * w and (dy, dx) not in tried:
            tried.append((dy, dx))

    def cost(shift: tuple[int, int]) -> float:
        moved, valid = shift_image(prev, *shift)
        err, ok = _block_means(np.abs(cur - moved), valid)
        return float(np.median(err[ok])) if ok.any() else float("inf")

    still = cost((0, 0))
    best = min(tried[1:], key=cost, default=(0, 0))
    return best if best != (0, 0) and cost(best) < _SHIFT_GAIN * still else (0, 0)


def shift_image(img: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``img`` ``(..., h, w)`` moved by ``(dy, dx)`` pixels (``out[..., y, x] = img[..., y - dy, x - dx]``) and
    the ``(h, w)`` mask of pixels that came from inside the image (uncovered borders repeat the edge)."""
    h, w = img.shape[-2:]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    out = img[..., ys, :][..., xs]
    valid = np.zeros((h, w), bool)
    valid[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)] = True
    return out, valid


def _block_means(gray: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``_BLOCK`` x ``_BLOCK`` blocks (the frame cropped to whole blocks, at least one block) and the
    blocks that lie fully inside ``valid``."""
    h, w = gray.shape
    b = max(1, min(_BLOCK, h, w))
    hh, ww = h // b * b, w // b * b
    means = gray[:hh, :ww].reshape(hh // b, b, ww // b, b).mean(axis=(1, 3))
    if valid is None:
        return means, np.ones_like(means, bool)
    ok = valid[:hh, :ww].reshape(hh // b, b, ww // b, b).all(axis=(1, 3))
    return means, ok


def cut_score(prev: np.ndarray, cur: np.ndarray, shift: tuple[int, int] = (0, 0)) -> float:
    """How different gray frame ``cur`` is from ``prev`` (both ``(h, w)``, L in [0, 100]), from 0 (the same
    picture) to 1, comparing 8x8 block means after moving ``prev`` by ``shift`` and taking out the median
    change of lightness (so that exposure flicker, fades and pans count little): the larger of

    - the fraction of blocks whose mean changed by more than ``_BLOCK_CHANGE`` L units, and
    - ``2/3 * (1 - r)``, ``r`` the correlation of the block means (counted when both frames have structure,
      block spread over 2 L units, and differ by more than 3 L units on average): a new picture can have
      the old one's tones but not its layout.
    """
    prev, cur = _check_gray(prev), _check_gray(cur)
    moved, valid = shift_image(prev, *shift)
    a, ok = _block_means(moved, valid)
    b, _ = _block_means(cur)
    if ok.sum() >= 4:
        a, b = a[ok], b[ok]
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    diff = np.abs(b - a - float(np.median(b - a)))  # the median offset: exposure, not a large new object
    changed = float((diff > _BLOCK_CHANGE).mean())
    if a.std() < 2 or b.std() < 2 or diff.mean() < 3:
        return changed
    da, db = a - a.mean(), b - b.mean()
    r = float((da * db).sum() / np.sqrt((da * da).sum() * (db * db).sum()))
    return max(changed, 2 / 3 * (1 - r))


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 box filter with edge padding, ``(h, w)`` -> ``(h, w)``."""
    p = np.pad(x, 1, mode="edge")
    h, w = x.shape
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += p[i : i + h, j : j + w]
    return out / 9


class ChromaStabilizer:
    """Smooths predicted chroma across the frames of a film, one frame at a time (see the module docstring).

    ``stabilizer(gray, ab)`` takes the frame's lightness ``(h, w)`` (L in [0, 100]) and the network's chroma
    ``(2, h, w)`` at render size, and returns ``(chroma (2, h, w), is_key_frame)``; the first frame and the
    first frame after a cut are key frames. ``stability`` in [0, 1] is the weight of the carried colour
    where the picture is still (0 = frame by frame).
    """

    def __init__(self, stability: float = 0.9, still_tolerance: float = 4.0, cut_threshold: float = 0.4) -> None:
        if not 0 <= stability <= 1:
            raise ValueError(f"stability must be in [0, 1], got {stability}")
        if still_tolerance <= 0:
            raise ValueError(f"still_tolerance must be positive, got {still_tolerance}")
        self.stability, self.still_tolerance = float(stability), float(still_tolerance)
        self.cut_threshold = float(cut_threshold)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frames: the next frame is a key frame."""
        self.prev_gray: np.ndarray | None = None
        self.carried: np.ndarray | None = None

    def is_cut(self, prev: np.ndarray, cur: np.ndarray, shift: tuple[int, int] = (0, 0)) -> bool:
        """Whether ``cur`` starts a new scene after ``prev`` (gray frames ``(h, w)``)."""
        return cut_score(prev, cur, shift) > self.cut_threshold

    def __call__(self, gray: np.ndarray, ab: np.ndarray) -> tuple[np.ndarray, bool]:
        gray = _check_gray(gray)
        ab = np.asarray(ab, dtype=np.float32)
        if ab.shape != (2, *gray.shape):
            raise ValueError(f"ab must have shape (2, {gray.shape[0]}, {gray.shape[1]}), got {ab.shape}")
        prev = self.prev_gray
        if prev is None or prev.shape != gray.shape or self.carried is None:
            key = True
        else:
            shift = estimate_shift(prev, gray)
            key = self.is_cut(prev, gray, shift)
        if key or self.stability == 0:
            out = ab.copy()
        else:  # carried where this pixel's lightness did not change (beyond the frame's exposure change)
            change = _box3(np.abs(gray - prev - float(np.median(gray - prev))))
            still = np.clip(2.0 - change / self.still_tolerance, 0.0, 1.0)
            out = ab + (self.stability * still).astype(np.float32) * (self.carried - ab)
        self.prev_gray, self.carried = gray.copy(), out.astype(np.float32)
        return out, key

    def state_dict(self) -> dict[str, np.ndarray]:
        """The state to continue from (arrays only; empty before the first frame)."""
        if self.prev_gray is None or self.carried is None:
            return {}
        return {"prev_gray": self.prev_gray.copy(), "carried": self.carried.copy()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state_dict`'s arrays (an empty dict resets)."""
        if not state:
            self.reset()
            return
        gray = _check_gray(state["prev_gray"])
        carried = np.asarray(state["carried"], dtype=np.float32)
        if carried.shape != (2, *gray.shape):
            raise ValueError(f"carried chroma has shape {carried.shape}, expected (2, *{gray.shape})")
        self.prev_gray, self.carried = gray.copy(), carried.copy()


def chroma_flicker(frames_lab: Iterable[np.ndarray], tolerance: float = 1.0,
                   lightness: Iterable[np.ndarray] | None = None, skip: Container[int] = ()) -> float:
    """Mean ``|delta ab|`` (Euclidean, Lab units) between consecutive frames, over the pixels whose lightness
    changes by less than ``tolerance`` L units: the flicker a viewer sees where the picture is still.

    ``frames_lab`` yields Lab frames ``(3, H, W)``; ``lightness`` optionally yields the L planes ``(H, W)`` to
    judge stillness by (e.g. the clean source of a grainy clip), else the frames' own L is used. Pairs
    ``(t - 1, t)`` with ``t`` in ``skip`` (scene cuts) are left out. Returns 0.0 when no pixel was still.
    """
    light_iter = iter(lightness) if lightness is not None else None
    prev_ab = prev_l = None
    total, count = 0.0, 0
    for t, lab in enumerate(frames_lab):
        lab = np.asarray(lab, dtype=np.float64)
        light = np.asarray(next(light_iter), dtype=np.float64) if light_iter is not None else lab[0]
        if prev_ab is not None and t not in skip:
            still = np.abs(light - prev_l) < tolerance
            if still.any():
                d = np.sqrt(((lab[1:] - prev_ab) ** 2).sum(axis=0))
                total += float(d[still].sum())
                count += int(still.sum())
        prev_ab, prev_l = lab[1:], light
    return total / count if count else 0.0
