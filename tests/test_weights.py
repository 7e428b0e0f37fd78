"""Weight resolution: torch hub cache, offline errors that say what to do, safe local files.

Nothing here downloads: TORCH_HOME is an empty tmp dir and the network is cut or the download patched.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torchvision.models import ResNet34_Weights, VGG16_BN_Weights

from colorkit._weights import (
    WeightsUnavailableError,
    load_state_dict_file,
    resolve_weights,
    torchvision_cache_path,
    torchvision_state_dict,
)

ENUM = ResNet34_Weights.IMAGENET1K_V1
FILENAME = "resnet34-b627a593.pth"  # basename of ENUM.url


def _tiny_state() -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.arange(6.0).reshape(2, 3), "bn.num_batches_tracked": torch.tensor(3)}


def _fail_download(*args, **kwargs):
    raise AssertionError(f"a download was attempted: {args[:2]}")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME; any set_dir() override is cleared and restored afterwards."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so get_dir() follows TORCH_HOME
    return home


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network at all: name resolution and connections fail as they do on an air-gapped machine."""

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    def no_connect(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket, "create_connection", no_connect)


def _chain(err: BaseException) -> list[BaseException]:
    """The exceptions Python would print with ``err`` (causes and un-suppressed contexts)."""
    seen, cur = [], err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    while cur is not None:
        seen.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return seen


class TestCachePath:
    def test_follows_torch_home(self, torch_home: Path):
        assert torchvision_cache_path(ENUM) == torch_home / "hub" / "checkpoints" / FILENAME

    def test_same_path_torch_hub_uses(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch):
        seen = {}

        def fake_download(url, dst, *args, **kwargs):
            seen["dst"] = Path(dst)
            torch.save(_tiny_state(), dst)

        monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
        sd = torchvision_state_dict(ENUM)
        assert seen["dst"] == torchvision_cache_path(ENUM)
        torch.testing.assert_close(sd["conv.weight"], _tiny_state()["conv.weight"])


class TestOffline:
    def _check_message(self, err: WeightsUnavailableError, enum=ENUM) -> None:
        msg = str(err)
        path = torchvision_cache_path(enum)
        assert path.name in msg
        assert str(path) in msg
        assert enum.url in msg
        assert "pretrained=False" in msg
        assert 'weights="' in msg
        assert "TORCH_HOME" in msg
        assert type(enum).__name__ in msg and enum.name in msg
        assert err.__cause__ is None and err.__suppress_context__
        assert not [e for e in _chain(err) if isinstance(e, (URLError, OSError))]

    def test_download_error(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch):
        def fail(*args, **kwargs):
            raise URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

        monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
        with pytest.raises(WeightsUnavailableError) as info:
            torchvision_state_dict(ENUM)
        self._check_message(info.value)
        assert "name resolution" in str(info.value)

    @pytest.mark.parametrize("exc", [TimeoutError("timed out"), ConnectionResetError(104, "reset by peer")])
    def test_other_network_errors(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch, exc: Exception):
        def fail(*args, **kwargs):
            raise exc

        monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
        with pytest.raises(WeightsUnavailableError) as info:
            torchvision_state_dict(ENUM)
        self._check_message(info.value)

    def test_real_download_path_with_sockets_blocked(self, torch_home: Path, offline: None):
        """torchvision's own get_state_dict -> torch.hub -> urllib, with the network cut at the socket."""
        with pytest.raises(WeightsUnavailableError) as info:
            torchvision_state_dict(VGG16_BN_Weights.IMAGENET1K_V1)
        self._check_message(info.value, VGG16_BN_Weights.IMAGENET1K_V1)
        assert not torchvision_cache_path(VGG16_BN_Weights.IMAGENET1K_V1).exists()

    def test_resolve_weights_pretrained_offline(self, torch_home: Path, offline: None):
        with pytest.raises(WeightsUnavailableError, match="pretrained=False"):
            resolve_weights(ENUM, pretrained=True)


