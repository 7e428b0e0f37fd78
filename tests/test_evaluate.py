"""colorkit.evaluate: the evaluation protocol, baselines, prediction folders and reports."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorkit import metrics
from colorkit.color import rgb_to_lab
from colorkit.evaluate import (
    EvalResult,
    evaluate,
    evaluate_predictions,
    evaluation_crop,
    format_table,
    gray_input,
    write_report,
)
from colorkit.io import find_images, load_image
from tests.conftest import make_photo

SIZE = 16  # evaluation crop used by the fast tests (the photo_dir photos are 24-32 x 32 px)


def _strict_json(path: Path) -> dict:
    """Parse JSON refusing the non-standard Infinity / NaN tokens."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


class TruthLookup:
    """An 'identity' colorizer: returns the ground-truth crop whose gray input it is given."""

    def __init__(self, folder: Path, size: int) -> None:
        self.table = {}
        for f in find_images(folder):
            truth = evaluation_crop(load_image(f), size)
            self.table[gray_input(truth).tobytes()] = truth
        self.calls = 0

    def __call__(self, gray: Image.Image) -> Image.Image:
        self.calls += 1
        return self.table[gray.tobytes()]


class NoisyColorizer:
    """Tints the gray input with torch random noise: deterministic only if evaluate seeds torch."""

    def __call__(self, gray: Image.Image) -> Image.Image:
        arr = np.asarray(gray).astype(np.float32)
        noise = torch.rand(3).numpy() * 60
        return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------------------------
# the evaluation crop


def test_evaluation_crop_resizes_shorter_side_and_centres():
    img = Image.new("RGB", (64, 32), (0, 0, 255))
    img.paste((255, 0, 0), (24, 0, 40, 32))  # a red band in the middle quarter of the width
    crop = evaluation_crop(img, 16)
    arr = np.asarray(crop).astype(int)
    assert crop.size == (16, 16)
    # 64x32 -> 32x16, centre 16 columns = source columns 16..48: blue | red (8 px) | blue
    assert arr[:, 6:10, 0].mean() > 200 and arr[:, 6:10, 2].mean() < 60
    assert arr[:, :2, 2].mean() > 200 and arr[:, -2:, 2].mean() > 200
    assert evaluation_crop(make_photo(10, 12), 40).size == (40, 40)  # small photos are upscaled
    with pytest.raises(ValueError, match="size"):
        evaluation_crop(img, 0)


def test_gray_input_has_equal_channels():
    g = np.asarray(gray_input(make_photo(20, 20)))
    assert g.shape == (20, 20, 3)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


# ----------------------------------------------------------------------------------------------
# baselines


def test_gray_baseline_has_zero_colourfulness_and_gap_equal_to_truth_cf(photo_dir):
    r = evaluate(None, photo_dir, size=SIZE, baselines=("gray",), sample=0)
    s = r.summary["gray"]
    assert r.methods == ["gray"] and s["n"] == 12
    assert s["colorfulness"] == 0.0
    assert s["colorfulness_target"] > 5  # the photos are colourful
    assert s["colorfulness_gap"] == pytest.approx(s["colorfulness_target"])
    truth_cf = [row["colorfulness_target"] for row in r.per_image]
    assert s["colorfulness_target"] == pytest.approx(np.mean(truth_cf))
    assert all(row["colorfulness"] == 0.0 for row in r.per_image)


