"""Tests for colorkit.color: one class per function, reference values from scikit-image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorkit.color import (
    AB_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize_lab,
    imagenet_denormalize,
    imagenet_normalize,
    lab_to_rgb,
    merge_luminance,
    normalize_lab,
    rgb_to_lab,
    rgb_to_luminance,
    to_gray,
)

DTYPES = [torch.float32, torch.float64]
BATCH_SHAPES = [(), (2,), (2, 3)]
# Lab agrees with scikit-image to rounding (it rounds the CIE constants 7.787 and 0.008856).
LAB_TOL = {torch.float32: dict(atol=1e-3, rtol=1e-4), torch.float64: dict(atol=1e-4, rtol=1e-6)}
RGB_TOL = {torch.float32: dict(atol=1e-4, rtol=1e-4), torch.float64: dict(atol=1e-6, rtol=1e-6)}

# black, white, primaries, secondaries, mid gray: (9, 3)
EDGE_RGB = [
    [0, 0, 0],
    [1, 1, 1],
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
    [0, 1, 1],
    [1, 0, 1],
    [1, 1, 0],
    [0.5, 0.5, 0.5],
]


def edge_image(dtype: torch.dtype) -> torch.Tensor:
    """The edge colours as a (3, 3, 3) image (channels first)."""
    return torch.tensor(EDGE_RGB, dtype=dtype).T.reshape(3, 3, 3)


def sk_rgb2lab(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(skcolor.rgb2lab(x.numpy(), channel_axis=-3))


def sk_lab2rgb(x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # skimage warns when it clips negative Z
        warnings.simplefilter("ignore")
        return torch.from_numpy(skcolor.lab2rgb(x.numpy(), channel_axis=-3))


def random_lab(*shape: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """Lab values over the whole box L in [0, 100], a, b in [-128, 127]: many out of the sRGB gamut."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(*shape, 3, 5, 5, generator=g, dtype=dtype)
    lo = torch.tensor([0.0, -128.0, -128.0], dtype=dtype).view(3, 1, 1)
    hi = torch.tensor([100.0, 127.0, 127.0], dtype=dtype).view(3, 1, 1)
    return lo + u * (hi - lo)


