"""The ``colorkit`` command line, driven through ``main([...])`` (and once as ``python -m colorkit``).

The batch engine under ``colorkit colorize`` is tested as a library in test_pipeline.py; here: what the
commands add (options, messages, exit codes, signals) and that they call the library."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import colorkit.modelcard
from colorkit import cli
from colorkit.cli import _common, main
from colorkit.learner import load_colorizer, save_colorizer
from colorkit.models import create_generator
from colorkit.pipeline import FAILURES_FILE
from tests.conftest import make_photo

REPO = Path(__file__).resolve().parents[1]
GOOD = {"good.jpg", "sub/good2.png", "rgba.png", "palette.png", "gray16.png", "rotated.jpg", "cmyk.jpg"}
BAD = {"corrupt.jpg", "text.jpg"}
TEMP_MARK = ".tmp-"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved resnet18 colorizer with random weights that renders at 32 px (the lightest U-Net options)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny"
    net = create_generator("resnet18", img_size=32, self_attention=False, blur=False, spectral=False)
    save_colorizer(net, path, render_size=32)
    return path


_LOADED: dict[tuple[str, str, str], object] = {}


@pytest.fixture(autouse=True)
def _reuse_loaded_models(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Load each model folder once per session (building the network is most of a tiny run's time).

    Tests that ask for the ``real_loading`` fixture go through the real loader every time.
    """
    if "real_loading" in request.fixturenames:
        return
    real = _common.load_model

    def load(path: Path, device: str = "cpu", precision: str = "fp32") -> object:
        key = (str(Path(path).resolve()), device, precision)
        if key not in _LOADED:
            _LOADED[key] = real(path, device, precision)
        return _LOADED[key]

    monkeypatch.setattr(_common, "load_model", load)


@pytest.fixture
def real_loading() -> None:
    """Marker fixture: this test loads models with the real ``colorkit.cli._common.load_model``."""


def _exif_rotated(path: Path) -> None:
    """A 32 x 24 (w x h) JPEG whose EXIF says 'rotate 90 degrees': it displays as 24 x 32."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"
    make_photo(24, 32, seed=5).save(path, exif=exif.tobytes())


def _truncated_jpeg(path: Path) -> None:
    make_photo(64, 64, seed=7).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """Good photos in several modes (RGBA, palette, 16-bit, CMYK, EXIF-rotated) plus two unreadable files."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    make_photo(24, 32, seed=0).save(root / "good.jpg")
    make_photo(20, 28, seed=1).save(root / "sub" / "good2.png")
    rgba = make_photo(16, 20, seed=2).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(root / "rgba.png")
    make_photo(18, 22, seed=3).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    arr16 = (np.linspace(0, 65535, 30 * 26).reshape(26, 30)).astype(np.uint16)
    Image.fromarray(arr16).save(root / "gray16.png")  # I;16
    _exif_rotated(root / "rotated.jpg")
    make_photo(24, 24, seed=6).convert("CMYK").save(root / "cmyk.jpg")
    _truncated_jpeg(root / "corrupt.jpg")
    (root / "text.jpg").write_text("this is not an image\n")
    (root / "notes.txt").write_text("ignored: not an image extension\n")
    return root


def _outputs(out: Path) -> set[str]:
    """Relative paths of the image files under ``out`` (no hidden / temp files)."""
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.suffix != ".txt"}


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name or p.name.startswith(".")]


def _mtimes(out: Path) -> dict[str, int]:
    return {rel: (out / rel).stat().st_mtime_ns for rel in _outputs(out)}


def _oriented_size(path: Path) -> tuple[int, int]:
    from colorkit.io import read_image

    return read_image(path)[1].size


# ----------------------------------------------------------------------------------------------
# help and version


@pytest.mark.parametrize("cmd", ["colorize", "train", "evaluate", "info", "demo"])
def test_help_of_each_subcommand_has_an_example(cmd, capsys):
    assert main([cmd, "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example" in text and f"colorkit {cmd}" in text


def test_top_level_help_version_and_no_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for cmd in ("colorize", "train", "evaluate", "info", "demo"):
        assert cmd in text
    assert main(["--version"]) == 0
    import colorkit

    assert f"colorkit {colorkit.__version__}" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["colorize"]) == 2  # INPUT and -o are required


def test_each_subcommand_is_one_module_listed_once():
    import importlib

    assert {"colorize", "train", "evaluate", "info", "demo"} <= set(cli.COMMANDS)  # and serve, video, export, ...
    assert len(set(cli.COMMANDS)) == len(cli.COMMANDS)
    for name in cli.COMMANDS:
        module = importlib.import_module(f"colorkit.cli.{name}")
        assert callable(module.add_parser) and callable(module.run), name


def test_a_new_subcommand_is_a_module_and_a_line(monkeypatch, capsys):
    """What a later ``colorkit video`` / ``serve`` / ``export`` needs: add_parser + run, and its name in COMMANDS."""
    import types

    hello = types.ModuleType("colorkit.cli.hello")

    def add_parser(sub):
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world")
        return p

    hello.add_parser, hello.run = add_parser, lambda args: print(f"hello {args.name}") or 0
    monkeypatch.setitem(sys.modules, "colorkit.cli.hello", hello)
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "hello"))
    assert main(["hello", "--name", "colorkit"]) == 0
    assert capsys.readouterr().out == "hello colorkit\n"


