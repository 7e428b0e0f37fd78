"""Precision: hardware detection, resolution of "auto", autocast, and bf16 training tracking fp32."""

import pytest
import torch

from colorkit import colorize_dls, colorize_learner
from colorkit.callbacks import BF16Training
from colorkit.precision import autocast, cpu_bf16_flags, has_bf16, resolve_precision


def test_cpu_flags_parsed(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_flags(str(f)) == ("amx_bf16", "avx512_bf16")
    g = tmp_path / "cpuinfo2"
    g.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_bf16_flags(str(g)) == ()
    assert cpu_bf16_flags(str(tmp_path / "missing")) == ()


def test_resolve(monkeypatch):
    import colorkit.precision as p

    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(p, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(p, "cpu_bf16_flags", lambda: ())
    assert resolve_precision("auto", "cpu") == "fp32"
    assert has_bf16("cpu") is False
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp16")


def test_autocast_only_for_bf16():
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    with autocast("bf16", "cpu"):
        assert (x @ w).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (x @ w).dtype == torch.float32


def test_bf16_training_tracks_fp32(photo_dir):
    """A few steps in bf16 end near the same loss as in fp32 (same seed, same batches), and the model
    output stays float32 with the colour conversion outside autocast."""
    losses = {}
    for prec in ("fp32", "bf16"):
        torch.manual_seed(0)
        dls = colorize_dls(photo_dir, size=32, bs=4, augment=False, shuffle=False)
        learn = colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1", precision=prec)
        assert learn.precision == prec
        assert any(isinstance(c, BF16Training) for c in learn.cbs) == (prec == "bf16")
        learn.fit(3, 1e-3)
        losses[prec] = [v[0] for v in learn.recorder.values]
        x, _ = dls.one_batch()
        assert learn.model.eval()(x).dtype == torch.float32
        assert learn.model.unet[0][0].weight.is_contiguous()  # channels_last undone after fitting
    for a, b in zip(losses["fp32"], losses["bf16"], strict=True):
        assert abs(a - b) <= 0.1 * a + 1e-3, losses
