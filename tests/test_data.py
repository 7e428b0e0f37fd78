"""colorkit.data: (gray, colour) loaders from a folder of photos, bad-file scan, degradation."""

from __future__ import annotations

import io as _io
import pickle
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from conftest import make_photo
from fastai.torch_core import TensorImage, set_seed
from PIL import Image
from torch import Tensor

from colorkit import data as cd
from colorkit.color import rgb_to_luminance, to_gray
from colorkit.data import (
    OldPhotoDegrade,
    TensorGrayInput,
    clear_scan_cache,
    colorize_block,
    colorize_dls,
    open_photo,
    photo_chroma,
    scan_images,
)

matplotlib.use("Agg")


def plain(t: Tensor) -> Tensor:
    return t.as_subclass(Tensor)


def quiet_dls(*args, **kwargs):
    """colorize_dls with warnings turned into a list we can inspect."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        dls = colorize_dls(*args, **kwargs)
    return dls, [w for w in rec if issubclass(w.category, UserWarning) and "colorkit" in str(w.message)]


def valid_names(dls) -> list[str]:
    return sorted(Path(p).name for p in dls.valid_ds.items)


def ordered(dl):
    """The same loader, unshuffled and keeping every item (its split's transforms kept)."""
    return dl.new(shuffle=False, drop_last=False)


# ----------------------------------------------------------------------------------------------
# the batch contract


def test_batch_shapes_types_and_ranges(photo_dir: Path) -> None:
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, seed=0)
    for dl in (dls.train, dls.valid):
        x, y = dl.one_batch()
        assert isinstance(x, TensorGrayInput) and isinstance(x, TensorImage)
        assert type(y) is TensorImage
        assert x.shape == y.shape and x.shape[1:] == (3, 16, 16)
        assert x.dtype == y.dtype == torch.float32
        for t in (x, y):
            assert 0 <= float(t.min()) and float(t.max()) <= 1
        assert float(y.max()) > 1 / 255, "targets must be in [0, 1], not normalised"
    info = dls.colorize_info
    assert info["n_train"] + info["n_valid"] == 12 and info["n_valid"] == 1
    assert info["size"] == 16 and info["source"] == photo_dir
    assert info["skipped"] == [] and info["dropped_gray"] == []


def test_x_is_gray_of_y_with_same_augmentation(photo_dir: Path) -> None:
    dls, _ = quiet_dls(photo_dir, size=24, bs=4, augment=True, seed=0)
    dl = ordered(dls.train)
    set_seed(1)
    x1, y1 = dl.one_batch()
    x2, y2 = dl.one_batch()  # same photos, new random crops / flips / warps
    assert not torch.equal(plain(y1), plain(y2)), "training augmentation should differ between epochs"
    for x, y in ((x1, y1), (x2, y2)):
        x, y = plain(x), plain(y)
        # exact: x went through the very same crop, flip and warp as y, then to_gray
        assert torch.equal(x, to_gray(y))
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
        torch.testing.assert_close(rgb_to_luminance(x), rgb_to_luminance(y), atol=1e-3, rtol=0)
        assert float((y[:, 0] - y[:, 2]).abs().max()) > 0.05, "y must stay in colour"


def test_validation_is_deterministic_centre_crop(photo_dir: Path) -> None:
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, valid_pct=0.3, seed=0)
    dl = ordered(dls.valid)
    a, b = dl.one_batch(), dl.one_batch()
    assert torch.equal(plain(a[1]), plain(b[1]))
    assert torch.equal(plain(a[0]), to_gray(plain(a[1])))
    # the centre square of the photo, not a squashed whole photo
    item = Path(dls.valid_ds.items[0])
    img = Image.open(item).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    ref = img.crop((left, top, left + side, top + side)).resize((16, 16), Image.Resampling.BILINEAR)
    ref_t = torch.from_numpy(np.asarray(ref, dtype=np.float32)).permute(2, 0, 1) / 255
    assert float((plain(a[1][0]) - ref_t).abs().mean()) < 0.02


def test_augment_false_is_deterministic_on_train(photo_dir: Path) -> None:
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, augment=False, seed=0)
    dl = ordered(dls.train)
    assert torch.equal(plain(dl.one_batch()[1]), plain(dl.one_batch()[1]))