class TestRgbToLab:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_matches_skimage_random(self, batch, dtype):
        x = torch.rand(*batch, 3, 6, 5, generator=torch.Generator().manual_seed(1), dtype=dtype)
        out = rgb_to_lab(x)
        assert out.shape == x.shape and out.dtype == dtype
        torch.testing.assert_close(out, sk_rgb2lab(x).to(dtype), **LAB_TOL[dtype])

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_matches_skimage_edge_values(self, dtype):
        x = edge_image(dtype)
        torch.testing.assert_close(rgb_to_lab(x), sk_rgb2lab(x).to(dtype), **LAB_TOL[dtype])

    def test_known_values(self):
        lab = rgb_to_lab(edge_image(torch.float64)).reshape(3, 9).T
        torch.testing.assert_close(lab[0], torch.zeros(3, dtype=torch.float64))  # black
        torch.testing.assert_close(
            lab[1], torch.tensor([100.0, 0, 0], dtype=torch.float64), atol=1e-2, rtol=0
        )
        torch.testing.assert_close(
            lab[2], torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=1e-2, rtol=0
        )
        assert abs(lab[8, 0].item() - 53.39) < 1e-2 and lab[8, 1:].abs().max() < 1e-2  # mid gray

    def test_gradcheck(self):
        x = (0.2 + 0.6 * torch.rand(1, 3, 3, 3, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(rgb_to_lab, (x,))


class TestLabToRgb:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_matches_skimage_in_gamut(self, batch, dtype):
        rgb = torch.rand(*batch, 3, 6, 5, generator=torch.Generator().manual_seed(2), dtype=dtype)
        lab = sk_rgb2lab(rgb).to(dtype)
        out = lab_to_rgb(lab)
        assert out.shape == lab.shape and out.dtype == dtype
        torch.testing.assert_close(out, sk_lab2rgb(lab).to(dtype), **RGB_TOL[dtype])

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_out_of_gamut_clipped_like_skimage(self, batch, dtype):
        lab = random_lab(*batch, dtype=dtype)
        out = lab_to_rgb(lab)
        assert out.min() >= 0 and out.max() <= 1
        torch.testing.assert_close(out, sk_lab2rgb(lab).to(dtype), **RGB_TOL[dtype])

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_edge_values(self, dtype):
        x = edge_image(dtype)
        lab = rgb_to_lab(x)
        torch.testing.assert_close(lab_to_rgb(lab), sk_lab2rgb(lab).to(dtype), **RGB_TOL[dtype])
        torch.testing.assert_close(lab_to_rgb(lab), x, atol=1e-4, rtol=0)

    def test_no_clip_leaves_out_of_gamut_values(self):
        lab = torch.tensor([50.0, 127.0, -128.0], dtype=torch.float64).view(3, 1, 1)  # far outside sRGB
        raw = lab_to_rgb(lab, clip=False)
        assert raw.min() < 0 or raw.max() > 1
        torch.testing.assert_close(lab_to_rgb(lab), raw.clamp(0, 1))

    def test_gradcheck(self):
        rgb = 0.2 + 0.6 * torch.rand(1, 3, 3, 3, dtype=torch.float64)
        lab = rgb_to_lab(rgb).detach().requires_grad_()  # interior: no clipping, no piecewise kink
        assert torch.autograd.gradcheck(lab_to_rgb, (lab,))


class TestRoundTrip:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_rgb_lab_rgb(self, batch, dtype):
        x = torch.rand(*batch, 3, 8, 8, dtype=dtype)
        assert (lab_to_rgb(rgb_to_lab(x)) - x).abs().max() < 1e-4

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_edge_values(self, dtype):
        x = edge_image(dtype)
        assert (lab_to_rgb(rgb_to_lab(x)) - x).abs().max() < 1e-4


class TestRgbToLuminance:
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_equals_lab_L(self, batch):
        x = torch.rand(*batch, 3, 5, 4)
        L = rgb_to_luminance(x)
        assert L.shape == (*batch, 1, 5, 4)
        torch.testing.assert_close(L, rgb_to_lab(x)[..., :1, :, :], atol=1e-4, rtol=0)


class TestToGray:
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_keeps_lightness(self, batch, dtype):
        x = torch.rand(*batch, 3, 8, 8, dtype=dtype)
        gray = to_gray(x)
        assert gray.shape == x.shape and gray.dtype == dtype
        dL = rgb_to_lab(gray)[..., 0, :, :] - rgb_to_lab(x)[..., 0, :, :]
        assert dL.abs().max() < 1e-3

    def test_edge_values_keep_lightness(self):
        x = edge_image(torch.float64)
        dL = rgb_to_lab(to_gray(x))[0] - rgb_to_lab(x)[0]
        assert dL.abs().max() < 1e-3

    def test_output_is_gray(self):
        lab = rgb_to_lab(to_gray(torch.rand(2, 3, 8, 8, dtype=torch.float64)))
        assert lab[:, 1:].abs().max() < 0.05  # a, b of an sRGB gray are ~0

    @pytest.mark.parametrize("channels", [1, 3])
    def test_channels(self, channels):
        x = torch.rand(2, 3, 6, 7)
        gray = to_gray(x, channels=channels)
        assert gray.shape == (2, channels, 6, 7)
        assert gray.min() >= 0 and gray.max() <= 1
        torch.testing.assert_close(gray, to_gray(x, channels=1).expand(2, channels, 6, 7))

    def test_gray_input_unchanged(self):
        g = torch.rand(2, 1, 8, 8, dtype=torch.float64).expand(2, 3, 8, 8)
        torch.testing.assert_close(to_gray(g), g, atol=1e-6, rtol=0)

    def test_bad_channels(self):
        with pytest.raises(ValueError, match="channels"):
            to_gray(torch.rand(1, 3, 4, 4), channels=2)


class TestMergeLuminance:
    def test_sets_L_keeps_ab(self):
        rgb = 0.3 + 0.4 * torch.rand(2, 3, 6, 6, dtype=torch.float64)  # mid colours: stay in gamut
        lab = rgb_to_lab(rgb)
        L_new = lab[:, :1] + 4 * (2 * torch.rand(2, 1, 6, 6, dtype=torch.float64) - 1)
        out_lab = rgb_to_lab(merge_luminance(L_new, rgb))
        torch.testing.assert_close(out_lab[:, :1], L_new, atol=1e-4, rtol=0)
        torch.testing.assert_close(out_lab[:, 1:], lab[:, 1:], atol=1e-4, rtol=0)

    def test_own_L_is_identity(self):
        rgb = torch.rand(3, 5, 5)
        torch.testing.assert_close(merge_luminance(rgb_to_luminance(rgb), rgb), rgb, atol=1e-4, rtol=0)

    def test_unbatched(self):
        rgb = torch.rand(3, 5, 5)
        assert merge_luminance(torch.full((1, 5, 5), 50.0), rgb).shape == (3, 5, 5)

    def test_bad_L_shape_names_shapes(self):
        with pytest.raises(ValueError, match=r"\(2, 3, 5, 5\).*\(2, 1, 4, 5\)"):
            merge_luminance(torch.rand(2, 1, 4, 5), torch.rand(2, 3, 5, 5))


class TestNormalizeLab:
    def test_round_trip(self):
        lab = random_lab(2, dtype=torch.float32)
        torch.testing.assert_close(denormalize_lab(normalize_lab(lab)), lab, atol=1e-4, rtol=1e-5)

    def test_ranges(self):
        lab = torch.tensor([[0.0, 100.0], [AB_SCALE, -AB_SCALE], [0.0, 0.0]]).view(3, 1, 2)
        expected = torch.tensor([[-1.0, 1.0], [1.0, -1.0], [0.0, 0.0]]).view(3, 1, 2)
        torch.testing.assert_close(normalize_lab(lab), expected)


class TestImagenetNormalize:
    @pytest.mark.parametrize("batch", BATCH_SHAPES)
    def test_round_trip(self, batch):
        x = torch.rand(*batch, 3, 4, 4)
        torch.testing.assert_close(imagenet_denormalize(imagenet_normalize(x)), x)

    def test_values(self):
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        torch.testing.assert_close(imagenet_normalize(mean.expand(3, 2, 2)), torch.zeros(3, 2, 2))
        torch.testing.assert_close(imagenet_normalize((mean + std).expand(3, 2, 2)), torch.ones(3, 2, 2))


ALL_FUNCS = [
    rgb_to_lab,
    lab_to_rgb,
    rgb_to_luminance,
    to_gray,
    normalize_lab,
    denormalize_lab,
    imagenet_normalize,
    imagenet_denormalize,
]


class TestValidation:
    @pytest.mark.parametrize("fn", ALL_FUNCS, ids=lambda f: f.__name__)
    @pytest.mark.parametrize("shape", [(2, 4, 8, 8), (1, 8, 8), (3, 8), (3,)])
    def test_wrong_shape_names_it(self, fn, shape):
        with pytest.raises(ValueError, match=str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")):
            fn(torch.rand(*shape))

    @pytest.mark.parametrize("fn", ALL_FUNCS, ids=lambda f: f.__name__)
    def test_not_a_tensor(self, fn):
        with pytest.raises(TypeError, match="ndarray"):
            fn(np.zeros((3, 4, 4), dtype=np.float32))

    @pytest.mark.parametrize("fn", ALL_FUNCS, ids=lambda f: f.__name__)
    def test_integer_tensor(self, fn):
        with pytest.raises(ValueError, match="floating"):
            fn(torch.zeros(3, 4, 4, dtype=torch.uint8))

    def test_merge_luminance_not_a_tensor(self):
        with pytest.raises(TypeError):
            merge_luminance(torch.rand(1, 4, 4), np.zeros((3, 4, 4)))
