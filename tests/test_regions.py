"""Which colour where: region masks from the truth, hue hits of the prediction, the per-epoch tracker."""

import json

import torch

from colorkit import colorize_dls, colorize_learner
from colorkit.color import lab_to_rgb
from colorkit.regions import RegionHueTracker, fixed_photos, region_hues, region_masks


def _lab_image(top_ab, bottom_ab, L=(70.0, 45.0)):
    lab = torch.zeros(1, 3, 8, 8)
    lab[:, 0, :4], lab[:, 0, 4:] = L
    lab[:, 1:, :4] = torch.tensor(top_ab).view(1, 2, 1, 1)
    lab[:, 1:, 4:] = torch.tensor(bottom_ab).view(1, 2, 1, 1)
    return lab


def test_masks_find_sky_and_vegetation():
    m = region_masks(_lab_image((0.0, -30.0), (-30.0, 25.0)))
    assert m["sky"][0, :4].all() and not m["sky"][0, 4:].any()
    assert m["vegetation"][0, 4:].all() and not m["vegetation"][0, :4].any()


def test_hits_right_wrong_and_gray():
    truth = lab_to_rgb(_lab_image((0.0, -30.0), (-30.0, 25.0)))
    right = region_hues(truth, truth)
    assert right["sky_hit"] == 1 and right["vegetation_hit"] == 1
    swapped = lab_to_rgb(_lab_image((-30.0, 25.0), (0.0, -30.0)))
    wrong = region_hues(swapped, truth)
    assert wrong["sky_hit"] == 0 and wrong["vegetation_hit"] == 0
    gray = lab_to_rgb(_lab_image((0.0, 0.0), (0.0, 0.0)))
    g = region_hues(gray, truth)
    assert g["sky_hit"] == 0 and g["sky_chroma"] < 1 and g["sky_true_chroma"] > 25
    assert "skin_hit" not in g  # no skin pixels in the truth


def test_tracker_logs_every_epoch(photo_dir, tmp_path):
    photos = fixed_photos(sorted(photo_dir.glob("*.jpg"))[:3], size=32)
    assert photos.shape == (3, 3, 32, 32)
    dls = colorize_dls(photo_dir, size=32, bs=4)
    log = tmp_path / "track.jsonl"
    learn = colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1", class_weight=0.1,
                             cbs=[RegionHueTracker(photos, log)])
    learn.fit(2, 1e-3)
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [0, 1]
    assert all(r["ciede2000"] > 0 and r["true_colorfulness"] > 0 for r in recs)
