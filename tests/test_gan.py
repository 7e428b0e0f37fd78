"""NoGAN: critics, the generated-image cache, critic pretraining, GAN fine-tuning with best-checkpoint choice.

Everything runs on a tiny resnet18 U-Net (random encoder) at 32 px, a two-layer CNN feature loss and
critics with 8 filters, on the 12 synthetic photos of ``make_photo``.
"""

from __future__ import annotations

import copy
import json
import math
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_photo
from fastai.callback.core import Callback
from fastai.learner import Learner
from PIL import Image
from torch import nn

from colorkit.color import to_gray
from colorkit.gan import (
    CriticNet,
    EvalSet,
    check_divergence,
    create_critic,
    critic_dls,
    critic_learner,
    evaluate_generator,
    gan_finetune,
    load_eval_set,
    nogan_score,
    pretrain_critic,
    render_generated,
    resnet_critic,
    train_gan,
    weights_hash,
)
from colorkit.learner import colorize_learner, load_colorizer, save_colorizer
from colorkit.loss import FeatureLoss
from colorkit.models import WeightsUnavailableError
from colorkit.train import set_seed

SIZE, BS = 32, 2


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 small colour photos (PNG and JPEG), shared by the module: nothing here writes into it."""
    root = tmp_path_factory.mktemp("gan") / "photos"
    root.mkdir()
    for i in range(16):
        make_photo(28 + 4 * (i % 3), 36, seed=i).save(root / f"img_{i:02d}{'.png' if i % 2 else '.jpg'}")
    return root


def _extractor() -> nn.Sequential:
    torch.manual_seed(123)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())


def _gen_learn(photos: Path, seed: int = 0) -> Learner:
    """A tiny colorize_learner at 32 px (random resnet18 encoder, two-layer CNN feature loss)."""
    from colorkit.data import colorize_dls

    torch.manual_seed(seed)
    dls = colorize_dls(photos, size=SIZE, bs=BS, seed=seed)
    loss = FeatureLoss(_extractor(), [1, 3], [1.0, 1.0])
    return colorize_learner(dls, arch="resnet18", pretrained=False, loss_func=loss, metrics=[])


@pytest.fixture(scope="module")
def _base_learn(photos: Path):
    learn = _gen_learn(photos)
    return learn, _state(learn.model), learn.loss_func


def _reset(base, state: dict[str, torch.Tensor]) -> Learner:
    learn, _, loss = base
    learn.model.load_state_dict(state)
    learn.model.requires_grad_(True)
    learn.loss_func = loss
    return learn


@pytest.fixture
def gen_learn(_base_learn) -> Learner:
    """The module's tiny generator learner (random weights), reset for every test."""
    return _reset(_base_learn, _base_learn[1])


@pytest.fixture(scope="module")
def _fitted_state(_base_learn) -> dict[str, torch.Tensor]:
    from fastai.callback.training import ShortEpochCallback

    learn = _reset(_base_learn, _base_learn[1])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3, cbs=ShortEpochCallback(0.45, short_valid=True))  # 3 batches
    return _state(learn.model)


@pytest.fixture
def fitted_learn(_base_learn, _fitted_state) -> Learner:
    """The same learner trained one epoch, so its outputs look like photos (real metrics make sense)."""
    return _reset(_base_learn, _fitted_state)


def _critic(photos: Path, gen_learn, tmp_path: Path, epochs: int = 1):
    r = render_generated(gen_learn, photos, tmp_path / "cache", size=SIZE, n=8)
    crit = critic_learner(critic_dls(None, r, size=SIZE, bs=8), "spectral", nf=8, n_blocks=2)
    pretrain_critic(crit, epochs, 1e-3, progress=False)
    return crit


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        torch.testing.assert_close(now[k], v, rtol=0, atol=0, msg=f"{k} differs")


class FakeEval:
    """An injectable ``evaluate``: returns the next metrics of a fixed sequence and records the weights."""

    def __init__(self, seq: list[dict[str, float]]):
        self.seq, self.states = list(seq), []

    def __call__(self, model: nn.Module) -> dict[str, float]:
        assert not model.training, "the generator is scored in eval mode"
        self.states.append(_state(model))
        return self.seq[min(len(self.states), len(self.seq)) - 1]