class TestCached:
    def test_cached_file_loaded_without_network(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
        monkeypatch.setattr(socket.socket, "connect", _fail_download)
        path = torchvision_cache_path(ENUM)
        path.parent.mkdir(parents=True)
        torch.save(_tiny_state(), path)
        sd = torchvision_state_dict(ENUM)
        assert set(sd) == {"conv.weight", "bn.num_batches_tracked"}
        torch.testing.assert_close(sd["conv.weight"], _tiny_state()["conv.weight"])
        assert sd["conv.weight"].device.type == "cpu"
        assert resolve_weights(ENUM, pretrained=True).keys() == sd.keys()

    def test_corrupt_cached_file(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
        path = torchvision_cache_path(ENUM)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"this is not a checkpoint, it was cut off mid-downl")
        with pytest.raises(WeightsUnavailableError) as info:
            torchvision_state_dict(ENUM)
        assert str(path) in str(info.value)
        assert "delete" in str(info.value)


class Payload:
    """Unpickling this would run ``__setstate__``: weights_only loading must refuse it."""

    ran = False

    def __init__(self) -> None:
        self.note = "runs code when unpickled"

    def __setstate__(self, state):
        Payload.ran = True


class TestLocalFile:
    @pytest.mark.parametrize("ext", [".pth", ".pt"])
    def test_torch_round_trip(self, tmp_path: Path, ext: str):
        path = tmp_path / f"w{ext}"
        torch.save(_tiny_state(), path)
        sd = load_state_dict_file(path)
        torch.testing.assert_close(sd["conv.weight"], _tiny_state()["conv.weight"])
        assert sd["bn.num_batches_tracked"].item() == 3

    def test_safetensors_round_trip(self, tmp_path: Path):
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file(_tiny_state(), str(path))
        sd = load_state_dict_file(str(path))
        torch.testing.assert_close(sd["conv.weight"], _tiny_state()["conv.weight"])

    @pytest.mark.parametrize("key", ["state_dict", "model"])
    def test_wrapped_state_dict(self, tmp_path: Path, key: str):
        path = tmp_path / "ckpt.pth"
        torch.save({key: _tiny_state(), "epoch": 3}, path)
        assert set(load_state_dict_file(path)) == set(_tiny_state())

    def test_missing_file(self, tmp_path: Path):
        path = tmp_path / "nope.pth"
        with pytest.raises(WeightsUnavailableError, match="nope.pth") as info:
            load_state_dict_file(path)
        assert "does not exist" in str(info.value)

    @pytest.mark.parametrize("name", ["bad.pth", "bad.safetensors"])
    def test_corrupt_file(self, tmp_path: Path, name: str):
        path = tmp_path / name
        path.write_bytes(b"\x00garbage" * 10)
        with pytest.raises(WeightsUnavailableError, match=name) as info:
            load_state_dict_file(path)
        assert info.value.__cause__ is None and info.value.__suppress_context__

    def test_pickled_object_refused(self, tmp_path: Path):
        path = tmp_path / "evil.pth"
        torch.save({"conv.weight": torch.zeros(2), "payload": Payload()}, path)
        Payload.ran = False
        with pytest.raises(WeightsUnavailableError, match="evil.pth") as info:
            load_state_dict_file(path)
        assert "weights_only" in str(info.value)
        assert not Payload.ran

    def test_not_a_state_dict(self, tmp_path: Path):
        path = tmp_path / "list.pth"
        torch.save([torch.zeros(2)], path)
        with pytest.raises(WeightsUnavailableError, match="does not hold a state dict"):
            load_state_dict_file(path)


class TestResolve:
    def test_path_wins_over_pretrained(
        self, tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
        path = tmp_path / "local.pth"
        torch.save(_tiny_state(), path)
        sd = resolve_weights(ENUM, pretrained=True, weights=path)
        assert sd is not None and set(sd) == set(_tiny_state())

    def test_random_init_is_none(self, torch_home: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setattr(torch.hub, "download_url_to_file", _fail_download)
        assert resolve_weights(ENUM, pretrained=False) is None
        assert not torchvision_cache_path(ENUM).parent.exists()
