"""Multi-GPU training (issue #7): one process per GPU, DistributedDataParallel, synced BatchNorm.

Processes are started by torchrun (`launch` below, or torchrun itself), which describes the group
in the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without it, or with a
group of one, every helper here is the identity and training is the single-process loop.

The aim is that N processes with global batch B train the same weights as one process with
batch B, up to float32 rounding:

* Data: every process draws the same batch order (same seed), builds only its contiguous share
  of each global batch, and advances the augmentation generator past the other shares, so each
  keyframe gets the augmentation it gets in a single process (`shard_batch`).
* Network: the networks treat the keyframes of a batch independently except in BatchNorm, which
  `wrap` replaces by `kernels.nn.SyncBatchNorm` (sparse) and `DenseSyncBatchNorm` (point
  transforms, projectors, the image branch of iupc): statistics over every process.
* Loss: the IUPC losses are not sums of per-process parts: CE and the candidate-set term are
  means over the labelled points of the whole batch, and Lovasz-softmax sorts the errors of the
  whole batch. Averaging per-process losses (what DDP does by default) weights points by
  1 / (points of their process) and computes Lovasz on part-batches. So each process gathers the
  per-voxel logits and targets of the whole batch and computes the loss of the whole batch,
  the same on every process; the gather's backward hands each process the gradient of its own
  rows, scaled by the process count to undo DDP's gradient averaging (`Shard.gather`). The iupc
  step gathers its 2D logits and both embeddings as well, so the association pairs the clicked
  points and superpixel points of the whole batch, as one process does (`Shard.gather_rows`).
* A global batch with fewer keyframes than processes (the last of an epoch, say) is run whole by
  every process with local BatchNorm statistics and a local loss: each computes the
  single-process step itself.
* Validation frames are split between processes and the confusion matrices summed; checkpoints
  are written by rank 0 only (`is_main`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from kernels.nn import DenseSyncBatchNorm, SyncBatchNorm
from weak3d.train.data import Batch, Keyframe, _yaw_scale, make_batch

log = logging.getLogger(__name__)
T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes; return this process's device.

    NCCL for CUDA, gloo otherwise; on CUDA each process takes the GPU of its LOCAL_RANK. Without
    torchrun (or with one process) nothing happens and `device` is returned.
    """
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def finish() -> None:
    """Leave the process group (torch warns at exit otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints and outputs."""
    return rank() == 0


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This process's contiguous share of `items` (the first `len % world` shares are one longer)."""
    world = world_size() if world is None else world
    rank_ = rank() if rank_ is None else rank_
    bounds = _bounds(len(items), world)
    return list(items[bounds[rank_] : bounds[rank_ + 1]])


def _bounds(n: int, world: int) -> list[int]:
    base, extra = divmod(n, world)
    return [r * base + min(r, extra) for r in range(world + 1)]


def skip_augmentation(rng: np.random.Generator, n_frames: int) -> None:
    """Advance `rng` as `make_batch(augment=True)` does for `n_frames` keyframes it does not build.

    make_batch draws from the generator in `_yaw_scale` only, once per keyframe and whatever the
    keyframe's size; a new draw there must be mirrored here (tests/train/test_ddp.py checks).
    """
    for _ in range(n_frames):
        _yaw_scale(np.zeros((1, 3)), rng)


SYNCED_NORMS = (SyncBatchNorm, DenseSyncBatchNorm)


def wrap(model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
    """The module to train: `model` itself in one process, else DDP around it with synced BatchNorm.

    `model` is converted in place (same state-dict keys), so save, load and evaluate `model` and
    only run training forwards through the returned wrapper. Call before building the optimizer.
    `find_unused_parameters`: some parameters get no gradient in some steps (iupc's projectors
    without the association loss, its 2D head in no mode but all).
    """
    if world_size() == 1:
        return model
    SyncBatchNorm.convert(model)
    DenseSyncBatchNorm.convert(model)
    unsynced = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, SYNCED_NORMS)
    ]
    if unsynced:
        log.warning("BatchNorm layers not synchronised across processes: %s", ", ".join(unsynced))
    # The input is a SparseTensor already on this process's device: no device_ids, so DDP does not
    # try to move it. Buffers (BatchNorm statistics) are broadcast from rank 0 at every forward, so
    # the processes can never drift apart, even by rounding.
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused_parameters)


