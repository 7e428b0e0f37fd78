"""Data-parallel training: 2 processes on the gloo backend (CPU), launched by torchrun, against one process.

One ``torchrun --nproc_per_node 2`` run (a tiny resnet18 U-Net at 32 px, a handful of synthetic photos) does:

1. ``fit_progressive`` with 2 photos per rank per step, compared here with one process taking all 4 photos per
   step: after the same 2 steps the weights must agree (BatchNorm layers are calibrated once and then frozen in
   both runs: on CPUs PyTorch has no SyncBatchNorm, so training-mode BatchNorm would normalise each rank over
   its own 2 photos instead of all 4: a real, documented difference, not what this test is about);
2. ``train_colorizer`` into a model folder (only rank 0 writes it), stopped after its first stage on every rank,
   then run again: it resumes from rank 0's checkpoint and finishes;
3. ``leave_distributed``: rank 0 goes on alone, the other stops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fastai.callback.core import Callback
from fastai.optimizer import SGD
from safetensors.torch import load_file
from torch import nn

from colorkit.data import colorize_dls
from colorkit.learner import colorize_learner
from colorkit.train import Stage, fit_progressive, set_seed
from tests.conftest import make_photo

pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow  # two worker processes import torch and fastai: ~20 s

TOL = 1e-4  # largest weight difference after 2 SGD steps (lr up to 0.05), where training moves them by ~6e-3: DDP
# sums the 2 ranks' gradients in another order than one process sums 4 photos' (they agree to ~2e-6, relative), so
# the weights agree to rounding, not bit for bit. SGD, not Adam: Adam's first steps move every weight by +-lr
# whatever its gradient's size, so a weight whose gradient is nearly zero can step either way on rounding alone.


class FreezeBatchNorm(Callback):
    """Set every BatchNorm's running statistics from the validation photos, then keep BatchNorm in eval mode."""

    order = 5  # after TrainEvalCallback has put the model in training mode, before the data-parallel wrap

    def before_fit(self) -> None:
        bns = [m for m in self.learn.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
        x, _ = self.dls.valid.one_batch()  # both validation photos, whatever the batch size
        self.learn.model.train()
        with torch.no_grad():
            self.learn.model(x)

    def before_batch(self) -> None:
        for m in self.learn.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def tiny_learner(src: Path, valid: Path, bs: int):
    set_seed(0)
    dls = colorize_dls(src, size=32, bs=bs, valid_folder=valid, augment=False, seed=0)
    return colorize_learner(dls, arch="resnet18", pretrained=False, loss="l1", metrics=[], self_attention=False,
                            cbs=[FreezeBatchNorm()], opt_func=SGD)


WORKER = """
import json, sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from colorkit.distributed import is_main_process, leave_distributed, rank, world_size
from colorkit.train import Stage, fit_progressive, train_colorizer
from test_distributed import tiny_learner

src, valid, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1)

# 1. the same 2 steps as the single-process reference, 2 photos per rank per step
learn = tiny_learner(src, valid, bs=2)
fit_progressive(learn, src, [Stage(32, epochs=2, lr=0.05, bs=2)], seed=0, valid_folder=valid, augment=False)
if is_main_process():
    save_file({k: v.contiguous() for k, v in learn.model.state_dict().items()}, str(out / "ddp.safetensors"))

# 2. train_colorizer, stopped after its first stage, then resumed
stages = [Stage(32, epochs=1, lr=1e-3, bs=2), Stage(32, epochs=1, lr=1e-4, bs=2)]

class StopInStage2(Exception):
    pass

def stop_in_stage_2(*args, **kwargs):
    raise StopInStage2  # every rank stops at the same point, as after a signal

real_fit_one_cycle = type(learn).fit_one_cycle
calls = []
def fit_once(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        stop_in_stage_2()
    return real_fit_one_cycle(self, *args, **kwargs)
type(learn).fit_one_cycle = fit_once
try:
    train_colorizer(src, out / "model", stages, valid=valid, arch="resnet18", mode="lab", pretrained=False,
                    loss="l1", precision="fp32", seed=0, augment=False)
    raise SystemExit("the first run should have stopped in stage 2")
except StopInStage2:
    pass
type(learn).fit_one_cycle = real_fit_one_cycle
train_colorizer(src, out / "model", stages, valid=valid, arch="resnet18", mode="lab", pretrained=False,
                loss="l1", precision="fp32", seed=0, augment=False)

# 3. rank 0 goes on alone
r, n = rank(), world_size()
goes_on = leave_distributed()
(out / f"rank{r}.json").write_text(json.dumps({"world_size": n, "goes_on": goes_on}))
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("photos")
    src, valid = root / "train", root / "valid"
    src.mkdir()
    valid.mkdir()
    for i in range(4):
        make_photo(40, 48, seed=i).save(src / f"p{i}.png")
    for i in range(2):
        make_photo(40, 48, seed=10 + i).save(valid / f"v{i}.png")
    return src, valid


def test_two_gloo_processes_train_like_one(photos, tmp_path):
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    src, valid = photos
    (tmp_path / "test_distributed.py").write_text(Path(__file__).read_text())  # the worker imports tiny_learner
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(WORKER))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           str(worker), str(src), str(valid), str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    # only rank 0 wrote the model, its checkpoints and the progress; the second run resumed after stage 1
    model = out / "model"
    assert sorted(p.name for p in model.iterdir()) == ["checkpoints", "config.json", "model.safetensors"]
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == [
        "progress.json", "stage_0.safetensors", "stage_1.safetensors"]
    assert json.loads((model / "checkpoints" / "progress.json").read_text())["finished"] == [0, 1]
    assert run.stdout.count("resuming after stage 1/2") == 1  # printed by rank 0 only
    assert json.loads((out / "rank0.json").read_text()) == {"world_size": 2, "goes_on": True}
    assert json.loads((out / "rank1.json").read_text()) == {"world_size": 2, "goes_on": False}

    # the same 2 steps in one process, 4 photos per step
    learn = tiny_learner(src, valid, bs=4)
    fit_progressive(learn, src, [Stage(32, epochs=2, lr=0.05, bs=4)], seed=0, valid_folder=valid, augment=False)
    ddp = load_file(str(out / "ddp.safetensors"))
    ref = learn.model.state_dict()
    start = tiny_learner(src, valid, bs=4).model.state_dict()
    params = {k for k, _ in learn.model.named_parameters()}
    buffers = {k for k in ref if k not in params and ref[k].is_floating_point()}  # BatchNorm statistics, ...
    moved = max(float((ref[k] - start[k]).abs().max()) for k in params)
    worst = max((float((ddp[k] - ref[k]).abs().max()), k) for k in params)
    worst_buffer = max((float((ddp[k] - ref[k]).abs().max() / ref[k].abs().max().clamp(min=1e-6)), k) for k in buffers)
    assert moved > 20 * TOL  # training moved the weights far more than the tolerance
    assert worst[0] < TOL, f"weights differ by {worst} (training moved them by up to {moved:.2e})"
    # BatchNorm statistics of a random network's large activations (variance = mean of squares - square of mean)
    # lose a few digits to cancellation, so they agree to 1e-3 of their size
    assert worst_buffer[0] < 1e-3, f"buffers differ by {worst_buffer} (relative)"
