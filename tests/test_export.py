"""ONNX export: the file runs in onnxruntime and agrees with PyTorch; fixed and free shapes; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from colorkit.cli import main
from colorkit.color import rgb_to_lab
from colorkit.export import STRIDE, compare_onnx, export_onnx
from colorkit.learner import load_colorizer, save_colorizer
from colorkit.models import create_generator

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # two exports of a resnet18 U-Net (~200 MB each): about 25 CPU-seconds

# onnxruntime vs PyTorch, both float32 on the CPU: only the order of the sums differs.
RGB_TOL = 1e-4  # in [0, 1] units (1/40 of an 8-bit level)
AB_TOL = 2e-2  # in Lab units


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A saved resnet18 colorizer (render size 64) whose spectral norms have run a few power iterations, as
    a trained model's have (a fresh one's are far from converged and amplify rounding differences)."""
    torch.manual_seed(0)
    net = create_generator("resnet18", img_size=64, self_attention=True)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(2, 3, 64, 64))
    path = tmp_path_factory.mktemp("model") / "tiny"
    return load_colorizer(save_colorizer(net.eval(), path, half=False, render_size=64))


def test_fixed_shape_export_matches_pytorch(tiny, tmp_path):
    f = export_onnx(tiny, tmp_path / "m.onnx", size=(64, 96))
    model = onnx.load(str(f))
    onnx.checker.check_model(model)
    (inp,) = model.graph.input
    assert inp.name == "gray"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 1, 64, 96]
    assert [o.name for o in model.graph.output] == ["rgb", "ab"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["stride"] == str(STRIDE) and meta["render_size"] == "64"
    assert json.loads(meta["generator"])["arch"] == "resnet18"

    x = torch.rand(1, 1, 64, 96, generator=torch.Generator().manual_seed(3))
    rgb, ab = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, {"gray": x.numpy()})
    with torch.no_grad():
        want = tiny.model(x).clamp(0, 1)
    assert rgb.shape == (1, 3, 64, 96) and ab.shape == (1, 2, 64, 96)
    assert np.abs(rgb - want.numpy()).max() < RGB_TOL
    assert np.abs(ab - rgb_to_lab(want)[:, 1:].numpy()).max() < AB_TOL


def test_cli_dynamic_export_takes_any_multiple_of_the_stride(tiny, tmp_path, capsys):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    out = tmp_path / "cli.onnx"
    assert main(["export", str(tiny.path), "--onnx", str(out), "--dynamic", "--size", "32x64"]) == 0
    assert "onnxruntime vs PyTorch at 32x64, 64x128" in capsys.readouterr().out
    assert all(torch.equal(before[k], v) for k, v in tiny.model.state_dict().items())  # the colorizer is unchanged
    assert not list(tmp_path.glob(".*tmp-*"))  # written atomically, nothing left behind
    dims = [d.dim_param or d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 1, "height", "width"]
    diff = compare_onnx(out, tiny, sizes=[(64, 64), (96, 160)], batch=2)
    assert diff["rgb"] < RGB_TOL and diff["ab"] < AB_TOL, diff


def test_bad_export_settings_are_refused_before_anything_is_written(tiny, tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(tiny, tmp_path / "b.onnx", size=(48, 64))
    x = str(tmp_path / "x.onnx")
    assert main(["export", str(tiny.path), "--onnx", x, "--size", "30x64"]) == 2
    assert main(["export", str(tiny.path), "--onnx", str(tmp_path / "x.txt")]) == 2
    assert main(["export", str(tiny.path), "--onnx", x, "--opset", "3"]) == 2
    assert main(["export", str(tmp_path / "missing"), "--onnx", x]) == 2
    assert not list(tmp_path.iterdir())
