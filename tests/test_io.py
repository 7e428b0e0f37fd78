"""Tests for colorkit.io: reading every common kind of file, failures, atomic saves, finding, as_pil."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from colorkit.io import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageLoadError,
    ImageMeta,
    as_pil,
    atomic_write,
    find_images,
    load_image,
    read_image,
    save_image,
    write_json_atomic,
)

RED = (255, 0, 0)
WHITE = (255, 255, 255)


def _px(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array of an RGB PIL image."""
    assert img.mode == "RGB"
    return np.asarray(img)


def _ramp16(w: int = 64, h: int = 2) -> np.ndarray:
    """A 16-bit horizontal ramp from 0 to 65535, shape (h, w)."""
    return np.tile(np.linspace(0, 65535, w).round().astype(np.uint16), (h, 1))


def _noise_rgb(h: int = 32, w: int = 32, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ----------------------------------------------------------------------------------------------
# read_image: every kind of file


def test_constants() -> None:
    assert MAX_PIXELS == 200_000_000
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


@pytest.mark.parametrize(
    ("name", "fmt", "lossless"),
    [
        ("a.jpg", "JPEG", False),
        ("a.jpeg", "JPEG", False),
        ("a.png", "PNG", True),
        ("a.tif", "TIFF", True),
        ("a.bmp", "BMP", True),
        ("a.webp", "WEBP", True),
    ],
)
def test_read_rgb_formats(tmp_path: Path, name: str, fmt: str, lossless: bool) -> None:
    src = Image.fromarray(np.tile(np.linspace(0, 255, 16).astype(np.uint8)[None, :, None], (12, 1, 3)))
    src.paste(RED, (2, 2, 6, 6))
    kwargs = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    src.save(tmp_path / name, **kwargs)
    img, meta = read_image(tmp_path / name)
    assert img.size == (16, 12) and meta.size == (16, 12)
    assert meta.format == fmt and meta.mode == "RGB"
    diff = np.abs(_px(img).astype(int) - np.asarray(src).astype(int))
    assert diff.max() == 0 if lossless else diff.mean() < 8
    assert isinstance(load_image(tmp_path / name), Image.Image)


@pytest.mark.parametrize(("name", "mode"), [("g16.tif", "I;16"), ("g16.png", "I;16")])
def test_16bit_gray_is_scaled_not_clipped(tmp_path: Path, name: str, mode: str) -> None:
    ramp = _ramp16()
    Image.fromarray(ramp).save(tmp_path / name)
    img, meta = read_image(tmp_path / name)
    assert meta.mode.startswith(mode)
    out = _px(img)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255  # full 0..255 range
    assert (np.diff(row) >= 0).all()
    np.testing.assert_array_equal(row, np.rint(ramp[0] / 257.0).astype(int))
    assert 120 <= row[len(row) // 2] <= 135  # a clip to 255 would put mid-gray at 255


def test_48bit_rgb_tiff(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    a = np.zeros((4, 6, 3), np.uint16)
    a[..., 0] = 65535
    a[..., 1] = np.arange(6) * 13107
    a[..., 2] = 100 * 257
    tifffile.imwrite(tmp_path / "rgb48.tif", a, photometric="rgb")
    img = load_image(tmp_path / "rgb48.tif")
    out = _px(img)
    assert img.size == (6, 4)
    np.testing.assert_allclose(out[0], np.rint(a[0] / 257.0), atol=1)


def test_int32_tiff(tmp_path: Path) -> None:
    ramp = _ramp16().astype(np.int32)
    Image.fromarray(ramp).save(tmp_path / "i32.tif")
    img, meta = read_image(tmp_path / "i32.tif")
    assert meta.mode == "I"
    row = _px(img)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()
    # values that already fit in 0..255 are kept as they are
    Image.fromarray(np.array([[0, 100, 255]], np.int32)).save(tmp_path / "small.tif")
    assert _px(load_image(tmp_path / "small.tif"))[0, :, 0].tolist() == [0, 100, 255]


def test_float_tiff(tmp_path: Path) -> None:
    unit = np.linspace(0, 1, 11, dtype=np.float32)[None, :]
    Image.fromarray(unit).save(tmp_path / "f.tif")
    img, meta = read_image(tmp_path / "f.tif")
    assert meta.mode == "F"
    np.testing.assert_allclose(_px(img)[0, :, 0], unit[0] * 255, atol=1)
    # an arbitrary range (negative, > 255) is stretched min..max onto 0..255
    wide = np.linspace(-5, 1000, 11, dtype=np.float32)[None, :]
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    row = _px(load_image(tmp_path / "wide.tif"))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) > 0).all()


def test_mode_1_and_l(tmp_path: Path) -> None:
    bw = Image.new("1", (5, 3), 0)
    bw.putpixel((1, 1), 1)
    bw.save(tmp_path / "bw.png")
    img, meta = read_image(tmp_path / "bw.png")
    assert meta.mode == "1"
    assert tuple(_px(img)[1, 1]) == WHITE and tuple(_px(img)[0, 0]) == (0, 0, 0)
    Image.new("L", (5, 3), 77).save(tmp_path / "l.png")
    img, meta = read_image(tmp_path / "l.png")
    assert meta.mode == "L" and (_px(img) == 77).all()


def test_la_composited_on_white(tmp_path: Path) -> None:
    Image.new("LA", (4, 4), (0, 128)).save(tmp_path / "la.png")
    img, meta = read_image(tmp_path / "la.png")
    assert meta.mode == "LA"
    assert (_px(img) == 127).all()  # black at alpha 128/255 over white


def _palette_image() -> Image.Image:
    p = Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8), "L").convert("P")
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0, 0, 0] * 253)
    return p


