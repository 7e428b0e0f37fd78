import json
from dataclasses import asdict, dataclass
from typing import ClassVar

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


# ----------------------------------------------------------------------------------------------
# the registry of generator kinds


@dataclass
class _PlainConfig:
    """A toy kind: one convolution, to show what a new architecture has to provide."""

    kind: ClassVar[str] = "plain_conv_test"
    width: int = 3
    mode: str = "lab"
    img_size: int = 32
    chroma_head: str = "regress"
    bin_step: float = 10.0
    temperature: float = 0.38

    @property
    def n_out(self) -> int:
        return 3 if self.mode == "rgb" else 2

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@pytest.fixture
def plain_kind():
    from colorkit.models import GENERATORS, register_generator

    @register_generator("plain_conv_test", _PlainConfig, split=lambda m: [list(m.parameters())])
    def plain_conv(cfg, encoder_state_dict=None):
        conv = torch.nn.Conv2d
        return torch.nn.Sequential(conv(3, cfg.width, 3, padding=1), conv(cfg.width, cfg.n_out, 1), torch.nn.Tanh())

    yield plain_conv
    GENERATORS.pop("plain_conv_test", None)


def test_a_registered_kind_is_saved_and_rebuilt_by_load_colorizer(plain_kind, tmp_path):
    from colorkit import build_generator, load_colorizer, save_colorizer

    torch.manual_seed(0)
    net = build_generator(_PlainConfig(width=5))
    assert isinstance(net, ColorizerNet) and net.config.width == 5 and net.mode == "lab"
    save_colorizer(net, tmp_path / "m", half=False, render_size=32)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["generator"]["kind"] == "plain_conv_test"
    clr = load_colorizer(tmp_path / "m")
    assert isinstance(clr.model.unet, torch.nn.Sequential) and clr.model.unet[0].out_channels == 5
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(clr.model(x), net.eval()(x))
    assert clr.colorize(torch.rand(3, 20, 30)).size == (30, 20)


def test_colorize_learner_takes_a_config_of_any_kind(plain_kind, photo_dir):
    from colorkit import colorize_dls, colorize_learner

    learn = colorize_learner(colorize_dls(photo_dir, size=16, bs=4), config=_PlainConfig(), pretrained=False,
                             loss="l1", metrics=[])
    assert learn.colorizer_config.kind == "plain_conv_test" and len(learn.splitter(learn.model)) == 1
    x, y = learn.dls.one_batch()
    assert learn.loss_func(learn.model(x), y).ndim == 0
    with pytest.raises(ValueError, match="no pretrained encoder"):
        colorize_learner(learn.dls, config=_PlainConfig(), pretrained=True, loss="l1")


def test_registry_refusals(plain_kind):
    from colorkit.models import build_generator, generator_config, register_generator

    with pytest.raises(ValueError, match="unknown generator kind 'nope'"):
        build_generator({"kind": "nope"})
    with pytest.raises(ValueError, match="no setting"):
        generator_config({"kind": "resnet_unet", "arch": "resnet18", "depth": 3})
    with pytest.raises(ValueError, match="already registered"):
        register_generator("plain_conv_test", _PlainConfig, split=list)(lambda cfg, sd=None: None)
    with pytest.raises(ValueError, match="kind must be"):
        register_generator("other_name", _PlainConfig, split=list)(lambda cfg, sd=None: None)


def test_resnet_unet_config_round_trips_through_its_dict():
    from colorkit.models import GENERATORS, generator_config

    cfg = GeneratorConfig("resnet18", "lab", chroma_head="classes", temperature=0.5)
    assert cfg.to_dict()["kind"] == "resnet_unet" and "resnet_unet" in GENERATORS
    assert generator_config(cfg.to_dict()) == cfg


def test_colorizer_net_takes_its_head_from_the_config():
    cfg = GeneratorConfig("resnet18", "rgb")
    net = ColorizerNet(torch.nn.Identity(), config=cfg)
    assert net.mode == "rgb" and net.config is cfg
    with pytest.raises(ValueError, match="disagree"):
        ColorizerNet(torch.nn.Identity(), "lab", config=cfg)
    assert ColorizerNet(torch.nn.Identity(), "rgb").config is None  # a bare network: explicit settings


def test_chroma_gain_scales_chroma_in_eval_only(tmp_path):
    from colorkit import load_colorizer, save_colorizer
    from colorkit.color import rgb_to_lab
    from colorkit.models import create_generator

    torch.manual_seed(0)
    net = create_generator(arch="resnet18", pretrained=False, img_size=32)
    x = torch.rand(1, 3, 32, 32)
    net.eval()
    base = rgb_to_lab(net(x).detach())[:, 1:]
    net.chroma_gain = net.config.chroma_gain = 1.5
    boosted = rgb_to_lab(net(x).detach())[:, 1:]
    inside = base.abs().amax(dim=1) < 20  # away from the gamut edge the gain is exact
    torch.testing.assert_close(boosted[:, :, inside[0]], 1.5 * base[:, :, inside[0]], atol=0.05, rtol=0.01)
    save_colorizer(net, tmp_path / "m", half=False)
    assert load_colorizer(tmp_path / "m").model.chroma_gain == 1.5
    with pytest.raises(ValueError, match="chroma_gain"):
        type(net.config)(chroma_gain=0)
