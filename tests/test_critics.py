"""Critics: patch logits, input checks, and ResNet weights that follow the generator's rules."""

from __future__ import annotations

import socket

import pytest
import torch

from colorkit.critics import CriticNet, create_critic, resnet_critic
from colorkit.models import WeightsUnavailableError

SIZE = 32


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
