import numpy as np
import pytest
import torch
from PIL import Image

from colorkit.color import rgb_to_luminance
from colorkit.infer import colorize_image, colorize_images, merge_chroma, render_shape
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