# ----------------------------------------------------------------------------------------------
# critics


@pytest.mark.parametrize(
    "kind, kwargs",
    [("spectral", dict(nf=8, n_blocks=2)), ("spectral", dict(nf=8, n_blocks=1, self_attention=False)),
     ("patch", dict(nf=8, n_layers=2)), ("patch", dict(nf=8, n_layers=3, norm="batch")),
     ("resnet", dict(arch="resnet18", pretrained=False))],
)
def test_critic_gives_patch_logits(kind, kwargs):
    critic = create_critic(kind, **kwargs).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    out = critic(x)
    assert isinstance(critic, CriticNet) and critic.config["kind"] == kind
    assert out.ndim == 2 and out.shape[0] == 2 and torch.isfinite(out).all()
    # it normalises internally: a [0, 1] batch and the same batch as a fastai TensorImage agree
    from fastai.torch_core import TensorImage

    torch.testing.assert_close(critic(TensorImage(x)).as_subclass(torch.Tensor), out)


def test_critic_rejects_bad_input():
    critic = create_critic("spectral", nf=8, n_blocks=3)
    with pytest.raises(ValueError, match="at least 16 px"):
        critic(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        critic(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="unknown critic"):
        create_critic("stylegan")


def test_resnet_critic_weights_follow_the_generator_rules(tmp_path, monkeypatch):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    f = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), f)
    critic = resnet_critic("resnet18", weights=f)
    torch.testing.assert_close(critic.body[0].weight, ref.conv1.weight)
    assert critic.config["pretrained"] is True
    with pytest.raises(WeightsUnavailableError, match="resnet34"):
        resnet_critic("resnet34", weights=f)  # resnet18 weights do not fit a resnet34 body
    # offline, nothing cached: the error says which file to place where
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    with pytest.raises(WeightsUnavailableError, match="resnet18-"):
        resnet_critic("resnet18", pretrained=True)


def _no_network(*args, **kwargs):
    raise OSError(101, "Network is unreachable")


# ----------------------------------------------------------------------------------------------
# step 1: the cache of generated images


def test_render_cache_is_written_reused_and_invalidated(photos, gen_learn, tmp_path):
    gen = gen_learn.model
    cache = tmp_path / "cache"
    r1 = render_generated(gen, photos, cache, size=SIZE, n=4, seed=3)
    assert (r1.rendered, r1.reused, r1.invalidated) == (4, 0, 0)
    assert len(set(r1.files)) == 4 and all(f.parent == cache for f in r1.files)
    for f in r1.files:
        with Image.open(f) as im:
            assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["generator"] == weights_hash(gen) and manifest["size"] == SIZE
    assert sorted(manifest["files"]) == sorted(f.name for f in r1.files)
    mtimes = {f: f.stat().st_mtime_ns for f in r1.files}

    # the same generator and sample: nothing is rendered again, the files are untouched
    r2 = render_generated(gen, photos, cache, size=SIZE, n=4, seed=3)
    assert (r2.rendered, r2.reused) == (0, 4) and r2.files == r1.files
    assert {f: f.stat().st_mtime_ns for f in r2.files} == mtimes
    # a larger sample (the same seed) adds photos to the smaller one: only those are rendered
    r3 = render_generated(gen, photos, cache, size=SIZE, n=6, seed=3)
    assert (r3.rendered, r3.reused) == (2, 4) and set(r1.files) < set(r3.files)

    # another generator: the stale renderings are deleted and everything is rendered again
    other = copy.deepcopy(gen)
    with torch.no_grad():
        next(other.parameters()).mul_(1.01)
    assert weights_hash(other) != weights_hash(gen)
    r4 = render_generated(other, photos, cache, size=SIZE, n=4, seed=3)
    assert (r4.rendered, r4.reused, r4.invalidated) == (4, 0, 6)
    assert sorted(p.name for p in cache.glob("*.png")) == sorted(f.name for f in r4.files)
    # ... and the renderings are that generator's outputs for the centre-cropped gray photos
    src = load_eval_set(r4.sources[:1], size=SIZE)
    other.eval()
    with torch.no_grad():
        want = other(src.gray)[0].clamp(0, 1)
    got = torch.from_numpy(np.array(Image.open(r4.files[0]))).permute(2, 0, 1).float() / 255
    assert (got - want).abs().max() <= 1 / 255 + 1e-6