# ----------------------------------------------------------------------------------------------
# splits and sampling


def test_valid_split_stable_across_sizes_and_depends_on_seed(photo_dir: Path) -> None:
    names = {}
    for size in (16, 32):
        dls, _ = quiet_dls(photo_dir, size=size, bs=4, valid_pct=0.25, seed=7)
        names[size] = valid_names(dls)
    assert names[16] == names[32] and len(names[16]) == 3
    other = [valid_names(quiet_dls(photo_dir, size=16, bs=4, valid_pct=0.25, seed=s)[0]) for s in (1, 2, 3)]
    assert any(o != names[16] for o in other)
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, valid_pct=0.25, seed=7)
    train = {Path(p).name for p in dls.train_ds.items}
    assert not train & set(names[16]) and len(train) == 9


def test_valid_folder(photo_dir: Path, tmp_path: Path) -> None:
    vdir = tmp_path / "val"
    vdir.mkdir()
    for i in range(3):
        make_photo(20, 28, seed=100 + i).save(vdir / f"v{i}.jpg")
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, valid_folder=vdir, valid_pct=0.5)
    assert dls.colorize_info["n_train"] == 12 and dls.colorize_info["n_valid"] == 3
    assert valid_names(dls) == ["v0.jpg", "v1.jpg", "v2.jpg"]
    x, y = dls.valid.one_batch()
    assert x.shape == (3, 3, 16, 16) and torch.equal(plain(x), to_gray(plain(y)))


def test_max_items_is_a_seeded_sample(photo_dir: Path) -> None:
    a, _ = quiet_dls(photo_dir, size=16, bs=2, max_items=5, seed=3)
    b, _ = quiet_dls(photo_dir, size=16, bs=2, max_items=5, seed=3)
    assert a.colorize_info["n_train"] + a.colorize_info["n_valid"] == 5
    items = sorted(map(str, [*a.train_ds.items, *a.valid_ds.items]))
    assert items == sorted(map(str, [*b.train_ds.items, *b.valid_ds.items]))


