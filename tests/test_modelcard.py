"""The model card: config.json read and written in one place, old formats brought up to date, model folders."""

from __future__ import annotations

import json

import pytest

from colorkit.modelcard import (
    CONFIG_FILE,
    DEFAULT_KIND,
    FORMAT_VERSION,
    STARTER_MODEL,
    ModelCard,
    Record,
    check_model_dir,
    read_metrics,
)


def _folder(tmp_path, config):
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"")
    return tmp_path


def test_round_trip_keeps_every_key(tmp_path):
    card = ModelCard(generator={"kind": "resnet_unet", "arch": "resnet18", "mode": "lab"}, render_size=320,
                     dtype="float16", n_params=12, training={"seed": 1, "history": [{"stage": 0, "size": 64}]},
                     extra={"note": "kept"})
    path = card.write(tmp_path)
    assert json.loads(path.read_text())["note"] == "kept"
    again = ModelCard.from_dir(_folder(tmp_path, json.loads(path.read_text())))
    assert again == card and again.path == tmp_path and again.to_json() == card.to_json()


def test_format_1_configs_are_brought_up_to_date():
    old = ModelCard.from_dict({"format_version": 1, "generator": {"arch": "resnet34"}, "render_size": 256})
    assert (old.kind, old.mode, old.format_version) == (DEFAULT_KIND, "rgb", 1)  # before lab was the default
    assert ModelCard.from_dict({"generator": {"arch": "resnet34", "mode": "lab"}}).mode == "lab"


def test_bad_configs_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(ValueError, match="config.json: not a colorkit config"):
        ModelCard.from_dict({"render_size": 256})
    with pytest.raises(ValueError, match="newer than this colorkit"):
        ModelCard.from_dict({"format_version": FORMAT_VERSION + 1, "generator": {}})
    (tmp_path / CONFIG_FILE).write_text("{broken")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=f"{CONFIG_FILE}: not a colorkit config"):
        ModelCard.from_dir(tmp_path)


def test_model_folders_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        check_model_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        check_model_dir(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        check_model_dir(tmp_path)


def test_final_metrics_are_the_last_stage_results_without_its_settings():
    card = ModelCard.from_dict({"generator": {"arch": "resnet18"}, "training": {"history": [
        {"stage": 0, "size": 32, "valid_loss": 2.0},
        {"stage": 1, "size": 64, "epochs": 1, "lr": [1e-5, 1e-4], "bs": 8, "frozen": False, "data_pct": 1.0,
         "seconds": 3.0, "valid_loss": 1.5, "psnr": 20.0}]}})
    assert card.final_metrics() == {"valid_loss": 1.5, "psnr": 20.0}
    assert ModelCard.from_dict({"generator": {}}).final_metrics() == {}


def test_describe_and_metrics(tmp_path):
    card = ModelCard.from_dict({"generator": {"arch": "resnet34", "mode": "lab", "self_attention": True,
                                              "chroma_head": "classes"}})
    assert card.describe() == "resnet34 U-Net, lab output, colour-class head, self-attention"
    assert read_metrics(tmp_path) == {}
    (tmp_path / "metrics.json").write_text("[1,")
    with pytest.raises(ValueError, match="metrics.json"):
        read_metrics(tmp_path)


def test_records_read_like_dicts():
    class R(Record):
        def to_dict(self):
            return {"a": 1}

    r = R()
    assert r["a"] == 1 and r.get("b", 2) == 2 and "a" in r and list(r.keys()) == ["a"]


@pytest.mark.skipif(not (STARTER_MODEL / CONFIG_FILE).is_file(), reason="starter model not shipped")
def test_the_shipped_starter_reads_unchanged():
    card = ModelCard.from_dir(STARTER_MODEL)
    raw = json.loads((STARTER_MODEL / CONFIG_FILE).read_text())
    assert card.kind == DEFAULT_KIND and card.arch == raw["generator"]["arch"]
    assert card.render_size == raw["render_size"] and card.training == raw["training"]
