"""The batch pipeline (``colorkit.pipeline``) called as a library: planning, the bounded read -> predict ->
merge -> write engine, progress and cancel callbacks, resuming, metadata, colour strength."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import colorkit.infer as infer
from colorkit import pipeline
from colorkit.learner import load_colorizer, save_colorizer
from colorkit.models import create_generator
from colorkit.pipeline import (
    FAILURES_FILE,
    ColorizeEvent,
    PlanError,
    colorize_files,
    plan_colorize,
    prepare_batch,
    run_batch,
)
from tests.conftest import make_photo

TEMP_MARK = ".tmp-"


@pytest.fixture(scope="module")
def clr(tmp_path_factory: pytest.TempPathFactory):
    """A loaded resnet18 colorizer with random weights that renders at 32 px (the lightest U-Net options)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    net = create_generator("resnet18", img_size=32, self_attention=False, blur=False, spectral=False)
    return load_colorizer(save_colorizer(net, path, render_size=32))


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """4 good photos (one in a sub-folder), a truncated JPEG, a text file named .png and a .txt."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for seed, (name, (h, w)) in enumerate({"a.jpg": (24, 32), "b.png": (20, 28), "c.jpg": (28, 20),
                                           "sub/d.png": (16, 24), "broken.jpg": (64, 64)}.items()):
        make_photo(h, w, seed=seed).save(root / name)
    data = (root / "broken.jpg").read_bytes()
    (root / "broken.jpg").write_bytes(data[: len(data) // 2])
    for name in ("text.png", "notes.txt"):  # not an image; not an image extension (not an input at all)
        (root / name).write_text("not an image")
    return root


def _outputs(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".txt"}


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name]


# ----------------------------------------------------------------------------------------------
# planning


def test_plan_maps_folders_files_and_globs(mixed, tmp_path):
    out = tmp_path / "out"
    jobs = plan_colorize([str(mixed)], out, recursive=True)
    assert {j.dst.relative_to(out).as_posix() for j in jobs} == {"a.jpg", "b.png", "c.jpg", "sub/d.png",
                                                                 "broken.jpg", "text.png"}
    assert [j.dst for j in jobs] == sorted((j.dst for j in jobs), key=str)
    assert {j.dst.name for j in plan_colorize([str(mixed)], out)} == {"a.jpg", "b.png", "c.jpg", "broken.jpg",
                                                                     "text.png"}
    glob_jobs = plan_colorize([str(mixed / "*" / "*.png"), str(mixed / "a.jpg")], out)
    assert {j.dst.relative_to(out).as_posix() for j in glob_jobs} == {"sub/d.png", "a.jpg"}


def test_plan_refuses_collisions_and_outputs_that_would_be_inputs(mixed, tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
        make_photo(8, 8).save(tmp_path / d / "same.png")
    with pytest.raises(PlanError, match="both be written"):
        plan_colorize([str(tmp_path / "x" / "same.png"), str(tmp_path / "y" / "same.png")], tmp_path / "out")
    assert len(plan_colorize([str(tmp_path / "x"), str(tmp_path / "x" / "same.png")], tmp_path / "out")) == 1
    with pytest.raises(PlanError, match="overwrite the input"):
        plan_colorize([str(mixed)], mixed)
    with pytest.raises(PlanError, match="inside the input folder"):
        plan_colorize([str(mixed)], mixed / "sub", recursive=True)
    with pytest.raises(PlanError, match="no such file or folder"):
        plan_colorize([str(tmp_path / "nope")], tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlanError, match="not a folder"):
        prepare_batch([str(mixed)], tmp_path / "file")


def test_prepare_batch_sorts_todo_existing_and_unsupported(mixed, tmp_path):
    (mixed / "scan.gif").write_bytes(b"GIF89a")
    out = tmp_path / "out"
    (out).mkdir()
    make_photo(8, 8).save(out / "a.jpg")
    batch = prepare_batch([str(mixed), str(mixed / "scan.gif")], out)
    assert [j.src.name for j in batch.existing] == ["a.jpg"]
    assert [j.src.name for j in batch.unsupported] == ["scan.gif"]
    assert {j.src.name for j in batch.todo} == {"b.png", "c.jpg", "broken.jpg", "text.png"}
    assert batch.total == 6
    assert len(prepare_batch([str(mixed)], out, overwrite=True).todo) == 5


# ----------------------------------------------------------------------------------------------
# running


def test_colorize_files_reports_every_file_and_keeps_going(mixed, clr, tmp_path):
    out = tmp_path / "out"
    events: list[ColorizeEvent] = []
    s = colorize_files(clr, [mixed], out, recursive=True, progress=events.append, failures_file=FAILURES_FILE)
    assert _outputs(out) == {"a.jpg", "b.png", "c.jpg", "sub/d.png"}
    for rel in _outputs(out):
        with Image.open(out / rel) as im, Image.open(mixed / rel) as src:
            assert im.size == src.size and im.mode == "RGB"
    assert sorted(p.name for p, _ in s.failed) == ["broken.jpg", "text.png"]
    assert len(s.done) == 4 and s.total == 6 and not s.stopped and s.rate > 0
    assert [e.done for e in events] == list(range(1, 7)) and {e.total for e in events} == {6}
    assert {e.src.name for e in events if e.error} == {"broken.jpg", "text.png"}
    assert all(e.dst is not None and e.dst.is_file() for e in events if e.error is None)
    assert s.failures_file == out / FAILURES_FILE and "broken.jpg" in s.failures_file.read_text()
    assert not _temp_files(out)
    # without failures_file nothing but images is written; a complete clean run removes an old list
    (mixed / "broken.jpg").unlink()
    (mixed / "text.png").unlink()
    s2 = colorize_files(clr, [mixed], out, recursive=True, failures_file=FAILURES_FILE)
    assert len(s2.skipped) == 4 and not s2.failed and not (out / FAILURES_FILE).exists()


def test_main_thread_runs_only_the_network_merge_and_write_run_behind(photo_dir, clr, tmp_path, monkeypatch):
    threads: dict[str, set[str]] = {"predict": set(), "merge": set(), "save": set()}
    real_predict, real_merge, real_save = infer.predict_chroma, infer.merge_chroma, Image.Image.save

    def spy(step, fn):
        def wrapped(*args, **kwargs):
            threads[step].add(threading.current_thread().name)
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(infer, "predict_chroma", spy("predict", real_predict))
    monkeypatch.setattr(infer, "merge_chroma", spy("merge", real_merge))
    monkeypatch.setattr(Image.Image, "save", spy("save", real_save))
    s = colorize_files(clr, [photo_dir], tmp_path / "out", recursive=True)
    assert len(s.done) == 12
    assert threads["predict"] == {threading.current_thread().name}
    for step in ("merge", "save"):
        assert threads[step] and all(name.startswith("colorkit-io") for name in threads[step]), threads


def test_a_failing_merge_fails_that_file_only(photo_dir, clr, tmp_path, monkeypatch):
    real_merge = infer.merge_chroma

    def merge(img, ab, strength=1.0):
        if img.height == 28:  # img_01, img_04, img_07, img_10
            raise MemoryError("no room for the full-size result")
        return real_merge(img, ab, strength)

    monkeypatch.setattr(infer, "merge_chroma", merge)
    out = tmp_path / "out"
    s = colorize_files(clr, [photo_dir], out, recursive=True)
    assert len(s.done) == 8 and {p.stem for p, _ in s.failed} == {"img_01", "img_04", "img_07", "img_10"}
    assert {r for _, r in s.failed} == {"colorizing failed: MemoryError: no room for the full-size result"}
    assert len(_outputs(out)) == 8 and not _temp_files(out)


@pytest.mark.parametrize("jobs", [1, 2])
def test_photos_in_flight_stay_bounded(tmp_path, clr, monkeypatch, jobs):
    """However many photos there are, only a few are decoded at once (slow writes make the queue back up)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(16):
        make_photo(24, 32, seed=i).save(src / f"p{i:02d}.png")
    lock, alive, peak = threading.Lock(), [0], [0]
    real_read, real_finish = pipeline.read_and_prepare, pipeline.merge_and_write

    def read(*args):
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        return real_read(*args)

    def finish(*args):
        time.sleep(0.05)
        try:
            return real_finish(*args)
        finally:
            with lock:
                alive[0] -= 1

    monkeypatch.setattr(pipeline, "read_and_prepare", read)
    monkeypatch.setattr(pipeline, "merge_and_write", finish)
    s = colorize_files(clr, [src], tmp_path / "out", jobs=jobs)
    assert len(s.done) == 16 and alive[0] == 0
    assert peak[0] <= max(2, jobs) + jobs  # decoded ahead + waiting to be merged and written