# ----------------------------------------------------------------------------------------------
# step 2: the critic


@pytest.mark.slow
def test_critic_learns_real_from_gray(photos, tmp_path):
    fakes = tmp_path / "gray"
    fakes.mkdir()
    for p in sorted(photos.iterdir()):
        Image.open(p).convert("L").convert("RGB").save(fakes / f"{p.stem}.png")
    dls = critic_dls(photos, fakes, size=SIZE, bs=8, valid_pct=0.25, seed=0)
    assert dls.vocab == ["fake", "real"]
    x, y = dls.one_batch()
    assert x.shape[1:] == (3, SIZE, SIZE) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert set(y.tolist()) <= {0, 1}
    set_seed(0)
    crit = critic_learner(dls, "spectral", nf=8, n_blocks=2)
    rep = pretrain_critic(crit, epochs=5, lr=1e-2, progress=False)
    assert rep["accuracy"] > 0.8, rep
    # the critic says "real" (logit > 0, label 1) for the colour photos
    real = torch.stack([torch.from_numpy(np.array(make_photo(SIZE, SIZE, seed=s))).permute(2, 0, 1) / 255
                        for s in range(50, 54)]).float()
    crit.model.eval()
    with torch.no_grad():
        assert (crit.model(real).mean(1) > crit.model(to_gray(real)).mean(1)).all()


# ----------------------------------------------------------------------------------------------
# scoring and divergence rules


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


def test_evaluate_generator_on_held_out_photos(photos):
    es = load_eval_set(photos, size=SIZE, n=5, seed=0)
    assert isinstance(es, EvalSet) and len(es) == 5 and es.gray.shape == (5, 3, SIZE, SIZE)

    class Oracle(nn.Module):  # returns the true colours: infinite PSNR, zero gap
        def forward(self, x):
            return es.color[: x.shape[0]]

    m = evaluate_generator(Oracle(), es, bs=8)
    assert m["psnr"] == math.inf and m["colorfulness_gap"] == pytest.approx(0, abs=1e-6)
    assert m["colorfulness_target"] > 5 and m["output_std"] > 0.05


# ----------------------------------------------------------------------------------------------
# step 3: the GAN phase


class _LRProbe(Callback):
    order = 64  # after the optimizer step is set up, before CriticLRMult restores the rate

    def __init__(self):
        self.seen = []

    def before_step(self):
        self.seen.append((self.learn.gan_trainer.gen_mode, self.learn.opt.hypers[-1]["lr"]))