def test_empty_folder_raises(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        colorize_dls(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------
# bad files and the scan cache


def _add_bad_files(folder: Path) -> tuple[Path, Path]:
    buf = _io.BytesIO()
    make_photo(64, 64, seed=50).save(buf, "JPEG", quality=90)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
    text = folder / "notes.jpg"
    text.write_text("this is not an image\n")
    return truncated, text


def test_bad_files_skipped_with_one_warning(photo_dir: Path) -> None:
    truncated, text = _add_bad_files(photo_dir)
    dls, warns = quiet_dls(photo_dir, size=16, bs=4, valid_pct=0.25, seed=0)
    assert len(warns) == 1
    msg = str(warns[0].message)
    assert "2 unreadable" in msg and "truncated.jpg" in msg and "notes.jpg" in msg
    skipped = dict(dls.colorize_info["skipped"])
    assert set(skipped) == {truncated, text} and all(skipped.values())
    assert "truncat" in skipped[truncated].lower()
    assert dls.colorize_info["n_train"] + dls.colorize_info["n_valid"] == 12
    for dl in (ordered(dls.train), ordered(dls.valid)):  # every remaining item loads
        assert sum(len(b[0]) for b in dl) == len(dl.dataset)


def test_warning_lists_ten_names_then_more(photo_dir: Path) -> None:
    for i in range(13):
        (photo_dir / f"bad_{i:02d}.png").write_bytes(b"\x89PNG broken")
    _, warns = quiet_dls(photo_dir, size=16, bs=4)
    assert len(warns) == 1
    msg = str(warns[0].message)
    assert "13 unreadable" in msg and "and 3 more" in msg and "bad_09.png" in msg and "bad_10.png" not in msg


def test_scan_is_cached_and_rebuild_does_not_decode(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_scan_cache()
    calls: list[Path] = []
    real = cd._probe_file

    def counting(p: Path):
        calls.append(p)
        return real(p)

    monkeypatch.setattr(cd, "_probe_file", counting)
    quiet_dls(photo_dir, size=16, bs=4)
    assert len(calls) == 12
    calls.clear()
    dls, _ = quiet_dls(photo_dir, size=32, bs=4)  # progressive resizing: rebuild at another size
    assert calls == [] and dls.one_batch()[0].shape[-1] == 32
    # a changed file (new size / mtime) is scanned again, and only that one
    changed = sorted(photo_dir.glob("*.jpg"))[0]
    make_photo(40, 40, seed=99).save(changed)
    scan = scan_images(sorted(photo_dir.rglob("img_*")))
    assert calls == [changed] and scan.n_decoded == 1 and len(scan.good) == 12


def test_open_photo_drafts_jpeg_and_applies_exif(tmp_path: Path) -> None:
    img = make_photo(240, 320, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    path = tmp_path / "rot.jpg"
    img.save(path, "JPEG", exif=exif.tobytes())
    full = open_photo(path)
    small = open_photo(path, min_side=64)
    assert full.size == (240, 320)  # EXIF applied: portrait
    assert small.mode == "RGB" and small.size[0] < small.size[1]
    assert 64 <= min(small.size) < 240  # decoded at a reduced scale, still >= min_side


# ----------------------------------------------------------------------------------------------
# near-gray photos


def test_photo_chroma() -> None:
    colour = make_photo(32, 32, seed=1)
    gray = colour.convert("L").convert("RGB")
    assert photo_chroma(gray) < 0.5 < 5 < photo_chroma(colour)
    t = torch.from_numpy(np.asarray(colour, dtype=np.float32)).permute(2, 0, 1) / 255
    assert photo_chroma(t) == pytest.approx(photo_chroma(colour), abs=1e-3)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        photo_chroma(torch.rand(1, 8, 8))


def test_min_chroma_drops_gray_from_train_only(photo_dir: Path, tmp_path: Path) -> None:
    make_photo(24, 32, seed=60).convert("L").convert("RGB").save(photo_dir / "gray_train.png")
    vdir = tmp_path / "val"
    vdir.mkdir()
    make_photo(24, 32, seed=61).save(vdir / "colour_val.png")
    make_photo(24, 32, seed=62).convert("L").convert("RGB").save(vdir / "gray_val.png")
    dls, warns = quiet_dls(photo_dir, size=16, bs=4, valid_folder=vdir, min_chroma=5.0)
    assert dls.colorize_info["dropped_gray"] == [photo_dir / "gray_train.png"]
    assert dls.colorize_info["n_train"] == 12
    assert "gray_train.png" not in {Path(p).name for p in dls.train_ds.items}
    assert valid_names(dls) == ["colour_val.png", "gray_val.png"]  # validation untouched
    assert any("1 near-gray" in str(w.message) for w in warns)
    off, _ = quiet_dls(photo_dir, size=16, bs=4, valid_folder=vdir)
    assert off.colorize_info["n_train"] == 13 and off.colorize_info["dropped_gray"] == []


# ----------------------------------------------------------------------------------------------
# degradation


def test_old_photo_degrade_touches_input_only() -> None:
    torch.manual_seed(0)
    y = TensorImage(torch.rand(6, 3, 16, 16))
    x = TensorGrayInput(to_gray(plain(y)))
    tfm = OldPhotoDegrade(p=1.0, p_each=1.0)
    dx, dy = tfm((x, y), split_idx=0)
    assert isinstance(dx, TensorGrayInput) and dx.shape == x.shape
    assert torch.equal(plain(dy), plain(y))
    assert 0 <= float(dx.min()) and float(dx.max()) <= 1
    assert bool(((plain(dx) - plain(x)).abs().amax((1, 2, 3)) > 0.01).all())
    vx, _ = tfm((x, y), split_idx=1)  # validation: untouched
    assert torch.equal(plain(vx), plain(x))


def test_old_photo_degrade_sepia_and_validation() -> None:
    x = TensorGrayInput(torch.full((2, 3, 8, 8), 0.5))
    sep = OldPhotoDegrade(p=1.0, noise=0, blur=0, downscale=1, fade=0, sepia=1.0, keep_sepia=1.0)
    out = plain(sep((x,), split_idx=0)[0])
    assert bool((out[:, 0] > out[:, 2] + 0.05).all()), "sepia keeps a warm tint"
    with pytest.raises(ValueError, match="p must be in"):
        OldPhotoDegrade(p=1.5)


def test_degrade_in_loaders_changes_x_keeps_y(photo_dir: Path) -> None:
    base, _ = quiet_dls(photo_dir, size=16, bs=4, augment=False, seed=0)
    deg, _ = quiet_dls(photo_dir, size=16, bs=4, augment=False, seed=0, degrade=OldPhotoDegrade(p=1, p_each=1))
    bx, by = ordered(base.train).one_batch()
    dx, dy = ordered(deg.train).one_batch()
    assert torch.equal(plain(by), plain(dy))
    assert torch.equal(plain(bx), to_gray(plain(by)))
    assert not torch.equal(plain(dx), plain(bx))
    vx, vy = deg.valid.one_batch()  # validation inputs are not degraded
    assert torch.equal(plain(vx), to_gray(plain(vy)))
    assert "OldPhotoDegrade" not in repr(base.train.after_batch)
    assert "OldPhotoDegrade" in repr(quiet_dls(photo_dir, size=16, bs=4, degrade=True)[0].train.after_batch)


# ----------------------------------------------------------------------------------------------
# fastai integration


def test_show_batch_runs_headless(photo_dir: Path) -> None:
    import matplotlib.pyplot as plt

    dls, _ = quiet_dls(photo_dir, size=16, bs=4)
    dls.show_batch(max_n=4)
    fig = plt.gcf()
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 8  # gray input and colour target for each of 4 photos
    gray = shown[0].images[0].get_array()
    assert gray.ndim == 3 and (gray[..., 0] == gray[..., 2]).all()
    plt.close("all")


def test_pipeline_pickles(photo_dir: Path) -> None:
    dls, _ = quiet_dls(photo_dir, size=16, bs=4, degrade=True)
    for obj in (dls.train.after_batch, dls.train.after_item, dls.train.dataset.tls):
        assert pickle.loads(pickle.dumps(obj)) is not None
    ab = pickle.loads(pickle.dumps(dls.train.after_batch))
    x, y = dls.train.one_batch()
    assert {type(t).__name__ for t in ab.fs} >= {"ToGray", "OldPhotoDegrade"}
    block = colorize_block(size=16, degrade=True)
    pickle.dumps((block.item_tfms, block.batch_tfms, block.type_tfms))


def test_colorize_block_for_custom_pipelines(photo_dir: Path) -> None:
    (photo_dir / "broken.jpg").write_text("nope")
    block = colorize_block(size=16, augment=False)
    with pytest.warns(UserWarning, match="broken.jpg"):
        dls = block.dataloaders(photo_dir, bs=4)
    x, y = dls.one_batch()
    assert x.shape == (4, 3, 16, 16) and torch.equal(plain(x), to_gray(plain(y)))
    assert len(dls.train_ds) + len(dls.valid_ds) == 12


def test_real_photos(shared_data: Path) -> None:
    dls, warns = quiet_dls(shared_data / "photos" / "valid", size=64, bs=8, seed=0)
    assert warns == []
    assert dls.colorize_info["n_train"] + dls.colorize_info["n_valid"] == 100
    for dl in (dls.train, dls.valid):
        x, y = dl.one_batch()
        assert x.shape == y.shape == (8, 3, 64, 64)
        for t in (x, y):
            assert 0 <= float(t.min()) and float(t.max()) <= 1
        assert torch.equal(plain(x), to_gray(plain(y)))
        assert photo_chroma(plain(y[0])) > 0.5


def test_sample_files_is_seeded_nested_and_ordered():
    from colorkit.data import sample_files

    files = [Path(f"p{i:02d}.jpg") for i in range(20)]
    a = sample_files(files, 5, seed=3)
    assert a == sample_files(files, 5, seed=3) and a == sorted(a) and len(set(a)) == 5
    assert set(a) < set(sample_files(files, 9, seed=3))  # a larger sample keeps the smaller one's files
    assert a != sample_files(files, 5, seed=4)
    assert sample_files(files, None) == files and sample_files(files, 50) == files
    with pytest.raises(ValueError, match=">= 1"):
        sample_files(files, 0)


def test_center_crop_and_find_photos(photo_dir: Path, tmp_path: Path) -> None:
    from colorkit.data import center_crop, find_photos

    out = center_crop(make_photo(30, 50), 16)
    assert out.size == (16, 16)
    assert len(find_photos(photo_dir)) == 12
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files \\(valid photos\\)"):
        find_photos(tmp_path / "empty", "valid photos")
