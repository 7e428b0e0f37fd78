"""NoGAN: the generated-image cache, critic pretraining, the GAN phase's callbacks and scoring, GAN fine-tuning
with best-checkpoint choice, and the whole sequence from a saved model.

Everything runs on a tiny resnet18 U-Net (random encoder) at 32 px, a two-layer CNN feature loss and
critics with 8 filters, on the 16 synthetic photos of ``make_photo``.
"""

from __future__ import annotations

import copy
import json
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
from colorkit.data import center_crop
from colorkit.learner import colorize_learner, load_colorizer, save_colorizer
from colorkit.loss import FeatureLoss
from colorkit.nogan import (
    GANReport,
    NoGANReport,
    critic_dls,
    critic_learner,
    gan_finetune,
    pretrain_critic,
    render_generated,
    train_gan,
    weights_hash,
)
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
    # ... and the renderings are that generator's outputs for the gray photos, centre-cropped as the critic
    # sees the real ones
    crop = center_crop(Image.open(r4.sources[0]).convert("RGB"), SIZE)
    x = torch.from_numpy(np.array(crop)).permute(2, 0, 1).float().div(255)[None]
    other.eval()
    with torch.no_grad():
        want = other(to_gray(x))[0].clamp(0, 1)
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
    import importlib

    nogan_mod = importlib.import_module("colorkit.nogan")
    orig = nogan_mod.GANLearner.from_learners

    def with_probe(*args, cbs=(), **kwargs):
        return orig(*args, cbs=[*cbs, probe], **kwargs)

    nogan_mod.GANLearner.from_learners = with_probe
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # critic_thresh above any BCE value: the adaptive switcher hands over after every step
            rep = gan_finetune(learn, crit, n_iter=4, lr=1e-5, every=2, critic_thresh=10.0, progress=False,
                               checkpoint_dir=tmp_path / "ckpt", n_eval=4)
    finally:
        nogan_mod.GANLearner.from_learners = orig
    assert (rep["iterations"], rep["gen_steps"], rep["crit_steps"]) == (4, 2, 2)
    assert [c["iter"] for c in rep["checkpoints"]] == [0, 2, 4] and rep["diverged"] is None
    assert {"psnr", "colorfulness_gap", "output_std"} <= set(rep["start_metrics"])
    assert isinstance(rep, GANReport) and rep.iterations == rep["iterations"] == 4
    json.dumps(rep.to_dict(), allow_nan=False)  # the report is strict JSON
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
    assert isinstance(rep, NoGANReport) and rep.best_iter == rep.gan.best_iter == rep["best_iter"]
    json.dumps(rep.to_dict(), allow_nan=False)
    assert rep["render"]["rendered"] == 6 and (out / "gan_cache" / "manifest.json").is_file()
    assert rep["critic"]["accuracy"] is not None and rep["iterations"] == 2
    assert len(rep["checkpoints"]) == 3 and (out / "gan_checkpoints" / "gan_history.json").is_file()
    clr = load_colorizer(out)
    assert clr.config["training"]["gan"]["best_iter"] == rep["best_iter"]
    assert clr.config["training"]["from_model"] == str(saved)
    assert rep["kept_start"] == (rep["best_iter"] == 0)
    assert clr.colorize(make_photo(30, 40, seed=5), render_size=SIZE).size == (40, 30)
