import numpy as np
import pytest
import torch
from PIL import Image

from colorkit.color import lab_to_rgb, lab_to_rgb_keep_lightness, rgb_to_luminance, set_chroma_uint8
from colorkit.infer import (
    colorize_image,
    colorize_images,
    inference_format,
    merge_chroma,
    predict_chroma,
    predict_rgb,
    prepare_image,
    render_shape,
)
from colorkit.models import create_generator
from tests.conftest import make_photo


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return create_generator("resnet18", mode="rgb", img_size=32).eval()


def _L(img: Image.Image) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(img.convert("RGB"))).permute(2, 0, 1).float().div(255)
    return rgb_to_luminance(t)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (3000, 200), (64, 48)])
@pytest.mark.parametrize("gray", [True, False])
def test_keeps_size_and_luminance(gen, size, gray):
    w, h = size
    img = make_photo(h, w, seed=w)
    if gray:
        img = img.convert("L")
    out = colorize_image(gen, img, render_size=64)
    assert out.size == (w, h) and out.mode == "RGB"
    assert (_L(out) - _L(img)).abs().mean() < 0.5


def test_accepts_path_array_and_tensor(gen, tmp_path):
    img = make_photo(20, 30)
    img.save(tmp_path / "a.png")
    arr = np.asarray(img)
    ten = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    outs = [colorize_image(gen, x, render_size=64) for x in (tmp_path / "a.png", str(tmp_path / "a.png"), arr, ten)]
    for o in outs:
        assert o.size == (30, 20)
    assert np.array_equal(np.asarray(outs[0]), np.asarray(outs[2]))


def test_render_shape_bounds_the_forward_pass():
    rh, rw = render_shape(6000, 4000, render_size=256)  # 24 MP photo
    assert rh * rw <= 1.2 * 256 * 256 and rh % 32 == 0 and rw % 32 == 0
    assert abs(rw / rh - 1.5) < 0.2
    assert render_shape(1, 1, 256) == (256, 256)
    with pytest.raises(ValueError, match="render_size"):
        render_shape(10, 10, render_size=8)


def test_merge_chroma_takes_chroma_and_keeps_lightness():
    img = Image.new("RGB", (50, 30), (128, 128, 128))
    ab = torch.zeros(2, 4, 4)
    ab[0] = 40.0  # reddish
    out = np.asarray(merge_chroma(img, ab)).astype(int)
    assert out[..., 0].mean() > out[..., 1].mean() + 20  # red dominates
    assert (_L(Image.fromarray(out.astype(np.uint8))) - _L(img)).abs().mean() < 0.5


def test_merge_works_in_strips_identically(monkeypatch):
    import colorkit.infer as infer

    img = make_photo(40, 40)
    ab = torch.randn(2, 5, 5) * 20
    full = np.asarray(merge_chroma(img, ab))
    monkeypatch.setattr(infer, "_STRIP_PIXELS", 40 * 3)  # 3-row strips
    strips = np.asarray(infer.merge_chroma(img, ab))
    assert np.abs(full.astype(int) - strips.astype(int)).max() <= 1


def test_batched_matches_single(gen):
    imgs = [make_photo(32, 32, seed=i) for i in range(3)] + [make_photo(20, 60, seed=9)]
    batched = colorize_images(gen, imgs, render_size=64, bs=2)
    single = [colorize_image(gen, i, render_size=64) for i in imgs]
    assert len(batched) == 4
    for a, b in zip(batched, single, strict=True):
        assert a.size == b.size
        assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 2


def test_model_mode_is_restored(gen):
    gen.train()
    colorize_image(gen, make_photo(8, 8), render_size=32)
    assert gen.training
    gen.eval()


# ----------------------------------------------------------------------------------------------
# the uint8 fast path against the exact (tensor, many-step bisection) one


