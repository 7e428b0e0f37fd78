"""colorkit.video_stabilize: motion, cuts, carrying chroma where the picture is still, the flicker measure."""

from __future__ import annotations

import numpy as np
import pytest

from colorkit.video_stabilize import ChromaStabilizer, chroma_flicker, cut_score, estimate_shift, shift_image

H, W = 48, 64


def texture(seed: int) -> np.ndarray:
    """Smooth random lightness (h, w) in [0, 100]: blobs a few pixels wide."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 100, (H // 4 + 1, W // 4 + 1))
    big = np.kron(small, np.ones((4, 4)))[:H, :W]
    for _ in range(2):  # soften the block edges
        big = (big + np.roll(big, 1, 0) + np.roll(big, 1, 1) + np.roll(big, -1, 0) + np.roll(big, -1, 1)) / 5
    return big.astype(np.float32)


def flat_ab(a: float, b: float) -> np.ndarray:
    return np.stack([np.full((H, W), a), np.full((H, W), b)]).astype(np.float32)


def noisy_predictions(n: int, seed: int = 0) -> list[np.ndarray]:
    """Per-frame chroma as a flickering network gives it: a fixed colour plus a random offset per frame."""
    rng = np.random.default_rng(seed)
    return [flat_ab(10 + rng.normal(0, 6), -5 + rng.normal(0, 6)) for _ in range(n)]


def mean_step(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:], strict=False)]))


def test_shift_image_and_estimate_shift():
    base = texture(0)
    moved, valid = shift_image(base, 3, -2)
    assert np.array_equal(moved[3:, :-2], base[:-3, 2:]) and valid[3:, :-2].all() and not valid[:3].any()
    assert estimate_shift(base, moved) == (3, -2)
    assert estimate_shift(base, base) == (0, 0)
    flat = np.full((H, W), 50, np.float32)
    assert estimate_shift(flat, flat) == (0, 0)


def test_cut_score_tells_a_new_scene_from_the_same_one():
    base = texture(0)
    moved, _ = shift_image(base, 2, 3)
    assert cut_score(base, moved, (2, 3)) == 0.0
    assert cut_score(base, base * 0.9 + 8) < 0.1  # exposure flicker: same scene
    assert cut_score(base, texture(1)) > 0.6
    flat = np.full((H, W), 50, np.float32)
    assert cut_score(flat, flat - 30) == 0.0  # a fade
    coat = base.copy()
    coat[:, : W // 3] = 20  # a dark coat fills a third of the picture: a big change, not a new scene
    assert 0.2 < cut_score(base, coat) < 0.4


def test_stability_zero_is_frame_by_frame():
    stab = ChromaStabilizer(stability=0)
    base = texture(0)
    for ab in noisy_predictions(5):
        out, _ = stab(base, ab)
        assert np.array_equal(out, ab)


def test_still_scene_flicker_is_more_than_halved():
    base = texture(0)
    preds = noisy_predictions(30)
    rng = np.random.default_rng(1)
    stab = ChromaStabilizer(stability=0.8)
    outs, keys = [], []
    for ab in preds:
        grain = rng.normal(0, 0.5, base.shape).astype(np.float32)
        out, key = stab(base + grain, ab)
        outs.append(out)
        keys.append(key)
    assert keys[0] and not any(keys[1:])
    assert mean_step(outs) < 0.5 * mean_step(preds)
    # the carried colour is an average of the predictions, not a drift away from them
    assert np.abs(np.mean(outs[10:], axis=0) - np.mean(preds[10:], axis=0)).mean() < 3


def test_a_pan_is_not_a_cut_and_moving_texture_keeps_its_prediction():
    base = texture(0)
    stab = ChromaStabilizer(stability=0.9)
    for t in range(6):
        gray, _ = shift_image(base, 0, 2 * t)
        ab = flat_ab(10 * t, 0)
        out, key = stab(gray, ab)
        assert key == (t == 0)
    changed = np.abs(gray - shift_image(base, 0, 8)[0]) > 6
    moved = changed.copy()  # textured pixels whose lightness changed with the pan, and their 8 neighbours
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            moved &= np.roll(changed, (dy, dx), axis=(0, 1))
    assert moved[1:-1, 1:-1].mean() > 0.1 and np.allclose(out[0][1:-1, 1:-1][moved[1:-1, 1:-1]], 50)


def test_moving_object_keeps_its_own_prediction():
    base = texture(0)
    stab = ChromaStabilizer(stability=0.9)
    stab(base, flat_ab(20, 20))
    frame = base.copy()
    frame[10:20, 10:20] = 100 - frame[10:20, 10:20]  # something changed there
    frame[10:20, 10:20] += 50
    out, key = stab(frame, flat_ab(-20, 0))
    assert not key
    assert np.allclose(out[:, 13:17, 13:17], flat_ab(-20, 0)[:, 13:17, 13:17])  # fresh where it changed
    assert out[0, 30:, 30:].mean() == pytest.approx(0.9 * 20 + 0.1 * -20, abs=0.1)  # carried where still
    flicker = base * 0.9 + 6  # exposure flicker: the whole frame darker, nothing moved
    out, key = stab(flicker, flat_ab(-20, 0))
    assert not key and out[0].mean() > 0


def test_cut_resets_the_colour():
    """After a cut nothing is carried, not even where the lightness happens to be the same as before."""
    a, b = texture(0), texture(1)
    a[:, : W // 4] = b[:, : W // 4] = 30  # the same dark border in both scenes
    stab = ChromaStabilizer(stability=0.9)
    for _ in range(5):
        stab(a, flat_ab(25, 25))
    out, key = stab(b, flat_ab(-25, 0))
    assert key
    assert np.array_equal(out, flat_ab(-25, 0))
    out, key = stab(b, flat_ab(-15, 0))  # within the new scene, carrying starts again
    assert not key and out[0, :, : W // 4].mean() == pytest.approx(0.9 * -25 + 0.1 * -15, abs=0.1)


def test_state_round_trip_continues_exactly():
    frames = [shift_image(texture(0), 0, t)[0] for t in range(8)]
    preds = noisy_predictions(8)
    whole = ChromaStabilizer(0.8)
    expected = [whole(g, ab)[0] for g, ab in zip(frames, preds, strict=True)]
    first = ChromaStabilizer(0.8)
    for g, ab in zip(frames[:4], preds[:4], strict=True):
        first(g, ab)
    second = ChromaStabilizer(0.8)
    second.load_state_dict({k: v.copy() for k, v in first.state_dict().items()})
    rest = [second(g, ab)[0] for g, ab in zip(frames[4:], preds[4:], strict=True)]
    for e, r in zip(expected[4:], rest, strict=True):
        assert np.array_equal(e, r)
    assert ChromaStabilizer().state_dict() == {}


def test_bad_arguments():
    with pytest.raises(ValueError, match="stability"):
        ChromaStabilizer(stability=1.5)
    stab = ChromaStabilizer()
    with pytest.raises(ValueError, match="ab must have shape"):
        stab(texture(0), np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="gray must have shape"):
        stab(np.zeros((3, H, W)), flat_ab(0, 0))


def test_chroma_flicker_measures_change_where_still():
    lab = [np.concatenate([np.full((1, H, W), 50.0), flat_ab(v, 0)]) for v in (0, 4, 0, 4)]
    assert chroma_flicker(lab) == pytest.approx(4.0)
    assert chroma_flicker(lab, skip={1, 2, 3}) == 0.0
    moving = [x.copy() for x in lab]
    for t, x in enumerate(moving):
        x[0] += 10 * t  # everything's lightness changes: nothing is still
    assert chroma_flicker(moving) == 0.0
    # stillness judged from a separate clean lightness (e.g. the source without grain)
    assert chroma_flicker(moving, lightness=[np.full((H, W), 50.0)] * 4) == pytest.approx(4.0)
