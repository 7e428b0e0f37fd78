import json

import pytest
import torch
from torch import nn

from colorkit import DEFAULT_STAGES, Stage, colorize_dls, colorize_learner, fit_progressive
from colorkit.loss import FeatureLoss
from colorkit.train import parse_lr, parse_stages


def tiny_loss() -> FeatureLoss:
    torch.manual_seed(0)
    ext = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    return FeatureLoss(ext, layer_ids=[1], layer_weights=[1.0])


@pytest.fixture
def learn(photo_dir):
    torch.manual_seed(0)
    return colorize_learner(colorize_dls(photo_dir, size=32, bs=4), arch="resnet18", pretrained=False,
                            loss_func=tiny_loss())


def test_default_stages_follow_the_recipe():
    sizes = [s.size for s in DEFAULT_STAGES]
    assert sizes[0] == 64 and sizes[-1] == 220 and sizes == sorted(sizes)
    assert DEFAULT_STAGES[0].frozen and all(isinstance(s.lr, tuple) for s in DEFAULT_STAGES[1:])


def test_stage_accepts_slices_and_validates():
    s = Stage(64, 1, lr=slice(1e-6, 1e-4))
    assert s.lr == (1e-6, 1e-4) and s.lr_arg == slice(1e-6, 1e-4)
    assert Stage(64, 1, lr=1e-3).lr_arg == 1e-3
    with pytest.raises(ValueError):
        Stage(64, 1, data_pct=0)


def test_parse_stages():
    st = parse_stages("64:4,128:2:8")
    assert [(s.size, s.epochs) for s in st] == [(64, 4), (128, 2)] and st[1].bs == 8
    with pytest.raises(ValueError, match="bad stage"):
        parse_stages("64-4")


def test_parse_stages_with_per_stage_learning_rates():
    st = parse_stages("64:1:16@1e-3,128:2@3e-4..6e-4,220:1", lr=2e-4)
    assert [s.lr for s in st] == [1e-3, (3e-4, 6e-4), 2e-4]
    assert st[0].bs == 16 and st[1].epochs == 2
    for bad in ("64:1@", "64:1@fast", "64:1@1e-3..", "64:1@2"):
        with pytest.raises(ValueError, match="learning rate|bad stage"):
            parse_stages(bad)


def test_stages_change_the_loader_size(learn, photo_dir):
    seen = []

    def make_dls(source, size, bs, **kw):
        dls = colorize_dls(source, size=size, bs=bs, **kw)
        seen.append(dls.one_batch()[0].shape[-1])
        return dls

    hist = fit_progressive(learn, photo_dir, [Stage(32, 1, bs=4), Stage(48, 1, lr=(1e-5, 1e-4), bs=4)],
                           make_dls=make_dls)
    assert seen == [32, 48]
    assert learn.dls.one_batch()[0].shape[-2:] == (48, 48)
    assert [h["size"] for h in hist] == [32, 48] and all("valid_loss" in h for h in hist)


def test_resume_skips_finished_stages(learn, photo_dir, tmp_path):
    stages = [Stage(32, 1, bs=4), Stage(32, 1, bs=4)]
    ckpt = tmp_path / "ckpt"
    calls = []

    def make_dls(source, size, bs, **kw):
        calls.append(size)
        return colorize_dls(source, size=size, bs=bs, **kw)

    fit_progressive(learn, photo_dir, stages[:1] + [Stage(32, 0, bs=4)], checkpoint_dir=ckpt, make_dls=make_dls)
    # a different schedule in the same folder is refused rather than silently mixed
    with pytest.raises(ValueError, match="other stages"):
        fit_progressive(learn, photo_dir, stages, checkpoint_dir=ckpt, make_dls=make_dls)

    # simulate an interruption after stage 1: keep only its checkpoint
    prog = json.loads((ckpt / "progress.json").read_text())
    prog["finished"], prog["history"] = [0], prog["history"][:1]
    (ckpt / "progress.json").write_text(json.dumps(prog))
    saved = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with torch.no_grad():
        for p in learn.model.parameters():
            p.add_(1.0)  # scramble: resume must reload stage 1's weights
    calls.clear()
    learn.model.load_state_dict(saved)
    hist = fit_progressive(learn, photo_dir, stages[:1] + [Stage(32, 0, bs=4)], checkpoint_dir=ckpt,
                           make_dls=make_dls)
    assert calls == [32]  # only the unfinished stage built loaders
    assert [h["stage"] for h in hist] == [0, 1]
    assert (ckpt / "stage_1.safetensors").is_file()