def _exact_keep_lightness(rgb8: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 + Lab chroma (2, H, W) -> uint8, via float64 lab_to_rgb_keep_lightness with 30 steps."""
    rgb = torch.from_numpy(rgb8.astype(np.float64) / 255).permute(2, 0, 1)
    lab = torch.cat([rgb_to_luminance(rgb), torch.from_numpy(ab.astype(np.float64))])
    out = lab_to_rgb_keep_lightness(lab, steps=30)
    return out.mul(255).round().permute(1, 2, 0).numpy().astype(np.uint8)


def _random_pixels(gray: bool, seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if gray:
        return np.repeat(rng.integers(0, 256, (h, w, 1), dtype=np.uint8), 3, axis=2)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("chroma", [20.0, 60.0])
def test_set_chroma_uint8_matches_exact_gamut_fit(gray, chroma):
    rgb8 = _random_pixels(gray, seed=int(chroma))
    rng = np.random.default_rng(1)
    ab = (rng.standard_normal((2, *rgb8.shape[:2])) * chroma).astype(np.float32)
    fast, exact = set_chroma_uint8(rgb8, ab), _exact_keep_lightness(rgb8, ab)
    assert fast.shape == rgb8.shape and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - exact.astype(int)).max() <= 2
    # the comparison has teeth: many pixels are out of gamut, where clipping RGB would be far off
    rgb = torch.from_numpy(rgb8.astype(np.float64) / 255).permute(2, 0, 1)
    lab = torch.cat([rgb_to_luminance(rgb), torch.from_numpy(ab.astype(np.float64))])
    clipped = lab_to_rgb(lab).mul(255).round().permute(1, 2, 0).numpy()
    assert (np.abs(clipped - exact).max(-1) > 2).mean() > 0.05


def test_set_chroma_uint8_keeps_lightness_and_zero_chroma_is_identity():
    rgb8 = _random_pixels(gray=False, seed=3)
    same = set_chroma_uint8(rgb8, np.zeros((2, 48, 64), np.float32))
    gray = _random_pixels(gray=True, seed=4)
    assert np.array_equal(set_chroma_uint8(gray, np.zeros((2, 48, 64), np.float32)), gray)
    # zero chroma turns a colour pixel into the gray of the same lightness
    assert np.abs(same[..., 0].astype(int) - same[..., 2].astype(int)).max() <= 1
    ab = (np.random.default_rng(5).standard_normal((2, 48, 64)) * 40).astype(np.float32)
    out = set_chroma_uint8(rgb8, ab)
    L = [_L(Image.fromarray(a)) for a in (rgb8, out)]
    assert (L[0] - L[1]).abs().mean() < 0.3


def test_set_chroma_uint8_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        set_chroma_uint8(np.zeros((4, 5, 3), np.uint8), np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        set_chroma_uint8(np.zeros((4, 5, 3), np.float32), np.zeros((2, 4, 5), np.float32))


def test_merge_chroma_matches_the_exact_tensor_pipeline():
    """Bilinear upsampling (as F.interpolate) + exact gamut fit, computed with tensors in float64."""
    img = make_photo(45, 70, seed=2).convert("L").convert("RGB")
    ab = torch.randn(2, 6, 9, generator=torch.Generator().manual_seed(0)) * 35
    full = torch.nn.functional.interpolate(ab[None].double(), size=(45, 70), mode="bilinear",
                                           align_corners=False)[0]
    exact = _exact_keep_lightness(np.asarray(img), full.numpy())
    out = np.asarray(merge_chroma(img, ab))
    assert np.abs(out.astype(int) - exact.astype(int)).max() <= 2


def test_merge_chroma_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    img = make_photo(60, 80, seed=4)
    abs_ = [torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(i)) * 30 for i in range(4)]
    alone = [np.asarray(merge_chroma(img, ab)) for ab in abs_]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda ab: np.asarray(merge_chroma(img, ab)), abs_))
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a, b)


def test_prepare_predict_merge_is_colorize_image(gen):
    img = make_photo(40, 60, seed=8)
    x = prepare_image(img, render_size=32)
    assert x.shape == (3, *render_shape(60, 40, 32)) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    ab = predict_chroma(gen, x.unsqueeze(0))[0]
    assert np.array_equal(np.asarray(merge_chroma(img, ab)), np.asarray(colorize_image(gen, img, render_size=32)))


# ----------------------------------------------------------------------------------------------
# precision


def _is_channels_last(model: torch.nn.Module) -> bool:
    w = next(p for p in model.parameters() if p.ndim == 4)
    return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_bf16_prediction_is_close_to_fp32_and_float32(gen):
    x = prepare_image(make_photo(64, 96, seed=3), render_size=64).unsqueeze(0)
    fp32 = predict_rgb(gen, x, precision="fp32")
    with inference_format(gen, "bf16") as prec:
        assert prec == "bf16" and _is_channels_last(gen)
        bf16 = predict_rgb(gen, x, precision="bf16")
    assert not _is_channels_last(gen)  # restored
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape and bf16.is_contiguous()
    diff = (bf16 - fp32).abs()
    assert 0 < float(diff.mean()) < 0.02  # bf16 really ran, and it is a small change
    # without channels_last bf16 gives nearly the same (the memory format is for speed; bf16 rounds differently
    # in the other kernels, and this random network's saturated pixels can flip)
    assert float((predict_rgb(gen, x, precision="bf16") - bf16).abs().mean()) < 0.02


def test_auto_precision_follows_the_hardware(gen, monkeypatch):
    import colorkit.precision as precision

    x = torch.rand(1, 3, 32, 32)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo="": ())
    assert torch.equal(predict_rgb(gen, x, precision="auto"), predict_rgb(gen, x, precision="fp32"))
    with inference_format(gen, "auto") as prec:
        assert prec == "fp32" and not _is_channels_last(gen)
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda cpuinfo="": ("avx512_bf16",))
    with inference_format(gen, "auto") as prec:
        assert prec == "bf16" and _is_channels_last(gen)
    with pytest.raises(ValueError, match="precision"):
        predict_rgb(gen, x, precision="fp16")


def test_colorize_image_in_bf16_keeps_size_and_lightness(gen):
    img = make_photo(40, 60, seed=9)
    out = colorize_image(gen, img, render_size=32, precision="bf16")
    assert out.size == img.size and (_L(out) - _L(img)).abs().mean() < 0.5
    outs = colorize_images(gen, [img, img], render_size=32, precision="bf16")
    assert np.array_equal(np.asarray(outs[0]), np.asarray(out))
