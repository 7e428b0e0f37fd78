"""Tests for colorkit.metrics: reference values from scikit-image and hand computations."""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner, Metric
from fastai.torch_core import TensorImage
from skimage import color as skcolor
from skimage import metrics as skmetrics
from torch import nn
from torch.utils.data import TensorDataset

from colorkit.metrics import (
    CIEDE2000Metric,
    ColorfulnessGap,
    PSNRMetric,
    SSIMMetric,
    ab_error,
    ciede2000,
    colorfulness,
    colorfulness_gap,
    colorize_metrics,
    delta_e_ciede2000,
    fid,
    fid_available,
    frechet_distance,
    inception_features,
    lpips_available,
    psnr,
    score_batch,
    ssim,
    summarize,
)


def rand_pair(*shape: int, noise: float = 0.1, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(*shape, generator=g, dtype=dtype)
    targ = (pred + noise * torch.randn(*shape, generator=g, dtype=dtype)).clamp(0, 1)
    return pred, targ


def hwc(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) array, as scikit-image wants."""
    return x.permute(1, 2, 0).numpy()


def two_colour(c1, c2, h: int = 4, w: int = 6) -> torch.Tensor:
    """(1, 3, h, w): left half colour c1, right half c2 (RGB in [0, 1])."""
    img = torch.empty(1, 3, h, w)
    img[0, :, :, : w // 2] = torch.tensor(c1, dtype=torch.float32).view(3, 1, 1)
    img[0, :, :, w // 2 :] = torch.tensor(c2, dtype=torch.float32).view(3, 1, 1)
    return img


# hand computation for a half red (255, 0, 0), half blue (0, 0, 255) image:
# rg = 255 | 0 -> mean 127.5, std 127.5;  yb = 127.5 | -255 -> mean -63.75, std 191.25
RED_BLUE_CF = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)


class TestColorfulness:
    def test_two_colour_image_by_hand(self):
        cf = colorfulness(two_colour((1, 0, 0), (0, 0, 1)))
        assert cf.shape == (1,)
        assert cf.item() == pytest.approx(RED_BLUE_CF, rel=1e-5)

    def test_single_colour_has_no_spread(self):
        # a flat yellow image: rg = 0, yb = 255 -> CF = 0.3 * 255
        cf = colorfulness(two_colour((1, 1, 0), (1, 1, 0)))
        assert cf.item() == pytest.approx(0.3 * 255, rel=1e-5)

    def test_gray_is_zero(self):
        gray = torch.rand(3, 1, 8, 8).expand(3, 3, 8, 8)
        torch.testing.assert_close(colorfulness(gray), torch.zeros(3))

    def test_per_image_and_ordering(self):
        x = torch.rand(1, 3, 8, 8)
        muted = 0.5 + 0.2 * (x - 0.5)
        cf = colorfulness(torch.cat([x, muted]))
        assert cf.shape == (2,) and cf[0] > cf[1] > 0

    def test_gap_is_corpus_level(self):
        colourful = two_colour((1, 0, 0), (0, 0, 1))
        gray = torch.full((1, 3, 4, 6), 0.5)
        # pred: one colourful + one gray (mean CF/2); targ: three colourful (mean CF)
        gap = colorfulness_gap(torch.cat([colourful, gray]), colourful.expand(3, 3, 4, 6))
        assert gap == pytest.approx(RED_BLUE_CF / 2, rel=1e-5)

    def test_bad_shape_names_it(self):
        with pytest.raises(ValueError, match=r"\(3, 8, 8\).*unsqueeze"):
            colorfulness(torch.rand(3, 8, 8))
        with pytest.raises(TypeError, match="ndarray"):
            colorfulness(np.zeros((1, 3, 8, 8)))


class TestPSNR:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_matches_skimage(self, dtype):
        pred, targ = rand_pair(3, 3, 10, 12, dtype=dtype)
        out = psnr(pred, targ)
        assert out.shape == (3,) and out.dtype == dtype
        ref = [
            skmetrics.peak_signal_noise_ratio(targ[i].numpy(), pred[i].numpy(), data_range=1.0)
            for i in range(3)
        ]
        torch.testing.assert_close(out, torch.tensor(ref, dtype=dtype), atol=1e-4, rtol=1e-5)

    def test_known_value_and_data_range(self):
        targ = torch.full((1, 3, 4, 4), 0.5)
        assert psnr(targ + 0.1, targ).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
        assert psnr(255 * (targ + 0.1), 255 * targ, data_range=255.0).item() == pytest.approx(20.0, abs=1e-4)

    def test_identical_is_inf(self):
        x = torch.rand(2, 3, 5, 5)
        assert torch.isinf(psnr(x, x)).all()

    def test_shape_mismatch_names_shapes(self):
        with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\).*\(1, 3, 4, 5\)"):
            psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))


def sk_ssim(pred: torch.Tensor, targ: torch.Tensor, **kw) -> list[float]:
    return [
        skmetrics.structural_similarity(
            hwc(p),
            hwc(t),
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            **kw,
        )
        for p, t in zip(pred, targ, strict=True)
    ]


class TestSSIM:
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("hw", [(24, 20), (11, 11), (16, 40)])
    def test_matches_skimage(self, hw, dtype):
        pred, targ = rand_pair(2, 3, *hw, noise=0.2, dtype=dtype)
        out = ssim(pred, targ)
        assert out.shape == (2,) and out.dtype == dtype
        torch.testing.assert_close(out, torch.tensor(sk_ssim(pred, targ), dtype=dtype), atol=1e-3, rtol=0)

    def test_smooth_images(self, photo_dir: Path):
        from PIL import Image

        files = sorted(photo_dir.glob("*.png"))[:2]
        targ = torch.stack([torch.from_numpy(np.array(Image.open(f).resize((32, 24)))) for f in files])
        targ = targ.permute(0, 3, 1, 2).float() / 255
        pred = (targ + 0.05 * torch.randn_like(targ)).clamp(0, 1)
        torch.testing.assert_close(ssim(pred, targ), torch.tensor(sk_ssim(pred, targ)), atol=1e-3, rtol=0)

    @pytest.mark.parametrize("hw,win", [((7, 9), 7), ((10, 30), 9), ((4, 12), 3)])
    def test_smaller_than_window(self, hw, win):
        # skimage refuses images under 11 px by default; we crop less, as skimage with win_size=win
        pred, targ = rand_pair(2, 3, *hw, noise=0.2)
        with pytest.raises(ValueError):
            sk_ssim(pred, targ)
        torch.testing.assert_close(
            ssim(pred, targ), torch.tensor(sk_ssim(pred, targ, win_size=win)), atol=1e-3, rtol=0
        )

    def test_tiny_image_is_finite(self):
        pred, targ = rand_pair(1, 3, 2, 2)
        assert torch.isfinite(ssim(pred, targ)).all()

    def test_identical_is_one_and_noise_lowers_it(self):
        x = torch.rand(2, 3, 16, 16)
        torch.testing.assert_close(ssim(x, x), torch.ones(2))
        a = ssim(x, (x + 0.05 * torch.randn_like(x)).clamp(0, 1))
        b = ssim(x, (x + 0.3 * torch.randn_like(x)).clamp(0, 1))
        assert (a < 1).all() and (b < a).all()


def random_lab(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(3, 1, n, generator=g, dtype=torch.float64)
    return torch.stack([100 * u[0], 200 * u[1] - 100, 200 * u[2] - 100])  # (3, 1, n)


def sk_de(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(skcolor.deltaE_ciede2000(lab1.numpy(), lab2.numpy(), channel_axis=-3))


class TestCIEDE2000:
    def test_delta_e_matches_skimage_random(self):
        lab1, lab2 = random_lab(200, seed=1), random_lab(200, seed=2)
        torch.testing.assert_close(delta_e_ciede2000(lab1, lab2), sk_de(lab1, lab2), atol=1e-6, rtol=1e-6)

    def test_delta_e_special_cases(self):
        # gray vs gray, gray vs colour (zero chroma), hue wrap-around near 0/360 degrees, blue region
        pairs = [
            ([50, 0, 0], [60, 0, 0]),
            ([50, 0, 0], [50, 20, -5]),
            ([60, 30, -1], [60, 30, 1]),
            ([60, -30, -1], [60, -30, 1]),
            ([40, 10, -40], [45, 5, -45]),
            ([50, 2.5, 0], [50, 0, -2.5]),
            ([70, 0.1, 0.1], [70, -0.1, -0.1]),
        ]
        lab1 = torch.tensor([p[0] for p in pairs], dtype=torch.float64).T.reshape(3, 1, -1)
        lab2 = torch.tensor([p[1] for p in pairs], dtype=torch.float64).T.reshape(3, 1, -1)
        torch.testing.assert_close(delta_e_ciede2000(lab1, lab2), sk_de(lab1, lab2), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(delta_e_ciede2000(lab2, lab1), sk_de(lab1, lab2), atol=1e-6, rtol=1e-6)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_image_mean_matches_skimage(self, dtype):
        pred, targ = rand_pair(2, 3, 8, 10, noise=0.2, dtype=dtype)
        out = ciede2000(pred, targ)
        assert out.shape == (2,) and out.dtype == dtype
        ref = [
            skcolor.deltaE_ciede2000(
                skcolor.rgb2lab(hwc(p.double())), skcolor.rgb2lab(hwc(t.double()))
            ).mean()
            for p, t in zip(pred, targ, strict=True)
        ]
        torch.testing.assert_close(out, torch.tensor(ref, dtype=dtype), atol=1e-3, rtol=0)

    def test_identical_is_zero(self):
        x = torch.rand(2, 3, 6, 6)
        torch.testing.assert_close(ciede2000(x, x), torch.zeros(2))

    def test_shape_errors(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
            delta_e_ciede2000(torch.rand(2, 3, 4), torch.rand(2, 3, 4))


class TestAbError:
    def test_matches_lab_distance(self):
        pred, targ = rand_pair(2, 3, 6, 7, noise=0.3, dtype=torch.float64)
        lab_p = skcolor.rgb2lab(pred.numpy(), channel_axis=1)
        lab_t = skcolor.rgb2lab(targ.numpy(), channel_axis=1)
        ref = np.hypot(lab_p[:, 1] - lab_t[:, 1], lab_p[:, 2] - lab_t[:, 2]).mean(axis=(1, 2))
        torch.testing.assert_close(ab_error(pred, targ), torch.from_numpy(ref), atol=1e-3, rtol=0)

    def test_identical_and_lightness_only(self):
        x = torch.rand(2, 3, 5, 5)
        torch.testing.assert_close(ab_error(x, x), torch.zeros(2))
        dark, light = torch.full((1, 3, 4, 4), 0.2), torch.full((1, 3, 4, 4), 0.8)
        assert ab_error(dark, light).item() < 0.01 < ciede2000(dark, light).item()


class TestScoreBatch:
    def test_keys_and_lengths(self):
        pred, targ = rand_pair(3, 3, 12, 12)
        scores = score_batch(pred, targ)
        keys = {"psnr", "ssim", "ciede2000", "ab_error", "colorfulness", "colorfulness_target"}
        assert set(scores) == keys
        assert all(len(v) == 3 and all(isinstance(f, float) for f in v) for v in scores.values())
        assert scores["psnr"] == pytest.approx(psnr(pred, targ).tolist())

    def test_summarize(self):
        pred, targ = rand_pair(3, 3, 12, 12)
        s = summarize(pred, targ)
        assert s["ssim"] == pytest.approx(ssim(pred, targ).mean().item(), rel=1e-5)
        assert s["colorfulness_gap"] == pytest.approx(colorfulness_gap(pred, targ), rel=1e-4)


def fake_learn(pred: torch.Tensor, y: torch.Tensor) -> SimpleNamespace:
    return SimpleNamespace(pred=pred, y=y)


class TestMetricWrappers:
    def test_colorfulness_gap_accumulates_corpus_level(self):
        colourful = two_colour((1, 0, 0), (0, 0, 1))
        gray = torch.full((1, 3, 4, 6), 0.5)
        batches = [  # uneven: 3 images, then 1
            (gray.expand(3, 3, 4, 6), colourful.expand(3, 3, 4, 6)),
            (colourful, gray),
        ]
        m = ColorfulnessGap()
        assert m.value is None
        for pred, targ in batches:
            m.accumulate(fake_learn(pred, targ))
        preds = torch.cat([b[0] for b in batches])
        targs = torch.cat([b[1] for b in batches])
        one_shot = colorfulness_gap(preds, targs)
        assert m.value == pytest.approx(one_shot, rel=1e-6)
        assert m.value == pytest.approx(RED_BLUE_CF / 2, rel=1e-5)  # means CF/4 vs 3CF/4
        per_batch = np.mean([colorfulness_gap(p, t) for p, t in batches])  # CF and CF
        assert abs(m.value - per_batch) > 10
        m.reset()
        assert m.value is None

    @pytest.mark.parametrize(
        "metric,fn",
        [(PSNRMetric, psnr), (SSIMMetric, ssim), (CIEDE2000Metric, ciede2000)],
        ids=["psnr", "ssim", "de"],
    )
    def test_mean_over_images_across_uneven_batches(self, metric, fn):
        p1, t1 = rand_pair(3, 3, 12, 12, seed=1)
        p2, t2 = rand_pair(1, 3, 12, 12, seed=2, noise=0.4)
        m = metric()
        m.accumulate(fake_learn(p1, t1))
        m.accumulate(fake_learn(p2, t2))
        expected = fn(torch.cat([p1, p2]), torch.cat([t1, t2])).mean().item()
        assert m.value == pytest.approx(expected, rel=1e-5)

    def test_predictions_are_clamped(self):
        targ = torch.rand(2, 3, 12, 12)
        pred = targ + 0.2 * torch.randn_like(targ)  # outside [0, 1] in places
        for metric, fn in [(PSNRMetric, psnr), (CIEDE2000Metric, ciede2000), (SSIMMetric, ssim)]:
            m = metric()
            m.accumulate(fake_learn(pred, targ))
            assert m.value == pytest.approx(fn(pred.clamp(0, 1), targ).mean().item(), rel=1e-5)

    def test_fastai_tensor_images(self):
        pred, targ = rand_pair(2, 3, 12, 12)
        for metric, expected in [(PSNRMetric(), psnr(pred, targ).mean().item()), (ColorfulnessGap(), None)]:
            metric.accumulate(fake_learn(TensorImage(pred), TensorImage(targ)))
            assert metric.value == pytest.approx(expected or colorfulness_gap(pred, targ), rel=1e-5)

    def test_names_and_defaults(self):
        names = {m.name for m in [PSNRMetric(), SSIMMetric(), CIEDE2000Metric(), ColorfulnessGap()]}
        assert names == {"psnr", "ssim", "ciede2000", "colorfulness_gap"}
        defaults = colorize_metrics()
        assert [type(m) for m in defaults] == [PSNRMetric, CIEDE2000Metric, ColorfulnessGap]
        assert all(isinstance(m, Metric) for m in defaults)

    def test_picklable(self):
        ms = colorize_metrics() + [SSIMMetric()]
        for m in ms:
            m.accumulate(fake_learn(*rand_pair(1, 3, 12, 12)))
        back = pickle.loads(pickle.dumps(ms))
        assert [m.value for m in back] == pytest.approx([m.value for m in ms])


def tiny_learner(path: Path) -> Learner:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(5, 3, 12, 12, generator=g)
    x = y.mean(dim=1, keepdim=True).expand(5, 3, 12, 12).contiguous()
    ds = TensorDataset(x, y)
    dls = DataLoaders.from_dsets(ds, ds, bs=3, device="cpu")  # validation batches of 3 and 2
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, kernel_size=1)
    return Learner(dls, model, loss_func=nn.MSELoss(), metrics=colorize_metrics() + [SSIMMetric()], path=path)


class TestInLearner:
    def test_validate(self, tmp_path: Path):
        learn = tiny_learner(tmp_path)
        res = learn.validate()
        preds, targs = learn.get_preds()
        preds = preds.as_subclass(torch.Tensor).clamp(0, 1)
        targs = targs.as_subclass(torch.Tensor)
        expected = [
            psnr(preds, targs).mean().item(),
            ciede2000(preds, targs).mean().item(),
            colorfulness_gap(preds, targs),
            ssim(preds, targs).mean().item(),
        ]
        assert len(res) == 5
        assert list(res[1:]) == pytest.approx(expected, rel=1e-4)

    def test_recorder_names_and_pickle(self, tmp_path: Path):
        learn = tiny_learner(tmp_path)
        learn.fit(1, 1e-3)
        assert list(learn.recorder.metric_names[3:7]) == ["psnr", "ciede2000", "colorfulness_gap", "ssim"]
        assert all(v is not None and math.isfinite(v) for v in learn.recorder.values[-1])
        back = pickle.loads(pickle.dumps(learn.metrics))  # what learn.export pickles along
        assert [m.name for m in back] == ["psnr", "ciede2000", "colorfulness_gap", "ssim"]
        assert [m.value for m in back] == pytest.approx(learn.recorder.values[-1][2:])


class TestFrechetDistance:
    def test_identical_is_zero(self):
        a = torch.randn(5, 5, dtype=torch.float64)
        sigma = a @ a.T + 0.1 * torch.eye(5, dtype=torch.float64)
        mu = torch.randn(5, dtype=torch.float64)
        assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6

    def test_shifted_means(self):
        sigma = np.diag([1.0, 2.0, 3.0])
        mu1, mu2 = np.zeros(3), np.array([1.0, -2.0, 0.5])
        assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(1 + 4 + 0.25, abs=1e-6)

    def test_diagonal_closed_form(self):
        v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
        mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
        expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
        got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
        assert got == pytest.approx(expected, abs=1e-6)

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"\(3, 3\)"):
            frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))

    def test_fid_of_features(self):
        g = torch.Generator().manual_seed(0)
        feats = torch.randn(400, 4, generator=g, dtype=torch.float64)
        shift = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)
        assert abs(fid(feats, feats)) < 1e-6
        assert fid(feats, feats + shift) == pytest.approx(6.0, abs=1e-6)  # same covariance, |dmu|^2 = 6
        # independent samples of one Gaussian are close; a scaled one is far
        other = torch.randn(400, 4, generator=g, dtype=torch.float64)
        assert fid(feats, other) < 0.2 < fid(feats, 2 * other)

    def test_fid_uses_sample_covariance(self):
        # 1-D: a = {0, 2} has mean 1 and sample variance 2 (N - 1); b = {1, 1} has variance 0
        assert fid(np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]])) == pytest.approx(2.0, abs=1e-9)

    def test_fid_needs_two_samples(self):
        with pytest.raises(ValueError, match=r"N >= 2"):
            fid(np.zeros((1, 4)), np.zeros((5, 4)))


class TestAvailability:
    def test_fid_unavailable_offline(self, tmp_path: Path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        ok, reason = fid_available()
        assert not ok
        expected = tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
        assert str(expected) in reason
        assert not expected.exists()  # nothing was downloaded
        with pytest.raises(FileNotFoundError, match="InceptionV3"):
            inception_features(torch.rand(1, 3, 8, 8))

    def test_fid_available_from_cache_or_file(self, tmp_path: Path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        cached = tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
        cached.parent.mkdir(parents=True)
        cached.write_bytes(b"x")
        ok, reason = fid_available()
        assert ok and str(cached) in reason
        assert fid_available(tmp_path / "missing.pth")[0] is False
        assert fid_available(cached) == (True, f"InceptionV3 weights: local file {cached}")

    def test_lpips_report(self, tmp_path: Path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        ok, reason = lpips_available()
        assert not ok and "alexnet" in reason
        ok, reason = lpips_available(net="vgg")
        assert not ok and "vgg16" in reason
        with pytest.raises(ValueError, match="squeeze"):
            lpips_available(net="squeeze")

    @pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
    def test_lpips_needs_package_even_with_backbone(self, tmp_path: Path):
        backbone = tmp_path / "alexnet.pth"
        backbone.write_bytes(b"x")
        ok, reason = lpips_available(backbone)
        assert not ok and "lpips" in reason and "AlexNet" not in reason

    @pytest.mark.slow
    def test_inception_features_with_local_weights(self, tmp_path: Path):
        from torchvision.models import inception_v3

        torch.manual_seed(0)
        path = tmp_path / "inception.pth"
        torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
        feats = inception_features(torch.rand(2, 3, 16, 16), weights=path)
        assert feats.shape == (2, 2048) and torch.isfinite(feats).all()