@pytest.mark.slow
def test_gan_phase_switches_and_keeps_an_ordinary_colorizer(photos, fitted_learn, tmp_path):
    learn = fitted_learn
    crit = _critic(photos, learn, tmp_path)
    probe = _LRProbe()
    from colorkit import gan as gan_mod

    orig = gan_mod.GANLearner.from_learners

    def with_probe(*args, cbs=(), **kwargs):
        return orig(*args, cbs=[*cbs, probe], **kwargs)

    gan_mod.GANLearner.from_learners = with_probe
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # critic_thresh above any BCE value: the adaptive switcher hands over after every step
            rep = gan_finetune(learn, crit, n_iter=4, lr=1e-5, every=2, critic_thresh=10.0, progress=False,
                               checkpoint_dir=tmp_path / "ckpt", n_eval=4)
    finally:
        gan_mod.GANLearner.from_learners = orig
    assert (rep["iterations"], rep["gen_steps"], rep["crit_steps"]) == (4, 2, 2)
    assert [c["iter"] for c in rep["checkpoints"]] == [0, 2, 4] and rep["diverged"] is None
    assert {"psnr", "colorfulness_gap", "output_std"} <= set(rep["start_metrics"])
    json.dumps(rep, allow_nan=False)  # the report is strict JSON
    # critic steps ran at 5x the generator's learning rate, generator steps at the rate asked for
    lrs = {mode: {round(lr, 12) for m, lr in probe.seen if m == mode} for mode in (True, False)}
    assert lrs == {True: {1e-5}, False: {5e-5}}
    # the best generator is an ordinary colorizer: saved, loaded and colorizing like the learner
    assert (tmp_path / "ckpt" / "gan_history.json").is_file()
    assert load_colorizer(tmp_path / "ckpt" / "best").config["generator"]["arch"] == "resnet18"
    clr = load_colorizer(save_colorizer(learn, tmp_path / "model", half=False))
    img = make_photo(40, 56, seed=99)
    a, b = clr.colorize(img, render_size=SIZE), learn.colorize(img, render_size=SIZE)
    assert a.size == img.size and np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= 1
    assert all(p.requires_grad for p in learn.model.parameters())
    assert all(p.requires_grad for p in crit.model.parameters())


def _crit(photos: Path, kind: str = "spectral") -> Learner:
    kw = dict(nf=8, n_blocks=2) if kind == "spectral" else dict(nf=8, n_layers=2)
    return critic_learner(critic_dls(photos, photos, size=SIZE, bs=8), kind, **kw)


@pytest.mark.slow
def test_best_checkpoint_is_chosen_by_metric(photos, gen_learn, tmp_path):
    learn = gen_learn
    # iterations alternate critic / generator steps (critic_thresh above any BCE): 1 c, 2 g, 3 c, 4 g
    seq = [
        {"psnr": 20.0, "colorfulness_gap": 10.0},  # 0: the start
        {"psnr": 20.0, "colorfulness_gap": 11.0},  # 1: worse
        {"psnr": 19.6, "colorfulness_gap": 6.0},  # 2: the best
        {"psnr": 19.0, "colorfulness_gap": 2.0},  # 3: smallest gap, but 1 dB of PSNR lost: not allowed
        {"psnr": 20.1, "colorfulness_gap": 7.0},  # 4: worse than 2
    ]
    fake = FakeEval(seq)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rep = gan_finetune(learn, _crit(photos), n_iter=4, lr=1e-4, every=1, evaluate=fake,
                           critic_thresh=10.0, progress=False, checkpoint_dir=tmp_path / "ckpt")
    assert not [w for w in rec if "GAN phase" in str(w.message)]  # no divergence, no "did not improve"
    assert [c["iter"] for c in rep["checkpoints"]] == [0, 1, 2, 3, 4]
    assert rep["best_iter"] == 2 and rep["improved"] and rep["diverged"] is None
    assert rep["best_metrics"] == seq[2] and rep["checkpoints"][3]["score"] is None
    _assert_same_state(learn.model, fake.states[2])  # a middle checkpoint was put back ...
    # critic steps (iterations 1 and 3) leave the generator exactly as it was: no BatchNorm statistics
    # moved (eval mode), no weight decay on it (its stale gradients are not stepped)
    for before, after in ((0, 1), (2, 3)):
        assert all(torch.equal(v, fake.states[after][k]) for k, v in fake.states[before].items())
    changed = [k for k, v in fake.states[2].items() if not torch.equal(v, fake.states[4][k])]
    assert changed and [k for k, v in fake.states[2].items() if not torch.equal(v, fake.states[0][k])]
    hist = json.loads((tmp_path / "ckpt" / "gan_history.json").read_text())
    assert hist["best_iter"] == 2 and len(hist["history"]) == 5
    assert json.loads((tmp_path / "ckpt" / "best" / "metrics.json").read_text())["gan_iter"] == 2