def test_should_stop_finishes_the_photos_in_flight_and_a_second_run_resumes(photo_dir, clr, tmp_path):
    out = tmp_path / "out"
    events: list[ColorizeEvent] = []
    s = colorize_files(clr, [photo_dir], out, recursive=True, progress=events.append,
                       should_stop=lambda: len(events) >= 3)
    assert s.stopped and 3 <= len(s.done) < 12 and s.not_started == 12 - len(s.done)
    first = {p: p.stat().st_mtime_ns for p in s.done}
    assert not _temp_files(out)
    s2 = colorize_files(clr, [photo_dir], out, recursive=True)
    assert not s2.stopped and len(s2.done) == 12 - len(first) and len(s2.skipped) == len(first)
    assert {p: p.stat().st_mtime_ns for p in first} == first  # finished files are not redone


def test_a_keyboard_interrupt_leaves_only_complete_files(photo_dir, clr, tmp_path, monkeypatch):
    real_save, calls, lock = Image.Image.save, [0], threading.Lock()

    def flaky_save(self, fp, *args, **kwargs):
        with lock:
            calls[0] += 1
            n = calls[0]
        real_save(self, fp, *args, **kwargs)
        if n == 3:
            raise KeyboardInterrupt  # after the temp file is written: it must not stay behind

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    out = tmp_path / "out"
    s = colorize_files(clr, [photo_dir], out, recursive=True, jobs=1)
    assert s.stopped and 2 <= len(s.done) < 12 and not _temp_files(out)
    for p in s.done:
        with Image.open(p) as im:
            im.load()