def test_palette(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "p.png")
    img, meta = read_image(tmp_path / "p.png")
    assert meta.mode == "P"
    assert _px(img).tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 0, 255]]]


def test_palette_with_transparency(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "pt.png", transparency=2)  # index 2 (blue) is transparent
    img, meta = read_image(tmp_path / "pt.png")
    assert meta.mode == "P"
    assert _px(img).tolist() == [[[255, 0, 0], [0, 255, 0]], [list(WHITE), list(WHITE)]]


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    a = np.zeros((2, 3, 4), np.uint8)
    a[..., :3] = RED
    a[..., 3] = [[255, 128, 0], [255, 128, 0]]
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    img, meta = read_image(tmp_path / "rgba.png")
    assert meta.mode == "RGBA"
    assert _px(img)[0].tolist() == [[255, 0, 0], [255, 127, 127], [255, 255, 255]]


@pytest.mark.parametrize("name", ["cmyk.jpg", "cmyk.tif"])
def test_cmyk(tmp_path: Path, name: str) -> None:
    im = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    im.paste((0, 0, 0, 255), (0, 0, 4, 8))  # full black on the left half
    im.save(tmp_path / name, **({"quality": 100} if name.endswith(".jpg") else {}))
    img, meta = read_image(tmp_path / name)
    assert meta.mode == "CMYK"
    out = _px(img).astype(int)
    np.testing.assert_allclose(out[4, 6], RED, atol=12)
    np.testing.assert_allclose(out[4, 1], (0, 0, 0), atol=12)


def test_tiny_1x1(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "one.png")
    img, meta = read_image(tmp_path / "one.png")
    assert img.size == (1, 1) and meta.size == (1, 1)
    assert tuple(_px(img)[0, 0]) == (10, 20, 30)