def test_mean_chroma_uses_the_sets_mean_ab(photo_dir):
    r = evaluate(None, photo_dir, size=SIZE, sample=0)
    assert r.methods == ["gray", "mean_chroma"]
    crops = [np.array(evaluation_crop(load_image(f), SIZE)) for f in find_images(photo_dir)]
    labs = [rgb_to_lab(torch.from_numpy(c).permute(2, 0, 1).double() / 255) for c in crops]
    expected = torch.stack([lab[1:].mean(dim=(1, 2)) for lab in labs]).mean(dim=0)
    assert r.settings["mean_chroma_ab"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert "peeks" in r.settings["mean_chroma"]
    mc, gray = r.summary["mean_chroma"], r.summary["gray"]
    assert mc["colorfulness"] > 1  # a constant tint is colourful, the gray baseline is not
    assert mc["ab_error"] < gray["ab_error"]  # the set's mean colour is closer than no colour


# ----------------------------------------------------------------------------------------------
# a perfect colorizer


def test_identity_colorizer_scores_perfectly(photo_dir, tmp_path):
    ident = TruthLookup(photo_dir, SIZE)
    r = evaluate(ident, photo_dir, size=SIZE, sample=2, out=tmp_path / "rep")
    assert ident.calls == 12 and r.methods == ["model", "gray", "mean_chroma"]
    s = r.summary["model"]
    assert s["n"] == 12 and s["psnr"] == math.inf
    assert s["ssim"] == pytest.approx(1.0)
    assert s["ciede2000"] == pytest.approx(0.0, abs=1e-9) and s["ab_error"] == pytest.approx(0.0, abs=1e-9)
    assert s["colorfulness_gap"] == pytest.approx(0.0, abs=1e-9)
    assert r.summary["gray"]["psnr"] < 60  # the baselines are not perfect
    data = _strict_json(r.paths["json"])
    assert data["summary"]["model"]["psnr"] == "inf"
    assert all(row["psnr"] == "inf" for row in data["per_image"] if row["method"] == "model")
    assert "inf" in format_table(r).splitlines()[2]


def test_identical_prediction_folder_scores_perfectly(photo_dir):
    r = evaluate_predictions(photo_dir, photo_dir, size=SIZE, sample=0)
    s = r.summary["predictions"]
    assert s["n"] == 12 and r.missing == [] and r.extra == [] and r.skipped == []
    assert s["psnr"] == math.inf and s["ssim"] == pytest.approx(1.0)
    assert s["ciede2000"] == pytest.approx(0.0, abs=1e-9)
    assert s["colorfulness_gap"] == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# prediction folders


def test_predictions_matched_by_stem_with_missing_extra_and_bad_files(photo_dir, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    files = find_images(photo_dir)
    for i, f in enumerate(files):
        if i == 0:
            continue  # img_00 has no prediction
        if i == 1:
            (preds / "img_01.png").write_bytes(b"not an image")  # unreadable prediction
            continue
        if i == 2:  # wrong aspect ratio (truth is 32x32)
            load_image(f).resize((40, 20)).save(preds / "img_02.png")
            continue
        img = load_image(f)
        if i == 3:  # same aspect, twice the size
            img = img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)
        # upper-case stem and a different extension still match
        img.save(preds / (f.stem.upper() + (".PNG" if i % 2 else ".tif")))
    make_photo(24, 32, seed=99).save(preds / "stranger.jpg")  # no ground truth
    r = evaluate_predictions(preds, photo_dir, size=SIZE, sample=0)
    assert r.missing == ["img_00.png"]
    assert r.extra == ["stranger.jpg"]
    reasons = {s["file"]: s["reason"] for s in r.skipped}
    assert any(k.startswith("img_01") and "img_01.png" in k for k in reasons), reasons
    assert any(k.startswith("img_02") and "aspect" in v for k, v in reasons.items()), reasons
    assert r.summary["predictions"]["n"] == 12 - 3
    assert {row["file"] for row in r.per_image} == {f.relative_to(photo_dir).as_posix() for f in files[3:]}
    assert r.summary["gray"]["n"] == 9  # baselines on exactly the same images
    assert r.summary["predictions"]["ciede2000"] < 2  # re-saved copies are close to the truth
    assert "1 missing" in format_table(r) and "1 extra" in format_table(r)


def test_ambiguous_stems_are_listed(photo_dir, tmp_path):
    preds = tmp_path / "preds"
    shutil.copytree(photo_dir, preds)
    load_image(photo_dir / "img_01.jpg").save(preds / "IMG_01.png")
    r = evaluate_predictions(preds, photo_dir, size=SIZE, sample=0, baselines=None)
    ambiguous = [s for s in r.skipped if "ambiguous" in s["reason"]]
    assert sorted(s["file"] for s in ambiguous) == ["IMG_01.png", "img_01.jpg"]
    assert r.missing == ["img_01.jpg"] and r.summary["predictions"]["n"] == 11


def test_predictions_need_folders(photo_dir, tmp_path):
    with pytest.raises(NotADirectoryError, match="nope"):
        evaluate_predictions(tmp_path / "nope", photo_dir)


# ----------------------------------------------------------------------------------------------
# robustness and arguments


def test_corrupt_file_in_source_is_listed_not_fatal(photo_dir):
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (photo_dir / "empty.png").write_bytes(b"")
    r = evaluate(None, photo_dir, size=SIZE, sample=0)
    reasons = {s["file"]: s["reason"] for s in r.skipped}
    assert set(reasons) == {"broken.jpg", "empty.png"}
    assert "empty" in reasons["empty.png"]
    assert r.summary["gray"]["n"] == 12 and r.settings["n_found"] == 14
    assert "2 skipped" in format_table(r)


def test_limit_and_sample(photo_dir):
    r = evaluate(None, photo_dir, size=SIZE, limit=5, sample=3)
    assert r.summary["gray"]["n"] == 5 and len(r.samples) == 3
    assert [s.file for s in r.samples] == ["img_00.png", "img_01.jpg", "img_02.jpg"]
    assert sorted({row["file"] for row in r.per_image}) == [f"img_0{i}{'.png' if i % 3 == 0 else '.jpg'}"
                                                             for i in range(5)]


def test_bad_arguments(photo_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate(None, photo_dir, baselines=("sepia",))
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(None, photo_dir, baselines=())
    with pytest.raises(TypeError, match="colorizer must be"):
        evaluate(42, photo_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        evaluate(None, tmp_path / "empty")


def test_colorizer_returning_wrong_shape_names_the_file(photo_dir):
    def squash(gray: Image.Image) -> Image.Image:
        return gray.resize((gray.width * 2, gray.height))

    with pytest.raises(ValueError, match=r"img_00\.png.*32x16"):
        evaluate(squash, photo_dir, size=SIZE, sample=0)


def test_runs_are_deterministic_and_leave_global_rng_alone(photo_dir):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = evaluate(NoisyColorizer(), photo_dir, size=SIZE, sample=0)
    after = torch.rand(1)
    b = evaluate(NoisyColorizer(), photo_dir, size=SIZE, sample=0)
    assert a.per_image == b.per_image and a.summary == b.summary
    assert a.summary["model"]["colorfulness"] > 0
    assert torch.equal(before, after)  # the caller's torch generator state was restored


# ----------------------------------------------------------------------------------------------
# FID and LPIPS


def test_fid_and_lpips_reported_unavailable_with_reason(photo_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # nothing cached there
    r = evaluate(None, photo_dir, size=SIZE, sample=0)
    for m in r.methods:
        for key in ("fid", "lpips"):
            entry = r.summary[m][key]
            assert entry["available"] is False and "value" not in entry
            assert isinstance(entry["reason"], str) and len(entry["reason"]) > 10
    assert "FID: not available" in format_table(r)


def test_fid_is_computed_when_weights_are_present(photo_dir, monkeypatch):
    def fake_features(images, weights=None, batch_size=32):  # (N, 3, H, W) -> (N, 6) colour stats
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)

    monkeypatch.setattr(metrics, "fid_available", lambda weights=None: (True, "fake weights"))
    monkeypatch.setattr(metrics, "inception_features", fake_features)
    r = evaluate_predictions(photo_dir, photo_dir, size=SIZE, sample=0)
    fid = {m: r.summary[m]["fid"] for m in r.methods}
    assert all(e["available"] is True for e in fid.values())
    assert fid["predictions"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert fid["gray"]["value"] > fid["predictions"]["value"]
    assert "FID: predictions 0.00" in format_table(r)


# ----------------------------------------------------------------------------------------------
# reports


def test_write_report_writes_json_csv_and_grid(photo_dir, tmp_path):
    r = evaluate(None, photo_dir, size=SIZE, sample=4)
    paths = write_report(r, tmp_path / "out")
    assert set(paths) == {"json", "csv", "grid"} and all(p.is_file() for p in paths.values())
    assert r.paths == paths
    data = _strict_json(paths["json"])
    assert data["colorkit_version"] and data["settings"]["size"] == SIZE
    assert data["methods"] == ["gray", "mean_chroma"] and data["n_images"] == 12
    assert data["summary"]["gray"]["colorfulness"] == 0.0
    assert len(data["per_image"]) == 24 and data["sample_files"][0] == "img_00.png"
    assert data["summary"]["gray"]["fid"]["available"] in (True, False)
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and {r_["method"] for r_ in rows} == {"gray", "mean_chroma"}
    assert float(rows[0]["ssim"]) == pytest.approx(r.per_image[0]["ssim"])
    grid = Image.open(paths["grid"])
    pad, head, cell = 8, 28, 128  # gray input | mean chroma | ground truth (gray baseline not repeated)
    assert grid.size == (3 * cell + 4 * pad, head + 4 * (cell + pad) + pad)
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_write_report_without_sample_skips_grid(photo_dir, tmp_path):
    r = evaluate(None, photo_dir, size=SIZE, sample=0, out=tmp_path / "out")
    assert set(r.paths) == {"json", "csv"} and not (tmp_path / "out" / "grid.png").exists()


def test_format_table_is_aligned(photo_dir):
    r = evaluate(None, photo_dir, size=SIZE, sample=0)
    lines = format_table(r).splitlines()
    assert lines[0].split() == ["method", "PSNR", "SSIM", "dE2000", "ab", "err", "CF", "dCF"]
    table = lines[:4]
    assert len({len(line) for line in table}) == 1  # header, rule and rows have one width
    assert lines[2].startswith("gray") and lines[3].startswith("mean_chroma")
    assert f"{r.summary['gray']['colorfulness_gap']:.2f}" in lines[2]
    assert "12 images" in lines[4]


def test_empty_result_is_reportable(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"junk")
    r = evaluate(None, folder, size=SIZE)
    assert isinstance(r, EvalResult) and r.summary["gray"]["n"] == 0 and r.summary["gray"]["psnr"] is None
    assert len(r.skipped) == 1
    paths = write_report(r, tmp_path / "out")
    assert "grid" not in paths and _strict_json(paths["json"])["n_images"] == 0
    assert "0 images" in format_table(r)


# ----------------------------------------------------------------------------------------------
# a real (tiny, untrained) generator


@pytest.mark.slow
def test_tiny_generator_end_to_end(photo_dir, tmp_path):
    from colorkit.learner import Colorizer
    from colorkit.models import create_generator

    torch.manual_seed(0)
    clr = Colorizer(create_generator("resnet18", img_size=32), config={})
    a = evaluate(clr, photo_dir, size=32, limit=4, sample=2, out=tmp_path / "rep")
    b = evaluate(clr, photo_dir, size=32, limit=4, sample=2)
    assert a.methods == ["model", "gray", "mean_chroma"] and a.summary["model"]["n"] == 4
    assert a.per_image == b.per_image  # deterministic
    c = evaluate(clr.model, photo_dir, size=32, limit=4, sample=0, baselines=None)  # a bare generator
    assert c.per_image == [row for row in a.per_image if row["method"] == "model"]
    assert c.model["type"] == "ColorizerNet" and c.model["config"]["arch"] == "resnet18"
    s = a.summary["model"]
    assert math.isfinite(s["psnr"]) and 0 < s["ssim"] <= 1 and s["ciede2000"] > 0
    data = _strict_json(a.paths["json"])
    assert data["model"]["type"] == "Colorizer" and data["model"]["config"] == {}
    grid = Image.open(a.paths["grid"])  # gray input | prediction | mean chroma | ground truth, 128 px cells
    assert 4 * 128 < grid.width < 4 * 128 + 50 and grid.height > 2 * 128


def test_render_size_reaches_the_colorizer(photo_dir):
    class Recorder:
        def __init__(self) -> None:
            self.render_sizes: list[int] = []

        def colorize(self, gray, render_size=None):
            self.render_sizes.append(render_size)
            return gray

    rec = Recorder()
    r = evaluate(rec, photo_dir, size=SIZE, limit=2, baselines=[], fid=False)
    assert rec.render_sizes == [SIZE, SIZE]  # default: render at the comparison size
    rec.render_sizes.clear()
    r = evaluate(rec, photo_dir, size=SIZE, limit=2, baselines=[], fid=False, render_size=96)
    assert rec.render_sizes == [96, 96] and r.settings["render_size"] == 96
    with pytest.raises(ValueError):
        evaluate(rec, photo_dir, size=SIZE, render_size=0)
