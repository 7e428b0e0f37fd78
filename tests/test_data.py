import pickle
import time
import warnings

import matplotlib
import pytest
import torch
from PIL import Image

from colorkit.color import rgb_to_luminance, to_gray
from colorkit.data import OldPhotoDegrade, clear_scan_cache, colorize_block, colorize_dls, photo_chroma
from conftest import make_photo

matplotlib.use("Agg")


def _valid_names(dls):
    return sorted(p.name for p in dls.valid_ds.items)


def test_shapes_ranges_and_gray_input(photo_dir):
    dls = colorize_dls(photo_dir, size=32, bs=4)
    for dl in (dls.train, dls.valid):
        x, y = dl.one_batch()
        assert x.shape == y.shape and x.shape[1:] == (3, 32, 32)
        assert 0 <= float(x.min()) and float(x.max()) <= 1 and 0 <= float(y.min()) and float(y.max()) <= 1
        # same photo, same crop/flip/warp: x is exactly the gray of y
        torch.testing.assert_close(x.as_subclass(torch.Tensor), to_gray(y.as_subclass(torch.Tensor)))
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
        assert (rgb_to_luminance(x) - rgb_to_luminance(y)).abs().max() < 1e-3
    info = dls.colorize_info
    assert info["n_train"] + info["n_valid"] == 12 and info["n_valid"] == 1


def test_valid_split_is_stable_across_sizes_and_depends_on_seed(photo_dir):
    a = colorize_dls(photo_dir, size=16, bs=4, valid_pct=0.25)
    b = colorize_dls(photo_dir, size=32, bs=4, valid_pct=0.25)
    c = colorize_dls(photo_dir, size=16, bs=4, valid_pct=0.25, seed=7)
    assert _valid_names(a) == _valid_names(b)
    assert _valid_names(a) != _valid_names(c)


def test_valid_folder(photo_dir, tmp_path):
    vdir = tmp_path / "val"
    vdir.mkdir()
    for i in range(3):
        make_photo(20, 20, seed=100 + i).save(vdir / f"v{i}.png")
    dls = colorize_dls(photo_dir, size=16, bs=4, valid_folder=vdir)
    assert dls.colorize_info["n_train"] == 12 and _valid_names(dls) == ["v0.png", "v1.png", "v2.png"]


def test_bad_files_are_skipped_with_one_warning(photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photo_dir / "notes.jpg").write_text("a text file named like a photo")
    good = photo_dir / "img_01.jpg"
    (photo_dir / "truncated.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dls = colorize_dls(photo_dir, size=16, bs=4)
    msgs = [str(w.message) for w in rec if "broken.jpg" in str(w.message)]
    assert len(msgs) == 1 and "notes.jpg" in msgs[0] and "truncated.jpg" in msgs[0] and "3" in msgs[0]
    names = {p.name for p, _ in dls.colorize_info["skipped"]}
    assert names == {"broken.jpg", "notes.jpg", "truncated.jpg"}
    assert dls.colorize_info["n_valid"] >= 1  # the split is drawn from readable files only
    for _ in dls.train:
        pass
    for _ in dls.valid:
        pass


def test_min_chroma_drops_gray_photos_from_train_only(photo_dir):
    Image.new("RGB", (24, 24), (120, 120, 120)).save(photo_dir / "gray.png")
    assert photo_chroma(photo_dir / "gray.png") < 1 < photo_chroma(photo_dir / "img_01.jpg")
    with pytest.warns(UserWarning, match="near-gray"):
        dls = colorize_dls(photo_dir, size=16, bs=4, valid_pct=0.0, min_chroma=3.0)
    assert [p.name for p in dls.colorize_info["dropped_gray"]] == ["gray.png"]
    assert "gray.png" not in {p.name for p in dls.train_ds.items}


def test_degrade_changes_input_only(photo_dir):
    torch.manual_seed(0)
    plain = colorize_dls(photo_dir, size=32, bs=8, augment=False, valid_pct=0.0, shuffle=False)
    torch.manual_seed(0)
    deg = colorize_dls(photo_dir, size=32, bs=8, augment=False, valid_pct=0.0, shuffle=False,
                       degrade=OldPhotoDegrade(p=1.0))
    (x0, y0), (x1, y1) = plain.train.one_batch(), deg.train.one_batch()
    torch.testing.assert_close(y0.as_subclass(torch.Tensor), y1.as_subclass(torch.Tensor))
    assert (x0 - x1).abs().mean() > 1e-3


def test_rebuilding_at_another_size_reuses_the_scan(photo_dir, monkeypatch):
    import colorkit.data as data

    clear_scan_cache()
    colorize_dls(photo_dir, size=16, bs=4)
    calls = []
    orig = data._probe_file
    monkeypatch.setattr(data, "_probe_file", lambda p: calls.append(p) or orig(p))
    t0 = time.perf_counter()
    dls = colorize_dls(photo_dir, size=24, bs=4)
    assert calls == [] and time.perf_counter() - t0 < 5
    assert dls.one_batch()[0].shape[-1] == 24


def test_show_batch_and_pickling(photo_dir):
    dls = colorize_dls(photo_dir, size=16, bs=4)
    dls.show_batch(max_n=2)
    pickle.dumps(dls.train.after_batch)
    pickle.dumps(dls.train.after_item)
    assert colorize_block(size=16).summary is not None


@pytest.mark.slow
def test_real_photos(shared_data):
    dls = colorize_dls(shared_data / "photos" / "valid", size=64, bs=8)
    x, y = dls.one_batch()
    assert x.shape == y.shape == (8, 3, 64, 64)
    assert 0 <= float(x.min()) and float(y.max()) <= 1
    torch.testing.assert_close(x.as_subclass(torch.Tensor), to_gray(y.as_subclass(torch.Tensor)))
    assert float((y - x).abs().mean()) > 0.01  # real colour photos are not gray