def test_exif_and_icc_profile_are_kept_and_other_colour_spaces_dropped(tmp_path, clr):
    src = tmp_path / "in"
    src.mkdir()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 270
    exif[0x010F] = "TestCam"
    make_photo(20, 30, seed=1).save(src / "a.jpg", exif=exif.tobytes(), icc_profile=icc)
    make_photo(20, 30, seed=2).save(src / "b.png", icc_profile=icc)
    gray_icc = bytearray(icc)
    gray_icc[16:20] = b"GRAY"  # a gray scan's profile would misdescribe the RGB output
    make_photo(20, 30).convert("L").save(src / "scan.jpg", icc_profile=bytes(gray_icc))
    out = tmp_path / "out"
    assert len(colorize_files(clr, [src], out).done) == 3
    with Image.open(out / "a.jpg") as im:
        assert im.info.get("icc_profile") == icc
        ex = im.getexif()
        assert ex.get(0x010F) == "TestCam" and ex.get(0x0112, 1) == 1  # orientation applied, tag reset
        assert im.size == (20, 30)  # shown upright: 30 x 20 stored, rotated
    with Image.open(out / "b.png") as im:
        assert im.info.get("icc_profile") == icc
    with Image.open(out / "scan.jpg") as im:
        assert im.mode == "RGB" and not im.info.get("icc_profile")


def test_stale_temp_files_of_a_killed_run_are_removed(photo_dir, clr, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".img_00.png{TEMP_MARK}deadbeef"
    stale.write_bytes(b"half a png")
    other = out / ".keep-me"
    other.write_text("not ours")
    colorize_files(clr, [photo_dir / "img_00.png"], out)
    assert not stale.exists() and other.exists() and (out / "img_00.png").is_file()


def test_strength_scales_the_colour(tmp_path, clr):
    src = tmp_path / "a.png"
    make_photo(32, 32, seed=5).save(src)

    def spread(strength: float) -> float:
        out = tmp_path / f"s{strength}"
        colorize_files(clr, [src], out, strength=strength)
        a = np.asarray(Image.open(out / "a.png")).astype(int)
        return float(np.abs(a - a.mean(axis=-1, keepdims=True)).mean())

    gray, one, two = spread(0.0), spread(1.0), spread(2.0)
    assert gray < 1.0 < one < two


def test_bad_settings_fail_before_anything_runs(photo_dir, clr, tmp_path):
    batch = prepare_batch([photo_dir], tmp_path / "out")
    for kwargs, what in (({"strength": 5}, "strength"), ({"render_size": 16}, "render_size"), ({"jobs": 0}, "jobs")):
        with pytest.raises(ValueError, match=what):
            run_batch(clr, batch, **kwargs)
    assert not (tmp_path / "out").exists()


def test_precision_comes_from_the_colorizer_or_the_call(tmp_path, clr, monkeypatch):
    src = tmp_path / "a.png"
    make_photo(24, 32, seed=1).save(src)
    seen: list[str] = []
    real_predict = infer.predict_chroma

    def spy(model, x, precision="fp32"):
        seen.append(precision)
        return real_predict(model, x, precision=precision)

    monkeypatch.setattr(infer, "predict_chroma", spy)
    assert clr.precision == "fp32"
    colorize_files(clr, [src], tmp_path / "a")
    colorize_files(clr, [src], tmp_path / "b", precision="bf16")
    assert seen == ["fp32", "bf16"]
    w = next(p for p in clr.model.parameters() if p.ndim == 4)
    assert w.is_contiguous()  # the run's channels_last model is put back as it was
    with pytest.raises(ValueError, match="precision"):
        colorize_files(clr, [src], tmp_path / "c", precision="half")
    assert not (tmp_path / "c").exists()