@dataclass
class Shard:
    """This process's part of one global batch."""

    batch: Any  # Batch or CameraBatch: the keyframes this process runs (all of them if replicated)
    replicated: bool  # every process runs the whole batch (one process, or fewer keyframes than processes)

    @contextlib.contextmanager
    def context(self, net: nn.Module) -> Iterator[None]:
        """Wrap the training forward: in a replicated step BatchNorm uses this process's batch only.

        That batch is the whole one, so its statistics are the single-process ones. Gradients are
        still averaged by DDP: they are equal on every process already, and averaging keeps the
        weights identical even where a GPU kernel's rounding is not deterministic.
        """
        synced = [m for m in net.modules() if isinstance(m, SYNCED_NORMS)] if self.replicated else []
        for m in synced:
            m.synchronize = False
        try:
            yield
        finally:
            for m in synced:
                m.synchronize = True

    def gather(self, logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, Batch]:
        """The logits and targets of the whole global batch, for a loss that is the same everywhere.

        Rows come in rank order, i.e. the voxel order of the single-process batch. Only `targets`
        of the returned batch are global: any other per-voxel tensor a loss reads must be gathered
        the same way. Identity for a replicated step.
        """
        if self.replicated:
            return logits, batch
        # A key missing on any process is dropped, as make_batch drops a key some keyframe lacks.
        info: list[Any] = [None] * world_size()
        dist.all_gather_object(info, sorted(batch.targets))
        keys = sorted(set.intersection(*map(set, info)))
        gathered = self.gather_rows(logits, *(batch.targets[k] for k in keys))
        return gathered[0], replace(batch, targets=dict(zip(keys, gathered[1:], strict=True)))

    def gather_rows(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Per-voxel tensors of this process (same row count) as the whole batch's, in rank order.

        Differentiable: the backward of a gathered tensor is as `gather` describes. Identity for
        a replicated step.
        """
        if self.replicated:
            return list(tensors)
        counts: list[Any] = [None] * world_size()
        dist.all_gather_object(counts, tensors[0].shape[0])
        return [_GatherRows.apply(x, counts) for x in tensors]


def shard_batch(
    frames: list[Keyframe],
    voxel_size: float,
    rng: np.random.Generator,
    build: Callable[[list[Keyframe], np.random.Generator], Any] | None = None,
) -> Shard:
    """Build this process's share of the global batch `frames`, keeping `rng` in step everywhere.

    `build(frames, rng)` makes the batch (default: `make_batch` with augmentation); it must draw
    from `rng` only as `make_batch` does (`make_camera_batch` does).
    """
    if build is None:

        def build(part: list[Keyframe], generator: np.random.Generator) -> Batch:
            return make_batch(part, voxel_size, rng=generator, augment=True)

    world = world_size()
    if len(frames) < world or world == 1:
        return Shard(build(frames, rng), replicated=True)
    bounds = _bounds(len(frames), world)
    lo, hi = bounds[rank()], bounds[rank() + 1]
    skip_augmentation(rng, lo)
    batch = build(frames[lo:hi], rng)
    skip_augmentation(rng, len(frames) - hi)
    return Shard(batch, replicated=False)


def _all_gather_rows(x: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Concatenate every process's `x` (counts[r] rows on rank r) in rank order."""
    # all_gather wants equal shapes: pad to the longest share, then cut the padding off.
    padded = x.new_zeros((max(counts), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts, strict=True)])


class _GatherRows(torch.autograd.Function):
    """`_all_gather_rows` whose backward returns this process's rows of the gradient, times N.

    Every process computes the same loss from the same gathered tensor, so the gradient of its own
    rows is the same on all N processes; their sum (what a reduce-scatter would give) is N times
    the local one, and DDP's averaging of parameter gradients divides the N back out.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, counts: list[int]) -> torch.Tensor:
        ctx.start = sum(counts[: rank()])
        ctx.rows = x.shape[0]
        return _all_gather_rows(x.detach(), counts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad[ctx.start : ctx.start + ctx.rows] * world_size(), None


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Sum an array (e.g. a confusion matrix) over processes; the array itself in one process."""
    if world_size() == 1:
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values))
    if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
        tensor = tensor.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def launch(
    script: str, nproc: int, threads_per_process: int, log_file: Any = None, args: Sequence[str] = ()
) -> int:
    """Run `script` (with `args`) in `nproc` processes under torchrun on this host; return its status.

    torchrun rather than torch.multiprocessing.spawn: its workers are fresh interpreters that run
    the script as __main__ (spawn re-imports the calling script, which for a Snakemake `script:`
    re-runs the whole job), it picks a free rendezvous port itself (--standalone), and it stops
    every worker when one fails. `log_file` (an open file) receives the workers' output.
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads_per_process)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        script,
        *args,
    ]
    return subprocess.run(command, env=env, stdout=log_file, stderr=log_file, check=False).returncode
