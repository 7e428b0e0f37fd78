"""The demo's sample photos: a deterministic synthetic scene and the list in samples.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colorkit.samples import SAMPLES_DIR, SamplePhoto, load_samples, synthetic_scene


def test_synthetic_scene_is_colourful_and_seeded():
    a, b = synthetic_scene(64, 48, seed=1), synthetic_scene(64, 48, seed=1)
    assert a.size == (64, 48) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(synthetic_scene(64, 48, seed=2)))
    arr = np.asarray(a).astype(int)
    assert np.abs(arr - arr.mean(axis=-1, keepdims=True)).mean() > 10  # colour, not gray


def test_load_samples_reads_the_list_and_files(tmp_path):
    listed = {e["name"] for e in json.loads((SAMPLES_DIR / "samples.json").read_text())["samples"]}
    assert {s.name for s in load_samples()} <= listed
    synthetic_scene(40, 30).save(tmp_path / "mine.png")
    (tmp_path / "samples.json").write_text(json.dumps({"samples": [
        {"name": "mine", "source": "file", "file": "mine.png", "credit": "me"},
        {"name": "drawn", "source": "synthetic", "seed": 3}]}))
    got = load_samples(tmp_path)
    assert [s.name for s in got] == ["mine", "drawn"] and isinstance(got[0], SamplePhoto)
    assert got[0].image.size == (40, 30) and got[0].credit == "me"


def test_an_unavailable_matplotlib_sample_is_skipped_with_a_warning(tmp_path):
    (tmp_path / "samples.json").write_text(json.dumps({"samples": [
        {"name": "gone", "source": "matplotlib", "file": "no_such_sample.jpg"},
        {"name": "drawn", "source": "synthetic"}]}))
    with pytest.warns(UserWarning, match="no_such_sample.jpg"):
        got = load_samples(tmp_path)
    assert [s.name for s in got] == ["drawn"]
