import pytest
import torch

from colorkit.color import rgb_to_luminance
from colorkit.models import (
    ColorizerNet,
    GeneratorConfig,
    WeightsUnavailableError,
    arch_name,
    create_generator,
    generator_split,
    load_encoder_weights,
)


@pytest.fixture(scope="module")
def gen_rgb():
    torch.manual_seed(0)
    return create_generator("resnet18", mode="rgb", img_size=32)


@pytest.fixture(scope="module")
def gen_lab():
    torch.manual_seed(0)
    return create_generator("resnet18", mode="lab", img_size=32)


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 37, 53), (1, 1, 40, 24)])
def test_output_shape_and_range(gen_rgb, shape):
    gen_rgb.eval()
    y = gen_rgb(torch.rand(shape))
    assert y.shape == (shape[0], 3, *shape[2:])
    assert y.min() >= 0 and y.max() <= 1


def test_colour_input_is_made_gray_first(gen_rgb):
    """A colour photo and its gray version give the same prediction: the model only sees luminance."""
    from colorkit.color import to_gray

    gen_rgb.eval()
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(gen_rgb(x), gen_rgb(to_gray(x)), atol=1e-5, rtol=1e-5)


class _SmallChroma(torch.nn.Module):
    """Stands in for the U-Net: a fixed, in-gamut chroma (a=0.1, b=-0.05 in network units)."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 2, *x.shape[2:])
        out[:, 0], out[:, 1] = 0.1, -0.05
        return out


def test_lab_mode_keeps_input_lightness_and_sets_chroma():
    from colorkit.color import rgb_to_lab

    net = ColorizerNet(_SmallChroma(), mode="lab").eval()
    x = torch.rand(2, 3, 16, 16) * 0.6 + 0.2
    lab = rgb_to_lab(net(x))
    torch.testing.assert_close(lab[:, :1], rgb_to_luminance(x), atol=1e-3, rtol=0)
    assert (lab[:, 1] - 11).abs().max() < 0.05 and (lab[:, 2] + 5.5).abs().max() < 0.05


def test_lab_generator_output_shape(gen_lab):
    gen_lab.eval()
    assert gen_lab(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_training_mode_gradients_reach_encoder_and_decoder(gen_rgb):
    gen_rgb.train()
    gen_rgb(torch.rand(2, 3, 32, 32)).mean().backward()
    groups = generator_split(gen_rgb)
    assert len(groups) == 3
    for g in groups:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in g)
    gen_rgb.zero_grad()


def test_split_covers_every_parameter_once(gen_rgb):
    ids = [id(p) for g in generator_split(gen_rgb) for p in g]
    assert len(ids) == len(set(ids)) == len(list(gen_rgb.parameters()))


def test_bad_arch_and_mode():
    with pytest.raises(ValueError, match="unknown arch 'vgg99'"):
        arch_name("vgg99")
    with pytest.raises(ValueError, match="mode"):
        GeneratorConfig(mode="hsv")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ColorizerNet(torch.nn.Identity())(torch.rand(3, 8, 8))


def test_local_encoder_weights_are_loaded(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    gen = create_generator("resnet18", weights=tmp_path / "r18.pth", img_size=32)
    torch.testing.assert_close(gen.unet[0][0].weight, ref.conv1.weight)
    torch.testing.assert_close(gen.unet[0][7][1].conv2.weight, ref.layer4[1].conv2.weight)


def test_weights_of_another_arch_are_refused():
    import torchvision

    gen = create_generator("resnet18", img_size=32)
    with pytest.raises(WeightsUnavailableError, match="do not fit resnet18"):
        load_encoder_weights(gen.unet, "resnet18", torchvision.models.resnet50(weights=None).state_dict())


def test_pretrained_offline_fails_clearly(tmp_path, monkeypatch):
    """No cached weights and no network: a clear message, never a urllib trace."""
    import urllib.error

    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    try:
        with pytest.raises(WeightsUnavailableError) as e:
            create_generator("resnet34", pretrained=True, img_size=32)
    finally:
        torch.hub.set_dir(old)
    msg = str(e.value)
    assert "resnet34" in msg and "pretrained=False" in msg and str(tmp_path) in msg
