"""The presets (colorkit.presets, colorkit.recipes, colorkit.cgan, colorkit.archs): each builds, trains a few
steps on tiny synthetic photos, colorizes, saves, reloads and gives the same output; the command line trains
one, names it and colorizes with it; the default recipe is unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorkit.archs import AutoencoderConfig, AutoencoderFusionConfig, FusionConfig, Pix2PixConfig, unet_depth
from colorkit.cgan import CGANLearner, flat_linear
from colorkit.cli import main
from colorkit.color import merge_luminance, rgb_to_luminance, to_gray
from colorkit.critics import WithGray, patch_critic
from colorkit.data import colorize_dls
from colorkit.learner import colorize_learner, generator_of, load_colorizer, save_colorizer
from colorkit.models import GENERATORS, GeneratorConfig, build_generator
from colorkit.presets import DEFAULT_PRESET, PRESET_NAMES, PRESETS, get_preset, preset_of
from colorkit.recipes import ReconLoss, preset_learner, preset_stages
from colorkit.train import DEFAULT_STAGES, Stage, final_values
from tests.conftest import make_photo

OTHERS = [n for n in PRESET_NAMES if n != DEFAULT_PRESET]
# the lightest settings of each preset's network (the defaults are the published sizes)
TINY = {
    "pix2pix": dict(nf=8, critic={"nf": 8}),
    "landscape-cgan": dict(nf=8, critic={"nf": 8}),
    "fusion": dict(nf=8, global_size=32),
    "autoencoder": dict(nf=8),
    "autoencoder-fusion": dict(nf=8, arch="resnet18", global_size=32),
}
TINY_CONFIGS = [Pix2PixConfig(img_size=32, nf=8), FusionConfig(img_size=32, nf=8, global_size=32),
                AutoencoderConfig(img_size=32, nf=8),
                AutoencoderFusionConfig(img_size=32, nf=8, arch="resnet18", global_size=32)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presets") / "photos"
    root.mkdir()
    for i in range(12):
        make_photo(40, 48, seed=i).save(root / f"p{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def dls(photos: Path):
    return colorize_dls(photos, size=32, bs=4, in_memory=True, seed=0)


def _pixels(img) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# ----------------------------------------------------------------------------------------------
# the table


def test_every_preset_names_a_registered_kind_with_valid_settings():
    assert PRESET_NAMES[0] == DEFAULT_PRESET and set(OTHERS) == {
        "pix2pix", "landscape-cgan", "fusion", "autoencoder", "autoencoder-fusion"}
    for p in PRESETS.values():
        assert p.kind in GENERATORS
        known = {f for f in GENERATORS[p.kind].config.__dataclass_fields__}
        assert set(p.config) <= known, p.name
        assert p.source and p.network and p.training
    assert preset_stages(DEFAULT_PRESET) == list(DEFAULT_STAGES)
    assert preset_stages("pix2pix") == [Stage(256, 200, lr=2e-4, bs=1)]
    assert get_preset("landscape-cgan").gan["l1_weight"] == 80 and get_preset("pix2pix").gan["l1_weight"] == 100


def test_a_bad_preset_name_lists_the_valid_ones(dls):
    with pytest.raises(ValueError) as e:
        get_preset("pix3pix")
    with pytest.raises(ValueError) as e2:
        colorize_learner(dls, preset="pix3pix", pretrained=False)
    for msg in (str(e.value), str(e2.value)):
        assert "pix3pix" in msg and all(n in msg for n in PRESET_NAMES)


def test_preset_of_saved_configs():
    assert preset_of({"kind": "pix2pix_unet", "preset": "landscape-cgan"}) == "landscape-cgan"
    assert preset_of({"kind": "resnet_unet", "arch": "resnet34"}) == "deoldify"
    assert preset_of({"arch": "resnet34"}) == "deoldify"  # format 1: no kind
    assert preset_of({"kind": "someone_elses_net"}) is None


# ----------------------------------------------------------------------------------------------
# the networks


def test_unet_depth_follows_the_training_size():
    assert [unet_depth(s) for s in (256, 64, 144, 224, 32, 512)] == [8, 6, 5, 5, 5, 8]
    assert Pix2PixConfig(img_size=256).n_down == 8 and Pix2PixConfig(img_size=64, n_down=3).n_down == 3


def test_the_unet_256_is_the_published_one():
    """8 downsamplings to 1x1 at 256 px, 8 upsamplings, dropout in the first 3 decoder blocks, no pretrained part."""
    unet = build_generator(Pix2PixConfig(img_size=256)).unet.unet
    assert len(unet.downs) == 8 and len(unet.ups) == 8
    assert sum(isinstance(m, torch.nn.Dropout) for m in unet.ups.modules()) == 3
    assert all(any(isinstance(m, torch.nn.Dropout) for m in up.modules()) for up in unet.ups[:3])
    assert [unet.downs[i][1].out_channels for i in range(1, 8)] == [128, 256, 512, 512, 512, 512, 512]
    thin = build_generator(Pix2PixConfig(img_size=256, nf=4)).eval()  # the same shape, cheaper to run
    seen = []
    hook = thin.unet.unet.downs[-1].register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        thin(torch.rand(1, 3, 256, 256))
    hook.remove()
    assert seen == [(1, 32, 1, 1)]
    with pytest.raises(ValueError, match="no pretrained encoder"):
        build_generator(Pix2PixConfig(img_size=256), pretrained=True)


@pytest.mark.parametrize("cfg", TINY_CONFIGS, ids=lambda c: c.kind)
@pytest.mark.parametrize("mode", ["lab", "rgb"])
def test_networks_render_any_size_from_the_lightness_only(cfg, mode):
    cfg = _with(cfg, mode=mode)
    torch.manual_seed(0)
    net = build_generator(cfg.to_dict()).eval()
    x = torch.rand(2, 3, 40, 72)  # neither side a multiple of 8 or 32
    with torch.no_grad():
        y, y_gray = net(x), net(to_gray(x))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    torch.testing.assert_close(y, y_gray, atol=1e-5, rtol=1e-5)  # only the lightness reaches the network
    raw = net.unet(torch.zeros(1, 3, 24, 40))  # the network's own output: chroma (lab) or RGB, in range
    assert raw.shape == (1, cfg.n_out, 24, 40) and cfg.n_out == (2 if mode == "lab" else 3)
    assert raw.min() >= (-1 if mode == "lab" else -0.05) and raw.max() <= (1 if mode == "lab" else 1.05)


def _with(cfg, **changes):
    d = {k: v for k, v in cfg.to_dict().items() if k != "kind"}
    return type(cfg)(**{**d, **changes})


def test_preset_networks_refuse_the_class_head_and_bad_settings():
    with pytest.raises(ValueError, match="regress"):
        FusionConfig(mode="lab", chroma_head="classes")
    with pytest.raises(ValueError, match="norm"):
        Pix2PixConfig(norm="group")
    with pytest.raises(ValueError, match="arch"):
        AutoencoderFusionConfig(arch="vgg16")


def test_conditional_patch_critic_sees_the_gray_next_to_the_colours():
    crit = patch_critic(nf=8, n_layers=3, norm="batch", conditional=True).eval()
    assert crit.body[1][0].in_channels == 4 and crit.config["conditional"] is True
    x = torch.rand(2, 3, 64, 64)
    assert crit(x).shape == (2, 36)  # 64 px -> 6x6 patches of 70x70 px
    from colorkit.color import imagenet_normalize

    four = WithGray()(imagenet_normalize(x))
    torch.testing.assert_close(four[:, 3:], rgb_to_luminance(x) / 50 - 1, atol=1e-4, rtol=0)
    assert patch_critic(nf=8).body[0][0].in_channels == 3  # unconditional, as before


# ----------------------------------------------------------------------------------------------
# learners: train, colorize, save, reload


@pytest.mark.parametrize("name", OTHERS)
def test_each_preset_trains_colorizes_saves_and_reloads(name, dls, photos, tmp_path):
    torch.manual_seed(0)
    settings = dict(TINY[name])
    arch = settings.pop("arch", None)
    learn = colorize_learner(dls, preset=name, pretrained=False, **({"arch": arch} if arch else {}), **settings)
    p = get_preset(name)
    assert isinstance(learn, CGANLearner) == p.is_gan
    gen = generator_of(learn)
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    with learn.no_bar(), learn.no_logging():
        report = learn.fit_progressive(photos, [Stage(32, 1, lr=1e-3, bs=4)], in_memory=True, seed=0)
    assert report[0]["epochs"] == 1 and report.final.get("train_loss") is not None
    changed = [k for k, v in gen.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert changed, "training changed no weight"
    if p.is_gan:
        assert learn.loss_name == f"bce + {p.gan['l1_weight']:g} x l1"
    img = make_photo(30, 44, seed=7)
    ours = learn.colorize(img, render_size=64)
    assert ours.size == img.size
    folder = save_colorizer(learn, tmp_path / name, half=False, render_size=64)
    cfg = json.loads((folder / "config.json").read_text())["generator"]
    assert cfg["kind"] == p.kind and cfg["preset"] == name and cfg["mode"] == "lab"
    clr = load_colorizer(folder)
    assert np.array_equal(_pixels(clr.colorize(img)), _pixels(ours))


def test_settings_override_the_preset_and_unknown_ones_are_refused(dls):
    learn = colorize_learner(dls, preset="pix2pix", pretrained=False, nf=8, n_down=3, l1_weight=10, betas=(0.9, 0.99),
                             critic={"nf": 4, "norm": "instance"}, mode="rgb")
    cfg = learn.colorizer_config
    assert (cfg.nf, cfg.n_down, cfg.mode) == (8, 3, "rgb")
    assert learn.loss_name == "bce + 10 x l1" and learn.gan_settings["betas"] == [0.9, 0.99]
    assert learn.critic_config == {"kind": "patch", "nf": 4, "n_layers": 3, "norm": "instance", "conditional": True}
    assert isinstance(generator_of(learn), torch.nn.Module) and learn.loss_func is not None
    with pytest.raises(ValueError, match="no setting"):
        preset_learner(dls, "fusion", nf=8, widht=3)
    with pytest.raises(ValueError, match="not a GAN"):
        preset_learner(dls, "autoencoder", nf=8, l1_weight=3)
    with pytest.raises(ValueError, match="class_weight"):
        colorize_learner(dls, preset="autoencoder", class_weight=0.1)
    with pytest.raises(ValueError, match="no ResNet"):
        colorize_learner(dls, preset="fusion", arch="resnet18")


def test_autoencoder_fusion_loads_and_freezes_a_pretrained_resnet(dls, tmp_path):
    import torchvision

    torch.manual_seed(1)
    sd = torchvision.models.resnet18().state_dict()  # stands in for ImageNet weights (no download in tests)
    torch.save(sd, tmp_path / "resnet18.pth")
    learn = colorize_learner(dls, preset="autoencoder-fusion", arch="resnet18", weights=tmp_path / "resnet18.pth",
                             nf=8, global_size=32, wd=0.05)
    net = generator_of(learn).unet
    assert learn.pretrained and learn.wd == 0.05
    torch.testing.assert_close(net.embedding[0].weight, sd["conv1.weight"])
    frozen = {id(p) for p in net.embedding.parameters() if not p.requires_grad}
    assert frozen and all(p.requires_grad for n, p in net.named_parameters() if n.startswith("encoder"))
    fresh = colorize_learner(dls, preset="autoencoder-fusion", pretrained=False, arch="resnet18", nf=8, global_size=32)
    assert not fresh.pretrained and all(p.requires_grad for p in generator_of(fresh).parameters())


def test_recon_loss_is_on_the_chroma_in_lab_and_on_rgb_in_rgb():
    targ = torch.rand(2, 3, 8, 8) * 0.5 + 0.25
    lighter = merge_luminance(rgb_to_luminance(targ) + 5, targ)  # the same chroma, another lightness
    for metric in ("l1", "mse"):
        assert ReconLoss(metric, "ab")(lighter, targ) < 1e-4 < ReconLoss(metric, "rgb")(lighter, targ)
        assert ReconLoss(metric, "ab")(to_gray(targ), targ) > 1e-3  # the chroma is what it measures
    with pytest.raises(ValueError):
        ReconLoss("huber")


def test_a_gan_preset_trains_under_bf16(dls):
    learn = colorize_learner(dls, preset="landscape-cgan", pretrained=False, nf=8, critic={"nf": 8}, precision="bf16")
    assert learn.precision == "bf16" and any(type(cb).__name__ == "BF16GANTraining" for cb in learn.cbs)
    with learn.no_bar(), learn.no_logging():
        learn.fit_stage(1, 1e-3)
    last = final_values(learn)
    assert np.isfinite(last["gen_loss"]) and last["crit_loss"] > 0 and np.isfinite(last["psnr"])
    assert generator_of(learn).unet.unet.downs[0].weight.dtype == torch.float32  # autocast, not a cast


def test_pix2pix_schedule_is_flat_then_linear_to_zero():
    sched = flat_linear(2e-4)
    assert [round(float(sched(p)), 8) for p in (0.0, 0.4, 0.75, 1.0)] == [2e-4, 2e-4, 1e-4, 0.0]


def test_the_default_recipe_is_unchanged(dls):
    learn = colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1")
    cfg = learn.colorizer_config
    assert type(cfg) is GeneratorConfig and "preset" not in cfg.to_dict() and cfg.self_attention
    assert learn.loss_name == "l1" and learn.wd == 1e-3 and not hasattr(learn, "gan_settings")


# ----------------------------------------------------------------------------------------------
# the command line


def test_cli_refuses_a_bad_preset_and_deoldify_only_options(photos, tmp_path, capsys):
    assert main(["train", str(photos), "-o", str(tmp_path / "m"), "--preset", "pix3pix"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'pix3pix'" in err and all(n in err for n in PRESET_NAMES)
    for extra in (["--preset", "fusion", "--arch", "resnet18"], ["--preset", "autoencoder", "--class-weight", "1"],
                  ["--set", "nf=8"], ["--preset", "fusion", "--set", "nf"]):
        assert main(["train", str(photos), "-o", str(tmp_path / "m"), *extra]) == 2
        assert capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_trains_a_preset_names_it_and_colorizes_with_it(photos, tmp_path, capsys):
    model = tmp_path / "p2p"
    cmd = ["train", str(photos), "-o", str(model), "--preset", "pix2pix", "--stages", "32:1:4", "--set", "nf=8",
           "--set", 'critic={"nf": 8}', "--render-size", "32", "--threads", "1", "--in-memory"]
    assert main(cmd) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "training a new pix2pix model (lab output) from scratch" in out
    card = json.loads((model / "config.json").read_text())
    assert card["generator"]["kind"] == "pix2pix_unet" and card["training"]["preset"] == "pix2pix"
    assert card["training"]["settings"] == {"nf": 8, "critic": {"nf": 8}}
    assert card["training"]["cgan"]["l1_weight"] == 100 and card["training"]["loss"] == "bce + 100 x l1"
    assert main(cmd) == 0  # the same command again resumes from the GAN's checkpoint
    assert "resuming after stage 1/1" in capsys.readouterr().out
    assert main(["info", str(model)]) == 0
    info = capsys.readouterr().out
    assert "preset:       pix2pix" in info and "pix2pix_unet" in info and "cgan:       BCE + 100" in info
    photo = tmp_path / "old.jpg"
    make_photo(36, 50, seed=3).convert("L").save(photo)
    assert main(["colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(model), "-q"]) == 0
    done = list((tmp_path / "out").glob("old*"))
    assert len(done) == 1 and load_colorizer(model).colorize(photo).size == (50, 36)


def test_info_names_the_starter_models_preset(capsys):
    assert main(["info"]) == 0
    assert "preset:       deoldify" in capsys.readouterr().out