def test_help_imports_neither_torch_nor_fastai():
    code = ("import sys, contextlib, io\nfrom colorkit.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help']); main(['colorize', '--help'])\n"
            "print(sorted(m for m in ('torch', 'fastai', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


def test_loss_choices_match_the_library():
    from colorkit.cli.train import LOSSES
    from colorkit.loss import LOSSES as LIBRARY_LOSSES

    assert set(LOSSES) == set(LIBRARY_LOSSES)


# ----------------------------------------------------------------------------------------------
# colorize


def test_colorize_folder_with_good_and_bad_files(mixed_dir, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["colorize", str(mixed_dir), "-o", str(out), "--model", str(tiny_model), "--recursive", "-q"])
    text = capsys.readouterr()
    assert code == 1  # some files failed, the rest completed
    assert _outputs(out) == GOOD
    for rel in GOOD:
        src, dst = mixed_dir / rel, out / rel
        with Image.open(dst) as im:
            assert im.size == _oriented_size(src), rel
            assert im.format == {".jpg": "JPEG", ".png": "PNG"}[dst.suffix]
            assert im.mode == "RGB"
    for bad in BAD:  # each failure is reported with its reason, in the summary and the failures file
        assert f"{mixed_dir / bad}:" in text.out
    failures = (out / FAILURES_FILE).read_text()
    assert {Path(line.split("\t")[0]).name for line in failures.splitlines()} == BAD
    assert "truncated" in failures and "not an image" in failures
    assert "7 colorized" in text.out and "2 failed" in text.out
    assert not _temp_files(out)


def test_second_run_skips_and_overwrite_redoes(tmp_path, tiny_model, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    make_photo(16, 20, seed=1).save(src / "a.jpg")
    make_photo(20, 16, seed=2).save(src / "sub" / "b.png")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    args = ["colorize", str(src), "-o", str(out), "--model", str(tiny_model), "-r", "-q"]
    assert main(args) == 1
    past = time.time() - 1000
    for rel in _outputs(out):
        os.utime(out / rel, (past, past))
    before = _mtimes(out)
    capsys.readouterr()
    assert main(args) == 1  # the bad file still fails
    summary = capsys.readouterr().out.replace(" (output already there)", "")
    assert "0 colorized, 2 skipped, 1 failed" in summary
    assert _mtimes(out) == before
    assert main([*args, "--overwrite"]) == 1
    after = _mtimes(out)
    assert set(after) == set(before) and all(after[k] > before[k] for k in before)


def test_colorize_files_and_globs_mirror_their_base(mixed_dir, tiny_model, tmp_path):
    out = tmp_path / "out"
    pattern = str(mixed_dir / "*" / "*.png")  # matches sub/good2.png: kept relative to the pattern's base
    code = main(["colorize", str(mixed_dir / "good.jpg"), pattern, "-o", str(out), "--model", str(tiny_model),
                 "-q"])
    assert code == 0
    assert _outputs(out) == {"good.jpg", "sub/good2.png"}


def test_non_recursive_folder_skips_sub_folders(mixed_dir, tiny_model, tmp_path):
    out = tmp_path / "out"
    main(["colorize", str(mixed_dir), "-o", str(out), "--model", str(tiny_model), "-q"])
    assert _outputs(out) == GOOD - {"sub/good2.png"}


def test_refuses_to_write_over_inputs(mixed_dir, tiny_model, capsys):
    listing = sorted(p.relative_to(mixed_dir) for p in mixed_dir.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in mixed_dir.rglob("*")}
    assert main(["colorize", str(mixed_dir), "-o", str(mixed_dir), "--model", str(tiny_model)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    # an output folder inside a folder read recursively would read its own outputs next time
    model = ["--model", str(tiny_model)]
    assert main(["colorize", str(mixed_dir), "-o", str(mixed_dir / "sub"), "-r", *model]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    # a single file colorized into its own folder
    assert main(["colorize", str(mixed_dir / "good.jpg"), "-o", str(mixed_dir), *model]) == 2
    assert sorted(p.relative_to(mixed_dir) for p in mixed_dir.rglob("*")) == listing
    assert {p: p.stat().st_mtime_ns for p in mixed_dir.rglob("*")} == stamps


def test_interrupted_run_leaves_complete_files_and_resumes(
    mixed_dir, tiny_model, tmp_path, monkeypatch, capsys
):
    """A KeyboardInterrupt in the middle of the third image write: exit 130, only whole files left."""
    real_save = Image.Image.save
    calls, lock = [0], threading.Lock()

    def flaky_save(self, fp, *args, **kwargs):
        with lock:
            calls[0] += 1
            n = calls[0]
        if n == 3:
            real_save(self, fp, *args, **kwargs)  # the temp file is written, then the interrupt comes
            raise KeyboardInterrupt
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", flaky_save)
    out = tmp_path / "out"
    args = ["colorize", str(mixed_dir), "-o", str(out), "--model", str(tiny_model), "-r", "-q", "--jobs", "1"]
    assert main(args) == 130
    text = capsys.readouterr().out
    assert "interrupted" in text and "Run the same command again" in text
    first = _outputs(out)
    assert 2 <= len(first) < len(GOOD)
    assert not _temp_files(out)
    for rel in first:
        with Image.open(out / rel) as im:
            im.load()  # decodes fully
    stamps = _mtimes(out)

    monkeypatch.setattr(Image.Image, "save", real_save)
    assert main(args) == 1  # completes; the two bad files still fail
    text = capsys.readouterr().out
    assert f"{len(GOOD) - len(first)} colorized, {len(first)} skipped" in text
    assert _outputs(out) == GOOD
    assert {k: v for k, v in _mtimes(out).items() if k in stamps} == stamps  # done once, not redone
    assert not _temp_files(out)


def test_strength_is_checked_and_reaches_the_pipeline(tmp_path, tiny_model, capsys):
    src = tmp_path / "a.png"
    make_photo(20, 24, seed=3).save(src)
    model = ["--model", str(tiny_model), "-q"]
    assert main(["colorize", str(src), "-o", str(tmp_path / "o"), "--strength", "2.5", *model]) == 2
    assert "--strength must be between 0 and 2" in capsys.readouterr().err
    assert main(["colorize", str(src), "-o", str(tmp_path / "gray"), "--strength", "0", *model]) == 0
    assert "strength 0" in capsys.readouterr().out
    a = np.asarray(Image.open(tmp_path / "gray" / "a.png")).astype(int)
    assert np.abs(a - a.mean(axis=-1, keepdims=True)).max() <= 1  # no colour at strength 0


def test_missing_starter_model_gives_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(colorkit.modelcard, "STARTER_MODEL", tmp_path / "no-such-starter")
    make_photo(8, 8).save(tmp_path / "a.png")
    assert main(["colorize", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "colorkit train" in err
    assert not (tmp_path / "out").exists()
    assert main(["info"]) == 2
    assert main(["colorize", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "--model", str(tmp_path),
                 ]) == 2
    assert "config.json" in capsys.readouterr().err


def test_no_such_input_is_a_usage_error(tmp_path, tiny_model, capsys):
    code = main(["colorize", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--model", str(tiny_model)])
    assert code == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_next_run_finishes(tmp_path, tiny_model):
    """``python -m colorkit colorize`` killed with SIGTERM mid-way: exit 143, only complete files."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    n = 48
    for i in range(n):
        make_photo(480, 640, seed=i).save(src / f"p{i:02d}.jpg", quality=90)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "colorkit", "colorize", str(src), "-o", str(out), "--model", str(tiny_model),
           "--jobs", "1", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not list(out.glob("*.jpg")):
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, (stdout, stderr)
    assert "SIGTERM" in stderr and "interrupted by SIGTERM" in stdout
    done = _outputs(out)
    assert 1 <= len(done) < n
    assert not _temp_files(out)
    for rel in done:
        with Image.open(out / rel) as im:
            im.load()
            assert im.size == (640, 480)
    stamps = _mtimes(out)
    assert main(["colorize", str(src), "-o", str(out), "--model", str(tiny_model), "-q"]) == 0
    assert _outputs(out) == {f"p{i:02d}.jpg" for i in range(n)}
    assert {k: v for k, v in _mtimes(out).items() if k in stamps} == stamps


# ----------------------------------------------------------------------------------------------
# info, demo, evaluate


def test_info_prints_config_recipe_metrics_and_size(tiny_model, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model, model)
    config = json.loads((model / "config.json").read_text())
    config["training"] = {"data": {"source": "photos/", "n_train": 10, "n_valid": 2},
                          "stages": [{"size": 32, "epochs": 1, "bs": 4, "lr": 0.001}],
                          "history": [{"stage": 0, "size": 32, "seconds": 3.0, "valid_loss": 1.25}],
                          "pretrained_encoder": False, "from_model": None, "seed": 42}
    (model / "config.json").write_text(json.dumps(config))
    (model / "metrics.json").write_text(json.dumps({"psnr": 21.5}))
    assert main(["info", str(model)]) == 0
    text = capsys.readouterr().out
    for needle in ("resnet18", "lab", "render size:  32", "parameters:", "float16", "MB", "photos/",
                   "32px x1", "from scratch", "valid_loss 1.25", "psnr: 21.5"):
        assert needle in text, needle


def test_demo_writes_grid_and_results(tiny_model, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", str(tiny_model)]) == 0
    text = capsys.readouterr().out
    grid = out / "demo_grid.png"
    assert str(grid) in text
    with Image.open(grid) as im:
        assert im.width > im.height  # gray | colorized | original side by side
    from colorkit.samples import load_samples

    samples = load_samples()
    assert {name for name, *_ in samples} >= {"grace_hopper", "synthetic_scene"}
    for name, original, _ in samples:
        with Image.open(out / f"{name}_colorized.png") as im:
            assert im.size == original.size
        with Image.open(out / f"{name}_gray.png") as im:
            a = np.asarray(im.convert("RGB")).astype(int)
            assert np.abs(a[..., 0] - a[..., 1]).max() <= 1  # the input really is gray


def test_evaluate_baselines_model_and_predictions(photo_dir, tiny_model, tmp_path, capsys):
    rep = tmp_path / "rep"
    assert main(["evaluate", str(photo_dir), "--size", "32", "--out", str(rep), "--no-fid", "-q"]) == 0
    text = capsys.readouterr().out
    assert "baselines only" in text and "mean_chroma" in text
    assert json.loads((rep / "metrics.json").read_text())["methods"] == ["gray", "mean_chroma"]

    assert main(["evaluate", str(photo_dir), "--model", str(tiny_model), "--size", "32", "--out", str(rep),
                 "--limit", "4", "--no-fid", "-q"]) == 0
    report = json.loads((rep / "metrics.json").read_text())
    assert report["methods"][0] == "model" and report["n_images"] == 4
    assert report["settings"]["render_size"] == 32  # the model's own render size, as `colorize` uses it
    assert main(["evaluate", str(photo_dir), "--model", str(tiny_model), "--size", "32", "--out", str(rep),
                 "--limit", "2", "--no-fid", "-q", "--render-size", "64"]) == 0
    assert json.loads((rep / "metrics.json").read_text())["settings"]["render_size"] == 64
    assert (rep / "metrics.csv").is_file() and (rep / "grid.png").is_file()

    preds = tmp_path / "preds"
    assert main(["colorize", str(photo_dir), "-r", "-o", str(preds), "--model", str(tiny_model), "-q"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(photo_dir), "--predictions", str(preds), "--size", "32", "--out", str(rep),
                 "--no-fid", "-q"]) == 0
    assert "predictions" in capsys.readouterr().out
    assert json.loads((rep / "metrics.json").read_text())["n_images"] == 12


# ----------------------------------------------------------------------------------------------
# train


def test_train_refuses_model_inside_data_and_bad_stages(photo_dir, capsys):
    assert main(["train", str(photo_dir), "-o", str(photo_dir / "model"), "--from", "none"]) == 2
    assert "inside the training folder" in capsys.readouterr().err
    assert main(["train", str(photo_dir), "-o", str(photo_dir.parent / "m"), "--stages", "64x4",
                 "--from", "none"]) == 2
    assert "SIZE:EPOCHS" in capsys.readouterr().err
    assert main(["train", str(photo_dir), "-o", str(photo_dir.parent / "m"), "--rebalance", "0.5",
                 "--from", "none"]) == 2  # the feature loss cannot be rebalanced
    assert "--loss l1" in capsys.readouterr().err


def test_train_fine_tunes_the_starter_by_default_then_runs_nogan(
    photo_dir, tiny_model, tmp_path, monkeypatch, capsys
):
    """The wiring of ``train`` (training itself replaced): starting model, stages, GAN call, skip list."""
    import importlib
    import shutil
    from types import SimpleNamespace

    import colorkit.train

    nogan_module = importlib.import_module("colorkit.nogan")  # colorkit.nogan the attribute is the function
    monkeypatch.setattr(colorkit.modelcard, "STARTER_MODEL", tiny_model)
    calls: dict[str, dict] = {}

    def fake_train(data, out, stages, **kwargs):
        calls["train"] = {"data": data, "out": out, "stages": stages, **kwargs}
        shutil.copytree(tiny_model, out, dirs_exist_ok=True)
        info = {"n_train": 11, "n_valid": 1, "skipped": [(photo_dir / "x.jpg", "truncated image data")]}
        return SimpleNamespace(dls=SimpleNamespace(colorize_info=info))

    def fake_gan(model, data, out, **kwargs):
        calls["gan"] = {"model": model, "data": data, "out": out, **kwargs}
        return SimpleNamespace(kept_start=False, best_iter=50)

    monkeypatch.setattr(colorkit.train, "train_colorizer", fake_train)
    monkeypatch.setattr(nogan_module, "train_gan", fake_gan)
    out = tmp_path / "m"
    code = main(["train", str(photo_dir), "-o", str(out), "--stages", "32:2:4,48:1:2", "--gan",
                 "--gan-iters", "10", "--seed", "3", "--no-resume", "--max-items", "5"])
    text = capsys.readouterr().out
    assert code == 0, text
    t = calls["train"]
    assert t["from_model"] == tiny_model and t["arch"] == "resnet18" and t["mode"] == "lab"
    assert [(s.size, s.epochs, s.bs) for s in t["stages"]] == [(32, 2, 4), (48, 1, 2)]
    assert t["resume"] is False and t["seed"] == 3 and t["valid"] is None
    assert len(t["data"]) == 5 and all(Path(f).is_relative_to(photo_dir) for f in t["data"])  # --max-items
    g = calls["gan"]
    assert (g["model"], g["out"], g["size"], g["bs"], g["n_iter"]) == (out, out, 48, 2, 10)
    assert "fine-tuning the starter model" in text and "x.jpg: truncated image data" in text
    assert "GAN checkpoint 50" in text

    # asking for another architecture than the starter's trains a new model ...
    assert main(["train", str(photo_dir), "-o", str(tmp_path / "m2"), "--arch", "resnet34",
                 "--stages", "32:1"]) == 0
    assert calls["train"]["from_model"] is None and calls["train"]["arch"] == "resnet34"
    assert json.loads((tmp_path / "m2" / "metrics.json").read_text())["split"].startswith("training")
    # ... but an explicit --from that does not match is refused before anything runs
    calls.clear()
    assert main(["train", str(photo_dir), "-o", str(tmp_path / "m3"), "--from", str(tiny_model),
                 "--arch", "resnet34"]) == 2
    assert "does not match" in capsys.readouterr().err and not calls


@pytest.mark.slow
def test_train_tiny_model_end_to_end(photo_dir, tmp_path, capsys, real_loading):
    (photo_dir / "broken.jpg").write_text("not a photo")
    valid = tmp_path / "valid"
    valid.mkdir()
    for i in range(3):
        make_photo(28, 32, seed=100 + i).save(valid / f"v{i}.png")
    model = tmp_path / "model"
    code = main(["train", str(photo_dir), "-o", str(model), "--valid", str(valid), "--stages", "32:1:4",
                 "--no-pretrained", "--from", "none", "--arch", "resnet18", "--render-size", "32",
                 "--eval-size", "32", "--threads", "2"])
    text = capsys.readouterr()
    assert code == 0, text
    assert "broken.jpg" in text.out  # the bad photo was skipped and listed, not fatal
    clr = load_colorizer(model)
    assert clr.render_size == 32 and clr.config["generator"]["arch"] == "resnet18"
    assert clr.colorize(make_photo(20, 24)).size == (24, 20)
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["methods"][0] == "model" and metrics["n_images"] == 3
    assert (model / "grid.png").is_file()
    assert clr.config["training"]["data"]["n_train"] == 12


def test_precision_is_checked_and_reaches_the_model(tmp_path, tiny_model, capsys):
    src = tmp_path / "a.png"
    make_photo(20, 24, seed=3).save(src)
    model = ["--model", str(tiny_model), "-q"]
    assert main(["colorize", str(src), "-o", str(tmp_path / "o"), "--precision", "fp16", *model]) == 2
    for prec in ("fp32", "bf16"):
        assert main(["colorize", str(src), "-o", str(tmp_path / prec), "--precision", prec, *model]) == 0
        assert f", {prec}), output" in capsys.readouterr().out
        assert Image.open(tmp_path / prec / "a.png").size == (24, 20)
