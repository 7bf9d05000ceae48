"""Feature-wise modules lifted to `SparseTensor`s (they act on `.feats`, keep voxels and caches)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from kernels.tensor import SparseTensor


class BatchNorm(nn.BatchNorm1d):
    """`nn.BatchNorm1d` over the voxel features (same parameter names as torchsparse)."""

    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))


class SyncBatchNorm(BatchNorm):
    """`BatchNorm` whose training statistics cover the voxels of every process of the default group.

    torch's `nn.SyncBatchNorm` runs on GPUs only (it refuses CPU tensors, so gloo tests cannot use
    it) and wants dense `(N, C, ...)` inputs; this one is written with plain differentiable ops and
    one autograd-aware all-reduce per statistic, so it runs on any device and backend. Mean and
    variance are computed in two passes (sum, then sum of squared deviations) rather than from
    sum and sum of squares, which cancels badly in float32 when |mean| >> std.

    Same parameters and buffers as `BatchNorm`, so state dicts are interchangeable. Outside
    training, without an initialised process group of several processes, or with
    `synchronize = False` (set by the training loop for steps that every process runs on the same
    whole batch), it is exactly `BatchNorm`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # BatchNorm1d's signature
        super().__init__(*args, **kwargs)
        self.synchronize = True

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every `BatchNorm` in `module` by a `SyncBatchNorm` sharing its parameters and buffers.

        Returns the converted module (`module` itself unless it is a `BatchNorm`). Call it before
        building the optimizer, which must see the same parameter objects.
        """
        if type(module) is BatchNorm:
            new = cls(
                module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
            )
            # Share rather than copy, as torch's convert_sync_batchnorm does: devices and dtypes stay.
            for name, param in module.named_parameters(recurse=False):
                setattr(new, name, param)
            for name, buffer in module.named_buffers(recurse=False):
                setattr(new, name, buffer)
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module

    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        if not (self.training and self.synchronize and _several_processes()):
            return super().forward(input)
        return input.replace_feats(self._synced(input.feats))

    def _synced(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 at least: under autocast the features may arrive in half precision.
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        local = torch.cat([xf.sum(dim=0), xf.new_tensor([xf.shape[0]])])
        total = _all_reduce_sum(local)
        count = total[-1]
        mean = total[:-1] / count
        centred = xf - mean
        var = _all_reduce_sum((centred * centred).sum(dim=0)) / count  # biased, as BatchNorm normalises
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count.item())
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        # The same update as nn.BatchNorm1d (unbiased variance over the *global* voxel count).
        factor = 0.0 if self.momentum is None else self.momentum
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.copy_(factor * mean + (1.0 - factor) * self.running_mean)
        self.running_var.copy_(factor * unbiased + (1.0 - factor) * self.running_var)


def _several_processes() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum shared by all is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class ReLU(nn.ReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))


class LeakyReLU(nn.LeakyReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))
