"""Colour classes: ab bins, nearest-bin encoding, annealed mean, rebalancing, and the class-loss callback."""

import math

import pytest
import torch

from colorkit import colorize_dls, colorize_learner, load_colorizer, save_colorizer
from colorkit.color import lab_to_rgb
from colorkit.colorclass import ColorClassLoss, ab_bins, ab_to_bin, annealed_mean, bin_prior, rebalance_weights
from colorkit.models import ColorizerNet, GeneratorConfig


def test_bins_are_in_gamut_grid_points():
    c = ab_bins(10)
    assert c.shape == (222, 2)
    assert torch.all(torch.remainder(c, 10) == 0) and c.abs().max() <= 110
    assert (c == 0).all(dim=1).any()  # gray is a bin
    # far out-of-gamut corners are not bins
    assert not ((c[:, 0] == -110) & (c[:, 1] == 110)).any()


def test_nearest_bin_round_trip():
    c = ab_bins(10)
    ab = c.T.reshape(1, 2, 1, -1)  # every centre maps to itself
    assert torch.equal(ab_to_bin(ab)[0, 0], torch.arange(len(c)))
    near = ab + torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)
    assert torch.equal(ab_to_bin(near)[0, 0], torch.arange(len(c)))
    far = torch.full((1, 2, 1, 1), 500.0)  # out of range: clamped to a valid bin
    assert 0 <= int(ab_to_bin(far)) < len(c)


def test_annealed_mean_between_mean_and_mode():
    c = ab_bins(10)
    logits = torch.full((1, len(c), 1, 1), -10.0)
    red = int(ab_to_bin(torch.tensor([40.0, 30.0]).view(1, 2, 1, 1)))
    gray = int(ab_to_bin(torch.zeros(1, 2, 1, 1)))
    logits[0, red], logits[0, gray] = 2.0, 1.5
    chroma = [float(annealed_mean(logits, c, t).norm()) for t in (1.0, 0.38, 0.05)]
    assert chroma[0] < chroma[1] < chroma[2] <= math.hypot(40, 30) + 1e-3
    with pytest.raises(ValueError, match="temperature"):
        annealed_mean(logits, c, 0)


def test_rebalance_weights_favour_rare_bins():
    ab = torch.zeros(1, 2, 8, 8)
    ab[..., :2] = torch.tensor([60.0, 60.0]).view(1, 2, 1, 1)  # a quarter of the pixels are orange
    prior = bin_prior(ab)
    assert torch.isclose(prior.sum(), torch.tensor(1.0))
    w = rebalance_weights(prior, lam=0.5)
    gray, orange = int(ab_to_bin(torch.zeros(1, 2, 1, 1))), int(ab_to_bin(torch.full((1, 2, 1, 1), 60.0)))
    assert w[orange] > w[gray] > 0
    assert float(rebalance_weights(prior, lam=1.0).std()) < 1e-5  # lambda 1: uniform weights


def test_class_head_model_decodes_with_its_temperature():
    cfg = GeneratorConfig("resnet18", "lab", chroma_head="classes", temperature=0.5)
    assert cfg.n_out == 222 and cfg.y_range is None
    with pytest.raises(ValueError, match="lab"):
        GeneratorConfig("resnet18", "rgb", chroma_head="classes")


def test_class_loss_trains_saves_and_reloads(photo_dir, tmp_path):
    torch.manual_seed(0)
    dls = colorize_dls(photo_dir, size=32, bs=4)
    learn = colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1", class_weight=0.1, rebalance=0.5,
                             temperature=0.3)
    cb = next(c for c in learn.cbs if isinstance(c, ColorClassLoss))
    assert learn.loss_func.rebalance == 0  # rebalance goes to the class term, not to the L1 loss as well
    learn.fit(1, 1e-3)
    assert cb.last_ce is not None and cb.last_ce > 0 and cb.class_weights is not None
    assert not learn.model.return_logits  # switched off after fitting
    x, _ = dls.one_batch()
    learn.model.eval()
    out = learn.model(x)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    save_colorizer(learn, tmp_path / "m", half=False)
    clr = load_colorizer(tmp_path / "m")
    assert isinstance(clr.model, ColorizerNet) and clr.model.chroma_head == "classes"
    assert clr.model.temperature == pytest.approx(0.3)
    torch.testing.assert_close(clr.model(x), out)


def test_class_loss_needs_a_class_head(photo_dir):
    dls = colorize_dls(photo_dir, size=32, bs=4)
    learn = colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1", cbs=[ColorClassLoss(1.0)])
    with pytest.raises(ValueError, match="class head"):
        learn.fit(1, 1e-3)


def test_class_loss_rejects_bad_settings():
    for kw in ({"weight": -1}, {"rebalance": 2}, {"pool": 0}):
        with pytest.raises(ValueError):
            ColorClassLoss(**kw)


def test_lab_to_rgb_of_bins_is_finite():
    c = ab_bins(10)
    lab = torch.cat([torch.full((len(c), 1), 60.0), c], dim=1).T.reshape(1, 3, 1, -1)
    assert torch.isfinite(lab_to_rgb(lab)).all()