@pytest.mark.slow
def test_score_function_is_injectable(photos, gen_learn):
    seq = [{"psnr": 20.0, "colorfulness_gap": 10.0}, {"psnr": 25.0, "colorfulness_gap": 30.0},
           {"psnr": 21.0, "colorfulness_gap": 1.0}]
    fake = FakeEval(seq)
    rep = gan_finetune(gen_learn, _crit(photos, "patch"), n_iter=2, every=1, evaluate=fake, score=_psnr_only,
                       critic_thresh=10.0, progress=False)
    assert rep["best_iter"] == 1
    _assert_same_state(gen_learn.model, fake.states[1])


def _psnr_only(metrics, start):
    return metrics["psnr"]


@pytest.mark.slow
def test_divergence_stops_and_keeps_the_start_weights(photos, gen_learn):
    start = _state(gen_learn.model)
    ok = {"psnr": 20.0, "colorfulness_gap": 10.0, "output_std": 0.2}
    fake = FakeEval([ok, dict(ok, colorfulness_gap=12.0), dict(ok, colorfulness_gap=1.0, output_std=0.001),
                     dict(ok, colorfulness_gap=0.5)])
    with pytest.warns(UserWarning, match="diverged at iteration 2: flat outputs"):
        rep = gan_finetune(gen_learn, _crit(photos), n_iter=20, lr=1e-4, every=1, evaluate=fake,
                           critic_thresh=10.0, progress=False)
    assert rep["iterations"] == 2 and rep["diverged_at"] == 2 and "flat" in rep["diverged"]
    assert rep["best_iter"] == 0 and not rep["improved"]
    assert rep["checkpoints"][-1]["score"] is None
    _assert_same_state(gen_learn.model, start)


class _NaNLoss(nn.Module):
    """A feature loss gone NaN (a blown-up generator step)."""

    def __init__(self):
        super().__init__()
        self.inner = FeatureLoss(_extractor(), [1, 3], [1.0, 1.0])

    def forward(self, pred, targ):
        return self.inner(pred, targ) * float("nan")


@pytest.mark.slow
def test_nan_loss_keeps_the_best_weights(photos, gen_learn):
    gen_learn.loss_func = _NaNLoss()
    start = _state(gen_learn.model)
    fake = FakeEval([{"psnr": 20.0, "colorfulness_gap": 10.0}])
    with pytest.warns(UserWarning, match="diverged"):
        rep = gan_finetune(gen_learn, _crit(photos), n_iter=50, lr=1e-4, every=10, evaluate=fake,
                           critic_thresh=10.0, progress=False)
    # the critic steps first; the first generator step is NaN and stops everything
    assert rep["diverged"] == "the generator loss is nan at iteration 2" and rep["iterations"] == 2
    _assert_same_state(gen_learn.model, start)
    state = gen_learn.model.state_dict().values()
    assert all(torch.isfinite(v).all() for v in state if v.is_floating_point())


# ----------------------------------------------------------------------------------------------
# the whole sequence, from a saved colorizer (what the CLI's --gan runs)


@pytest.mark.slow
def test_train_gan_from_a_saved_model(photos, fitted_learn, tmp_path):
    saved = save_colorizer(fitted_learn, tmp_path / "start")
    out = tmp_path / "gan_model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = train_gan(saved, photos, out, size=SIZE, bs=BS, max_items=8,
                        loss_func=FeatureLoss(_extractor(), [1, 3], [1, 1]), n_render=6,
                        critic_kwargs=dict(nf=8, n_blocks=2), critic_epochs=1, n_iter=2, every=1, n_eval=4,
                        critic_thresh=10.0, progress=False)
    assert rep["render"]["rendered"] == 6 and (out / "gan_cache" / "manifest.json").is_file()
    assert rep["critic"]["accuracy"] is not None and rep["iterations"] == 2
    assert len(rep["checkpoints"]) == 3 and (out / "gan_checkpoints" / "gan_history.json").is_file()
    clr = load_colorizer(out)
    assert clr.config["training"]["gan"]["best_iter"] == rep["best_iter"]
    assert clr.config["training"]["from_model"] == str(saved)
    assert rep["kept_start"] == (rep["best_iter"] == 0)
    assert clr.colorize(make_photo(30, 40, seed=5), render_size=SIZE).size == (40, 30)
