"""The GAN phase's scoring rules and held-out photos (the callbacks themselves run in test_nogan.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from colorkit.evaluate import evaluation_crop
from colorkit.gan_callbacks import EvalSet, check_divergence, evaluate_generator, load_eval_set, nogan_score
from colorkit.io import load_image

SIZE = 32


def test_eval_set_is_cropped_as_colorkit_evaluate_crops(photo_dir):
    photos = photo_dir
    es = load_eval_set(photos, size=SIZE, n=3, seed=0)
    assert len(es) == 3 and es.color.shape == (3, 3, SIZE, SIZE)
    for path, color in zip(es.paths, es.color, strict=True):
        want = torch.from_numpy(np.asarray(evaluation_crop(load_image(path), SIZE)).copy())
        torch.testing.assert_close(color, want.permute(2, 0, 1).float() / 255)
    # the same seed picks the same photos; a larger sample keeps them
    assert load_eval_set(photos, size=SIZE, n=3, seed=0).paths == es.paths
    assert set(es.paths) < set(load_eval_set(photos, size=SIZE, n=5, seed=0).paths)


def test_nogan_score_wants_a_smaller_gap_within_the_psnr_budget():
    start = {"psnr": 24.0, "colorfulness_gap": 10.0}
    assert nogan_score({"psnr": 23.6, "colorfulness_gap": 6.0}, start) > nogan_score(start, start)
    assert nogan_score({"psnr": 23.4, "colorfulness_gap": 1.0}, start) == -math.inf  # lost 0.6 dB
    assert nogan_score({"psnr": 23.4, "colorfulness_gap": 1.0}, start, max_psnr_drop=1.0) == -1.0
    assert nogan_score({"psnr": float("nan"), "colorfulness_gap": 1.0}, start) == -math.inf
    with pytest.raises(KeyError, match="psnr"):
        nogan_score({"colorfulness_gap": 1.0}, start)


def test_check_divergence_flags_flat_exploding_saturated_and_nan():
    start = {"psnr": 22.0, "colorfulness": 20.0, "colorfulness_target": 30.0, "output_std": 0.2,
             "saturated": 0.02}
    assert check_divergence(dict(start, colorfulness=35.0), start) is None
    assert "flat" in check_divergence(dict(start, output_std=0.01), start)
    assert "exploded" in check_divergence(dict(start, colorfulness=120.0), start)
    assert "saturated" in check_divergence(dict(start, saturated=0.7), start)
    assert "non-finite" in check_divergence(dict(start, colorfulness=float("nan")), start)
    assert check_divergence(dict(start, psnr=float("inf")), start) is None  # a perfect image is not NaN


def test_evaluate_generator_on_held_out_photos(photo_dir):
    es = load_eval_set(photo_dir, size=SIZE, n=5, seed=0)
    assert isinstance(es, EvalSet) and len(es) == 5 and es.gray.shape == (5, 3, SIZE, SIZE)

    class Oracle(nn.Module):  # returns the true colours: infinite PSNR, zero gap
        def forward(self, x):
            return es.color[: x.shape[0]]

    m = evaluate_generator(Oracle(), es, bs=8)
    assert m["psnr"] == math.inf and m["colorfulness_gap"] == pytest.approx(0, abs=1e-6)
    assert m["colorfulness_target"] > 5 and m["output_std"] > 0.05