@pytest.mark.parametrize(
    ("orientation", "corner"), [(6, "top_right"), (8, "bottom_left"), (3, "bottom_right")]
)
def test_exif_orientation(tmp_path: Path, orientation: int, corner: str) -> None:
    a = np.zeros((16, 24, 3), np.uint8)  # stored 24 wide, 16 high, red block at the stored top-left
    a[:8, :8] = RED
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    Image.fromarray(a).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    img, meta = read_image(tmp_path / "rot.jpg")
    expected = (24, 16) if orientation == 3 else (16, 24)
    assert img.size == expected and meta.size == expected
    out = _px(img).astype(int)
    h, w = out.shape[:2]
    at = {"top_right": (3, w - 4), "bottom_left": (h - 4, 3), "bottom_right": (h - 4, w - 4)}[corner]
    np.testing.assert_allclose(out[at], RED, atol=20)
    assert out[3, 3].max() < 20  # the stored top-left corner moved away
    kept = Image.Exif()
    kept.load(meta.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "TestCam"


def test_meta_icc_profile(tmp_path: Path) -> None:
    icc = _srgb_icc()
    _noise_rgb(8, 8).save(tmp_path / "icc.jpg", icc_profile=icc)
    _, meta = read_image(tmp_path / "icc.jpg")
    assert meta.icc_profile == icc and meta.exif is None


# ----------------------------------------------------------------------------------------------
# read_image: failures


def _expect_load_error(path: Path, *words: str, **kwargs: int) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        read_image(path, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path == Path(path)
    assert str(err) == f"{path}: {err.reason}"
    for w in words:
        assert w in err.reason.lower()
    return err


def test_truncated_jpeg(tmp_path: Path) -> None:
    _noise_rgb(64, 64).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 6 // 10])
    _expect_load_error(tmp_path / "cut.jpg", "truncated")


def test_corrupt_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    _expect_load_error(tmp_path / "bad.png")
    # a valid PNG header whose compressed pixel data is garbage
    Image.new("RGB", (32, 32), RED).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    idat = data.index(b"IDAT") + 4
    data[idat : idat + 20] = rng.bytes(20)
    (tmp_path / "bad_idat.png").write_bytes(bytes(data))
    _expect_load_error(tmp_path / "bad_idat.png")


def test_zero_byte(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    _expect_load_error(tmp_path / "empty.jpg", "empty")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    _expect_load_error(tmp_path / "notes.jpg", "not an image")


def test_directory_and_missing(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    _expect_load_error(tmp_path / "folder.jpg", "directory")
    _expect_load_error(tmp_path / "nope.jpg", "not found")


def test_too_many_pixels(tmp_path: Path) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "big.png")
    err = _expect_load_error(tmp_path / "big.png", "too many pixels", max_pixels=99)
    assert "10x10" in err.reason
    assert read_image(tmp_path / "big.png", max_pixels=100)[0].size == (10, 10)


def test_pillow_bomb_checks_map_to_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (10, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    # 100 px > 2 * 40: Pillow's DecompressionBombError, even though our own limit would allow it
    _expect_load_error(tmp_path / "big.png", "decompression bomb")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60)
    # 100 px > 60: Pillow only warns; with our limit below Pillow's the warning becomes the error
    _expect_load_error(tmp_path / "big.png", "too many pixels", "decompression bomb", max_pixels=50)
    # a caller who raises max_pixels above Pillow's limit gets the image without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "big.png", max_pixels=1000)[0].size == (10, 10)


def test_load_error_is_picklable() -> None:
    err = pickle.loads(pickle.dumps(ImageLoadError("/x/a.jpg", "broken")))
    assert err.path == Path("/x/a.jpg") and err.reason == "broken" and str(err) == "/x/a.jpg: broken"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_no_file_handles_left_open(tmp_path: Path) -> None:
    _noise_rgb(32, 32).save(tmp_path / "ok.jpg")
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.tif")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("hello")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        for name in ["ok.jpg", "ok.tif", "cut.jpg", "text.jpg"]:
            try:
                read_image(tmp_path / name, max_pixels=10_000)
            except ImageLoadError:
                pass
        with pytest.raises(ImageLoadError):
            read_image(tmp_path / "ok.jpg", max_pixels=4)
    assert len(os.listdir("/proc/self/fd")) <= before


# ----------------------------------------------------------------------------------------------
# save_image


def test_save_every_format_round_trip(tmp_path: Path) -> None:
    src = _noise_rgb(6, 9)
    for ext in [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".PNG"]:
        out = save_image(src, tmp_path / f"out{ext}")
        assert out == tmp_path / f"out{ext}" and out.is_file()
        back = load_image(out)
        assert back.size == (9, 6)
        if ext.lower() in {".png", ".tif", ".tiff", ".bmp"}:
            assert np.array_equal(_px(back), np.asarray(src))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_save_unknown_extension_and_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.gif"):
        save_image(_noise_rgb(4, 4), tmp_path / "a.gif")
    with pytest.raises(ValueError, match="extension"):
        save_image(_noise_rgb(4, 4), tmp_path / "noext")
    with pytest.raises(ValueError, match="quality"):
        save_image(_noise_rgb(4, 4), tmp_path / "a.jpg", quality=0)
    with pytest.raises(TypeError, match="ndarray"):
        save_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_save_creates_folders(tmp_path: Path) -> None:
    out = save_image(_noise_rgb(4, 4), tmp_path / "a" / "b" / "c" / "x.png")
    assert out.is_file() and load_image(out).size == (4, 4)


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out"
    final = folder / "photo.jpg"
    save_image(Image.new("RGB", (4, 4), RED), final)
    old = final.read_bytes()
    seen: list[str] = []

    def failing_save(im: Image.Image, fp: object, filename: object) -> None:
        fp.write(b"\xff\xd8\xff partial jpeg data")  # type: ignore[attr-defined]
        seen.extend(os.listdir(folder))
        assert find_images(folder) == [final]  # a scan mid-write never sees the temp file
        raise OSError("encoder exploded")

    monkeypatch.setitem(Image.SAVE, "JPEG", failing_save)
    with pytest.raises(OSError, match="encoder exploded"):
        save_image(_noise_rgb(8, 8), final)
    temps = [n for n in seen if n != "photo.jpg"]
    assert len(temps) == 1 and temps[0].startswith(".")
    assert Path(temps[0]).suffix.lower() not in IMAGE_EXTENSIONS
    assert sorted(os.listdir(folder)) == ["photo.jpg"]  # temp cleaned up
    assert final.read_bytes() == old  # the old file is untouched
    with pytest.raises(OSError):
        save_image(_noise_rgb(8, 8), folder / "new.jpg")
    assert sorted(os.listdir(folder)) == ["photo.jpg"]  # no partial file under the new name


def test_save_refuses_its_source(tmp_path: Path) -> None:
    src = tmp_path / "in" / "a.jpg"
    save_image(_noise_rgb(4, 4), src)
    old = src.read_bytes()
    img = load_image(src)
    for target in [src, tmp_path / "in" / ".." / "in" / "a.jpg", str(src)]:
        with pytest.raises(ValueError, match="source"):
            save_image(img, target, source=src)
    link = tmp_path / "link.jpg"
    try:
        link.symlink_to(src)
    except OSError:
        pass
    else:
        with pytest.raises(ValueError, match="source"):
            save_image(img, link, source=src)
    assert src.read_bytes() == old
    assert save_image(img, tmp_path / "in" / "a_color.jpg", source=src).is_file()


def test_save_keeps_icc_and_exif_jpeg(tmp_path: Path) -> None:
    icc = _srgb_icc()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0x9003] = "2020:01:02 03:04:05"
    _noise_rgb(8, 12).save(tmp_path / "in.jpg", exif=exif, icc_profile=icc)
    img, meta = read_image(tmp_path / "in.jpg")
    assert img.size == (8, 12)
    for ext in [".jpg", ".png", ".tif", ".webp"]:
        out = save_image(img, tmp_path / f"out{ext}", meta=meta, source=tmp_path / "in.jpg")
        with Image.open(out) as back:
            assert back.info.get("icc_profile") == icc, ext
            got = back.getexif()
            assert got.get(0x010F) == "TestCam", ext
            assert got.get(0x0112, 1) == 1, ext
        again, meta2 = read_image(out)
        assert again.size == (8, 12), ext  # no second rotation
        assert meta2.icc_profile == icc
    with Image.open(tmp_path / "out.jpg") as back:
        assert back.getexif().get_ifd(0x8769).get(0x9003) == "2020:01:02 03:04:05"
    # formats without metadata support still save fine
    assert load_image(save_image(img, tmp_path / "out.bmp", meta=meta)).size == (8, 12)


def test_save_drops_oversized_exif_for_jpeg_only(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # more than one JPEG APP1 segment holds
    meta = ImageMeta("JPEG", "RGB", (4, 4), exif.tobytes(), None)
    with pytest.warns(UserWarning, match="too large for JPEG"):
        out = save_image(_noise_rgb(4, 4), tmp_path / "a.jpg", meta=meta)
    assert load_image(out).size == (4, 4)
    with Image.open(save_image(_noise_rgb(4, 4), tmp_path / "a.png", meta=meta)) as back:
        assert len(back.getexif()[0x010E]) == 70_000


def test_save_converts_modes(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = save_image(rgba, tmp_path / "a.jpg")
    with Image.open(out) as back:
        assert back.mode == "RGB"
    assert (np.abs(_px(load_image(out)).astype(int) - 255) <= 3).all()  # transparent -> white
    assert load_image(save_image(rgba, tmp_path / "a.png")).size == (4, 4)
    gray16 = Image.fromarray(_ramp16())
    row = _px(load_image(save_image(gray16, tmp_path / "g.webp", quality=100)))[0, :, 0].astype(int)
    assert row[0] < 5 and row[-1] > 250
    for name in ["i32.png", "f.png", "f.jpg", "i16.bmp"]:  # modes these formats cannot store
        img = Image.fromarray(_ramp16().astype(np.int32 if name.startswith("i32") else np.uint16))
        if name.startswith("f"):
            img = Image.fromarray(_ramp16().astype(np.float32) / 65535)
        row = _px(load_image(save_image(img, tmp_path / name)))[0, :, 0].astype(int)
        assert row[0] <= 2 and row[-1] >= 253 and (np.diff(row) >= -2).all(), name
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    np.testing.assert_allclose(_px(load_image(save_image(cmyk, tmp_path / "c.bmp")))[0, 0], RED, atol=2)


# ----------------------------------------------------------------------------------------------
# find_images


def _touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # find_images goes by name only
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for rel in [
        "b.jpg",
        "a.PNG",
        "c.JpEg",
        "d.tiff",
        "sub/e.webp",
        "sub/deep/f.bmp",
        ".hidden.jpg",
        ".g.jpg.tmp-1a2b3c4d",
        "h.jpg.tmp-deadbeef",
        ".cache/i.jpg",
        "notes.txt",
        "model.pth",
    ]:
        _touch_image(root / rel)
    return root


def test_find_images_folder(tree: Path) -> None:
    names = [p.relative_to(tree).as_posix() for p in find_images(tree)]
    assert names == ["a.PNG", "b.jpg", "c.JpEg", "d.tiff", "sub/deep/f.bmp", "sub/e.webp"]
    flat = [p.name for p in find_images(str(tree), recursive=False)]
    assert flat == ["a.PNG", "b.jpg", "c.JpEg", "d.tiff"]


def test_find_images_globs_lists_and_dedup(tree: Path) -> None:
    assert [p.name for p in find_images(str(tree / "*.jpg"))] == ["b.jpg"]
    assert [p.name for p in find_images(str(tree / "**" / "*.bmp"))] == ["f.bmp"]
    assert [p.name for p in find_images(str(tree / "s*"))] == ["f.bmp", "e.webp"]  # folder match scanned
    both = find_images([tree, tree / "b.jpg", str(tree / "sub"), tree / "." / "b.jpg"])
    assert len(both) == len(set(both)) == 6
    assert both == sorted(both)
    assert find_images(tree / "notes.txt") == [tree / "notes.txt"]  # an explicit file is kept
    (tree.parent / "empty").mkdir()
    assert find_images(tree.parent / "empty") == []


def test_find_images_missing(tree: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        find_images(tree / "nope")
    with pytest.raises(FileNotFoundError, match="nope"):
        find_images([tree, tree / "nope.jpg"])
    with pytest.raises(FileNotFoundError, match=r"\*\.gif"):
        find_images(str(tree / "*.gif"))


# ----------------------------------------------------------------------------------------------
# as_pil


def test_as_pil_paths_and_pil(tmp_path: Path) -> None:
    Image.new("RGBA", (3, 2), (255, 0, 0, 0)).save(tmp_path / "a.png")
    for obj in [tmp_path / "a.png", str(tmp_path / "a.png")]:
        assert (_px(as_pil(obj)) == 255).all()
    with pytest.raises(ImageLoadError):
        as_pil(tmp_path / "missing.png")
    rgb = _noise_rgb(4, 4)
    assert _px(as_pil(rgb)).tolist() == np.asarray(rgb).tolist()
    assert (_px(as_pil(Image.new("RGBA", (2, 2), (0, 0, 0, 0)))) == 255).all()
    assert (_px(as_pil(Image.new("L", (2, 2), 9))) == 9).all()
    row = _px(as_pil(Image.fromarray(_ramp16())))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255


@pytest.mark.parametrize(
    ("arr", "expected"),
    [
        (np.full((2, 3), 50, np.uint8), (50, 50, 50)),
        (np.full((2, 3, 1), 50, np.uint8), (50, 50, 50)),
        (np.tile(np.array([1, 2, 3], np.uint8), (2, 3, 1)), (1, 2, 3)),
        (np.tile(np.array([255, 0, 0, 0], np.uint8), (2, 3, 1)), WHITE),
        (np.tile(np.array([0, 0, 0, 255], np.uint8), (2, 3, 1)), (0, 0, 0)),
        (np.tile(np.array([0.0, 0.5, 1.0], np.float32), (2, 3, 1)), (0, 128, 255)),
        (np.full((2, 3), 0.25, np.float64), (64, 64, 64)),
        (np.full((2, 3, 3), 65535, np.uint16), WHITE),
        (np.full((2, 3), 257 * 10, np.uint16), (10, 10, 10)),
    ],
)
def test_as_pil_numpy(arr: np.ndarray, expected: tuple[int, int, int]) -> None:
    img = as_pil(arr)
    assert img.size == (3, 2)
    assert (_px(img) == expected).all()


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (torch.tensor([1.0, 0.0, 0.5]).view(3, 1, 1).expand(3, 2, 3), (255, 0, 128)),
        (torch.full((1, 2, 3), 0.2), (51, 51, 51)),
        (torch.full((2, 3), 0.2), (51, 51, 51)),
        (torch.full((2, 3), 200, dtype=torch.uint8), (200, 200, 200)),
        (torch.full((3, 2, 3), 7, dtype=torch.uint8), (7, 7, 7)),
        (torch.full((3, 2, 3), 0.5, requires_grad=True), (128, 128, 128)),
    ],
)
def test_as_pil_torch(t: torch.Tensor, expected: tuple[int, int, int]) -> None:
    img = as_pil(t)
    assert img.size == (3, 2)
    assert (_px(img) == expected).all()


def test_as_pil_errors() -> None:
    for bad in [42, [[0, 1]], b"bytes", None]:
        with pytest.raises(TypeError, match=type(bad).__name__):
            as_pil(bad)
    with pytest.raises(ValueError, match=r"\(2, 3, 2\)"):
        as_pil(np.zeros((2, 3, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\(2, 3, 3, 3\)"):
        as_pil(np.zeros((2, 3, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        as_pil(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        as_pil(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="empty"):
        as_pil(np.zeros((0, 4), np.uint8))
    with pytest.raises(TypeError, match="int64"):
        as_pil(np.zeros((2, 2), np.int64))


def test_meta_is_dataclass() -> None:
    m = ImageMeta(format="PNG", mode="L", size=(2, 3), exif=None, icc_profile=None)
    assert m.size == (2, 3) and m == ImageMeta("PNG", "L", (2, 3), None, None)


def test_real_photos(shared_data: Path) -> None:
    files = find_images(shared_data / "photos" / "valid")
    assert len(files) >= 10 and all(f.suffix.lower() in IMAGE_EXTENSIONS for f in files)
    for f in files[:5]:
        img, meta = read_image(f)
        assert img.mode == "RGB" and img.size == meta.size and meta.format == "JPEG"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = write_json_atomic(tmp_path / "sub" / "config.json", {"a": 1, "path": tmp_path})
    assert json.loads(target.read_text()) == {"a": 1, "path": str(tmp_path)}

    def broken(tmp):
        tmp.write_text('{"a": ')  # half a file, then the disk fills up
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, broken)
    assert json.loads(target.read_text())["a"] == 1  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["config.json"]  # no temp file left


def test_glob_helpers():
    from colorkit.io import glob_base, is_glob

    assert is_glob("a/*.jpg") and is_glob("x?.png") and is_glob("[ab].png") and not is_glob("plain/path.jpg")
    assert glob_base("photos/2020/*/a*.jpg") == Path("photos/2020") and glob_base("*.jpg") == Path(".")


def test_remove_stale_temps_only_touches_temps_of_the_given_files(tmp_path):
    from colorkit.io import remove_stale_temps

    ours = tmp_path / ".a.jpg.tmp-deadbeef"
    ours.write_bytes(b"half")
    other_temp = tmp_path / ".b.jpg.tmp-cafe"  # b.jpg is not in this run
    other_temp.write_bytes(b"half")
    hidden = tmp_path / ".a.jpg-notes"
    hidden.write_text("not a temp file")
    assert remove_stale_temps([tmp_path / "a.jpg", tmp_path / "missing" / "c.jpg"]) == 1
    assert not ours.exists() and other_temp.exists() and hidden.exists()
