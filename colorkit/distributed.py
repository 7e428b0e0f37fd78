"""Training on several processes (GPUs, machines) with PyTorch's distributed data parallel, through fastai.

``colorkit train`` and :func:`colorkit.train.fit_progressive` run unchanged under ``torchrun --nproc_per_node N``
or ``accelerate launch``: each process is one rank, finds its place from the launcher's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ...), trains on its share of every epoch's photos, and the ranks average their
gradients after every step, so N ranks with batch size ``bs`` train like one process with ``N * bs``. Only
rank 0 writes files. In a single process everything here is a no-op. See docs/scale.md.

The pieces are fastai's (``DistributedTrainer``, ``DistributedDL``, driven by Hugging Face Accelerate) with
two fixes: the shuffled order is broadcast on the process group's own device (fastai always uses CUDA,
which breaks the gloo backend on CPUs), and ``SyncBatchNorm`` is used only where PyTorch supports it (GPUs;
on CPUs each rank normalises over its own share of the batch).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["barrier", "broadcast_object", "distributed", "is_distributed", "is_main_process", "leave_distributed",
           "rank", "setup_distributed", "world_size"]

_INSTALL = "training on several processes needs Hugging Face Accelerate: pip install accelerate"


def world_size() -> int:
    """How many processes train together (the launcher's ``WORLD_SIZE``; 1 when not launched that way)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank (0 .. world_size - 1; the launcher's ``RANK``)."""
    return int(os.environ.get("RANK", "0") or 0)


def is_distributed() -> bool:
    """True in a process started by ``torchrun`` / ``accelerate launch`` with more than one process."""
    return world_size() > 1


def is_main_process() -> bool:
    """True on rank 0, the process that writes checkpoints, configs, reports and the final model."""
    return rank() == 0


def setup_distributed() -> torch.device | None:
    """Join the launcher's process group (once; nccl on GPUs, gloo on CPUs) and select this rank's GPU, so
    loaders made afterwards land on it. Returns this rank's device; None (nothing done) in one process."""
    if not is_distributed():
        return None
    try:
        from accelerate import PartialState
    except ImportError:
        raise ImportError(_INSTALL) from None
    return PartialState(cpu=_cpu_only()).device


def _cpu_only() -> bool:
    """No GPU here: Accelerate must be told, or it treats a CPU-only torchrun as a single process."""
    return not torch.cuda.is_available()


def _group_ready() -> bool:
    return is_distributed() and dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait until every rank gets here (nothing in one process)."""
    if _group_ready():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` has it, on every rank (a picklable object: progress records, small dicts)."""
    if not _group_ready():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def _trainer_types() -> tuple[type, type]:
    """fastai's DistributedDL / DistributedTrainer, with colorkit's fixes (built on first use: importing
    ``fastai.distributed`` needs accelerate)."""
    global _TYPES
    if _TYPES is None:
        try:
            import accelerate  # noqa: F401
        except ImportError:
            raise ImportError(_INSTALL) from None
        from fastai.distributed import DistributedDL, DistributedTrainer

        class _DL(DistributedDL):
            def _broadcast(self, t: list[int], src: int) -> list[int]:
                """fastai sends the shuffled order with ``.cuda()``; gloo (CPU) needs it on the CPU."""
                device = "cuda" if dist.get_backend() == "nccl" else "cpu"
                x = torch.tensor(t, dtype=torch.long, device=device)
                dist.broadcast(x, src)
                return x.cpu().tolist()

        class _Trainer(DistributedTrainer):
            # after ColorClassLoss (20), which finds the generator's class head on the unwrapped model;
            # before the Recorder (50) and ProgressCallback (60), which must see the sharded loaders
            order = 25

            def _wrap_dl(self, dl: Any) -> Any:
                return dl if isinstance(dl, DistributedDL) else _DL(dl, device=self.learn.dls.device)

        _TYPES = (_DL, _Trainer)
    return _TYPES


_TYPES: tuple[type, type] | None = None


@contextlib.contextmanager
def distributed(learn: Any) -> Iterator[Any]:
    """For the ``with`` block (a ``fit``), train ``learn`` data-parallel across the launched processes:
    the model wrapped in ``DistributedDataParallel`` (rank 0's weights are broadcast to the others when it
    is wrapped), every loader sharded per rank, progress bars on rank 0 only. A no-op in one process.
    fastai's ``learn.distrib_ctx()``, made to work on CPUs (gloo) as well as GPUs."""
    if not is_distributed():
        yield learn
        return
    device = setup_distributed()
    _, trainer = _trainer_types()
    from fastai.callback.progress import ProgressCallback

    cb = trainer(sync_bn=device is not None and device.type == "cuda", cpu=_cpu_only())
    learn.add_cb(cb)
    progress = [c for c in learn.cbs if isinstance(c, ProgressCallback)] if not is_main_process() else []
    for c in progress:
        learn.remove_cb(c)
    try:
        yield learn
    finally:
        learn.remove_cb(cb)
        for c in progress:
            learn.add_cb(c)


def leave_distributed() -> bool:
    """End the data-parallel part of a run: every rank meets, the process group is closed, and this process
    goes on as a single process (fastai stops gathering across ranks). Returns True on rank 0 (which carries
    on, e.g. with the NoGAN phase and the evaluation) and False on the others (which should stop now).
    In one process: True, nothing done."""
    if not is_distributed():
        return True
    main = is_main_process()
    if _group_ready():
        dist.barrier()
        dist.destroy_process_group()
    os.environ["WORLD_SIZE"], os.environ["RANK"] = "1", "0"
    return main