def test_resume_loads_last_checkpoint_weights(learn, photo_dir, tmp_path):
    ckpt = tmp_path / "ckpt"
    fit_progressive(learn, photo_dir, [Stage(32, 1, bs=4)], checkpoint_dir=ckpt)
    trained = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with torch.no_grad():
        for p in learn.model.parameters():
            p.zero_()
    fit_progressive(learn, photo_dir, [Stage(32, 1, bs=4)], checkpoint_dir=ckpt)  # all finished: only reload
    for k, v in learn.model.state_dict().items():
        torch.testing.assert_close(v, trained[k])


def test_parse_lr_takes_both_range_spellings():
    assert parse_lr("1e-3") == 1e-3
    assert parse_lr("1e-5..1e-3") == parse_lr("1e-5:1e-3") == (1e-5, 1e-3)
    for bad in ("", "fast", "0", "1e-3..", "1e-5:1e-4:1e-3"):
        with pytest.raises(ValueError, match="learning rate"):
            parse_lr(bad)


def test_fit_progressive_is_a_learner_method_returning_a_report(learn, photo_dir, tmp_path):
    from colorkit.train import FitReport, StageRecord

    report = learn.fit_progressive(photo_dir, [Stage(32, 1, bs=4), Stage(32, 0, bs=4)], checkpoint_dir=tmp_path)
    assert isinstance(report, FitReport) and len(report) == 2 and isinstance(report[0], StageRecord)
    assert report[0]["size"] == 32 and "valid_loss" in report[0] and report[0].settings.epochs == 1
    assert report.final == report[-1].results and report.resumed_after is None
    assert report.to_list() == json.loads((tmp_path / "progress.json").read_text())["history"]
    again = fit_progressive(learn, photo_dir, [Stage(32, 1, bs=4), Stage(32, 0, bs=4)], checkpoint_dir=tmp_path)
    assert again.resumed_after == 1 and again.to_list() == report.to_list()  # all finished: read back


def test_resolve_start(tmp_path, monkeypatch):
    import colorkit.modelcard
    from colorkit.learner import save_colorizer
    from colorkit.models import create_generator
    from colorkit.train import resolve_start

    torch.manual_seed(0)
    model = save_colorizer(create_generator("resnet18", mode="rgb", img_size=32), tmp_path / "m")
    start = resolve_start(model)
    assert (start.model, start.arch, start.mode) == (model, "resnet18", "rgb") and "fine-tuning" in start.note
    with pytest.raises(ValueError, match="resnet18/rgb model; arch resnet34 does not match"):
        resolve_start(model, arch="resnet34")
    with pytest.raises(FileNotFoundError):
        resolve_start(tmp_path / "nothing")
    scratch = resolve_start("none", pretrained=False)
    assert (scratch.model, scratch.arch, scratch.mode) == (None, "resnet34", "lab") and "random" in scratch.note
    monkeypatch.setattr(colorkit.modelcard, "STARTER_MODEL", model)  # the starter is the default ...
    assert resolve_start().model == model
    other = resolve_start(arch="resnet50")  # ... and asking for another arch trains a new model
    assert (other.model, other.arch, other.mode) == (None, "resnet50", "rgb")
    monkeypatch.setattr(colorkit.modelcard, "STARTER_MODEL", tmp_path / "not-installed")
    assert resolve_start().model is None
