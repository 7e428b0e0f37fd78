"""colorkit.jobs: one photo at a time per model, in order, with progress, cancel, failures and kept results."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from colorkit.jobs import Job, JobError, JobQueue, _model_lock
from colorkit.learner import Colorizer
from colorkit.models import create_generator
from tests.conftest import make_photo


class Gated(nn.Module):
    """Wraps a network; each forward pass waits until the test opens the gate."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.gate, self.entered = net, threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return self.net(x)


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return create_generator("resnet18", pretrained=False, img_size=64).eval()


def _colorizer(model: nn.Module) -> Colorizer:
    return Colorizer(model, {"render_size": 64, "generator": {"arch": "resnet18"}})


def _upload(tmp_path: Path, name: str, img: Image.Image | bytes, fmt: str = "PNG") -> Path:
    path = tmp_path / name
    if isinstance(img, bytes):
        path.write_bytes(img)
    else:
        img.save(path, fmt)
    return path


def _finished(queue: JobQueue, job: Job, timeout: float = 30) -> Job:
    done = threading.Event()
    queue.on_finish(job, lambda _: done.set())
    assert done.wait(timeout), f"{job} did not finish"
    return job


def test_jobs_run_in_order_and_keep_full_size(net, tmp_path):
    q = JobQueue(_colorizer(net))
    sizes = [(40, 30), (17, 53), (64, 64)]
    jobs = [q.submit(Job(f"p{i}.png", _upload(tmp_path, f"u{i}", make_photo(h, w, seed=i)), 64, 1.0))
            for i, (w, h) in enumerate(sizes)]
    for job, size in zip(jobs, sizes, strict=True):
        _finished(q, job)
        assert job.state == "done" and job.progress == 1.0 and job.status == 200
        assert job.result.size == size and job.size == size
        assert job.upload is None  # the upload was deleted once decoded
    assert [j.started for j in jobs] == sorted(j.started for j in jobs)
    assert not list(tmp_path.iterdir())
    assert q.counts() == {"waiting": 0, "running": 0}
    q.close()


def test_progress_position_and_cancel(net, tmp_path):
    gated = Gated(net)
    q = JobQueue(_colorizer(gated))
    a, b, c = (q.submit(Job(f"{n}.png", _upload(tmp_path, n, make_photo(seed=i)), 64, 1.0))
               for i, n in enumerate("abc"))
    assert gated.entered.wait(30)
    assert a.state == "running" and a.stage == "running the network" and 0 < a.progress < 1
    assert [q.position(j) for j in (a, b, c)] == [0, 1, 2]
    q.cancel(b)  # a queued job is cancelled at once and its upload deleted
    assert b.state == "cancelled" and b.status == 499 and not (tmp_path / "b").exists()
    assert q.position(b) is None and q.position(c) == 1
    q.cancel(a)  # a running job stops at its next step
    assert a.state == "running"
    gated.gate.set()
    _finished(q, a)
    _finished(q, c)
    assert a.state == "cancelled" and a.result is None and a.error == "cancelled while running"
    assert c.state == "done" and c.result is not None
    q.close()


def test_queue_full_is_a_503(net, tmp_path):
    gated = Gated(net)
    q = JobQueue(_colorizer(gated), max_waiting=1)
    a = q.submit(Job("a.png", _upload(tmp_path, "a", make_photo()), 64, 1.0))
    assert gated.entered.wait(30)
    q.submit(Job("b.png", _upload(tmp_path, "b", make_photo()), 64, 1.0))
    with pytest.raises(JobError, match="already waiting") as e:
        q.submit(Job("c.png", _upload(tmp_path, "c", make_photo()), 64, 1.0))
    assert e.value.status == 503
    gated.gate.set()
    _finished(q, a)
    q.close()


def test_failures_name_the_photo_and_the_worker_goes_on(net, tmp_path):
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    make_photo(30, 30).save(small)  # 900 pixels
    make_photo(64, 64).save(big)  # 4096 pixels
    cases = {
        "notes.txt": (b"not an image at all", 415, "not an image"),
        "cut.png": (small.read_bytes()[: small.stat().st_size // 2], 422, "truncated"),
        "big.png": (big.read_bytes(), 413, "too many pixels"),
    }
    q = JobQueue(_colorizer(net), max_pixels=1000)
    for name, (data, status, words) in cases.items():
        job = _finished(q, q.submit(Job(name, _upload(tmp_path, name, data), 64, 1.0)))
        assert (job.state, job.status) == ("failed", status)
        assert job.error.startswith(f"{name}: ") and words in job.error
        assert str(tmp_path) not in job.error  # the private upload path is not shown to the client
    ok = _finished(q, q.submit(Job("ok.png", _upload(tmp_path, "ok.png", make_photo(20, 20)), 64, 1.0)))
    assert ok.state == "done"
    q.close()


def test_a_model_failure_is_a_500_and_not_fatal(net, tmp_path):
    q = JobQueue(_colorizer(Broken()))
    job = _finished(q, q.submit(Job("a.png", _upload(tmp_path, "a", make_photo()), 64, 1.0)))
    assert (job.state, job.status) == ("failed", 500) and "RuntimeError: boom" in job.error
    job2 = _finished(q, q.submit(Job("b.png", _upload(tmp_path, "b", make_photo()), 64, 1.0)))
    assert job2.state == "failed" and q._thread.is_alive()
    q.close()


def test_old_results_expire_within_the_pixel_budget(net, tmp_path):
    q = JobQueue(_colorizer(net), keep_megapixels=0.005)  # 5000 pixels: one 60x60 result fits, not two
    first = _finished(q, q.submit(Job("a.png", _upload(tmp_path, "a", make_photo(60, 60)), 64, 1.0)))
    assert first.state == "done"
    second = _finished(q, q.submit(Job("b.png", _upload(tmp_path, "b", make_photo(60, 60, seed=1)), 64, 1.0)))
    assert second.state == "done" and second.result is not None
    assert (first.state, first.status, first.result) == ("expired", 410, None)
    with pytest.raises(JobError) as e:
        q.get("no-such-job")
    assert e.value.status == 404
    q.close()


def test_strength_zero_gives_gray(net, tmp_path):
    q = JobQueue(_colorizer(net))
    job = _finished(q, q.submit(Job("a.png", _upload(tmp_path, "a", make_photo(32, 32).convert("L")), 64, 0.0)))
    arr = np.asarray(job.result).astype(int)
    assert np.abs(arr - arr.mean(-1, keepdims=True)).max() <= 1
    q.close()


def test_async_wait_and_close(net, tmp_path):
    gated = Gated(net)
    q = JobQueue(_colorizer(gated))
    a = q.submit(Job("a.png", _upload(tmp_path, "a", make_photo()), 64, 1.0))
    b = q.submit(Job("b.png", _upload(tmp_path, "b", make_photo()), 64, 1.0))
    assert gated.entered.wait(30)

    async def main() -> Job:
        asyncio.get_running_loop().call_later(0.2, gated.gate.set)
        return await q.wait(a, poll=0.05)

    assert asyncio.run(main()).state == "done"
    q.close()  # b waited or ran: either way it ends, and the worker stops
    assert b.finished_state and not q._thread.is_alive()
    with pytest.raises(JobError, match="shutting down"):
        q.submit(Job("c.png", _upload(tmp_path, "c", make_photo()), 64, 1.0))


def test_one_lock_per_model(net):
    assert _model_lock(net) is _model_lock(net)
    assert JobQueue(_colorizer(net))._lock is JobQueue(_colorizer(net))._lock
