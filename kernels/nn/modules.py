"""Feature-wise modules lifted to `SparseTensor`s (they act on `.feats`, keep voxels and caches)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from kernels.backend import get_backend
from kernels.reference import compute_dtype
from kernels.tensor import SparseTensor


class BatchNorm(nn.BatchNorm1d):
    """`nn.BatchNorm1d` over the voxel features (same parameter names as torchsparse).

    On a tensor padded by `kernels.graphs` (a row mask in its caches) the training statistics
    cover the real rows only and padding rows come out as zeros. `fused_relu` (set by
    `fuse_batch_norm_relu`): a ReLU follows the normalisation, inside the same kernels on the Triton
    backend (one pass over the features instead of two, forward and backward).
    """

    fused_relu = False

    def forward(self, input: SparseTensor, residual: SparseTensor | None = None  # type: ignore[override]
                ) -> SparseTensor:
        """residual (a residual block's shortcut, on the input's voxels): relu(normalised + residual),
        in the normalising kernel itself when training on a padded tensor with the Triton backend."""
        if residual is None:
            return self._normalise(input)
        masked = input._caches.row_masks.get(input.stride)
        if masked is not None and self.training and residual.feats.dtype == input.feats.dtype:
            input.check_same_voxels(residual)
            out = _masked_batch_norm(self, input.feats, *masked, residual=residual.feats)
            return input.replace_feats(out)
        return add_relu(self._normalise(input), residual)

    def _normalise(self, input: SparseTensor) -> SparseTensor:
        masked = input._caches.row_masks.get(input.stride)
        if masked is not None and self.training:
            return input.replace_feats(_masked_batch_norm(self, input.feats, *masked))
        if _fused_inference(self, input.feats):
            from kernels.triton.batchnorm import batch_norm_inference

            return input.replace_feats(batch_norm_inference(
                input.feats, self.running_mean, self.running_var, self.weight, self.bias, self.eps,
                relu=self.fused_relu))
        return input.replace_feats(_activate(self, super().forward(input.feats)))


def _activate(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) if getattr(bn, "fused_relu", False) else x


def fuse_batch_norm_relu(module: nn.Module) -> nn.Module:
    """In every `nn.Sequential` of `module`, a `BatchNorm` directly followed by a `ReLU` takes the
    ReLU over (`fused_relu`) and the ReLU's place is held by an `nn.Identity` (no parameters either:
    state-dict keys stay). A plain `nn.Sequential` with a `Conv3d` directly followed by a
    `BatchNorm` becomes a `ConvSequential` (same modules and keys), which at inference runs the pair
    as one convolution kernel. Returns `module`, changed in place."""
    from kernels.nn.conv import Conv3d

    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for name, following in zip(names, names[1:], strict=False):
            first, second = seq._modules[name], seq._modules[following]
            if isinstance(first, BatchNorm) and type(second) is ReLU and not first.fused_relu:
                first.fused_relu = True
                seq._modules[following] = nn.Identity()
            if isinstance(first, Conv3d) and isinstance(second, BatchNorm) and type(seq) is nn.Sequential:
                seq.__class__ = ConvSequential
    return module


class ConvSequential(nn.Sequential):
    """`nn.Sequential` whose `Conv3d` -> `BatchNorm` pairs run as one kernel at inference.

    When the BatchNorm would normalise with its running statistics in one Triton kernel (eval mode,
    nothing to differentiate, CUDA, the Triton backend; `_fused_inference`) and has no hooks of
    its own, the convolution applies it (and its fused ReLU) to its fp32 sums before the store
    (`kernels.epilogue`): one kernel and one pass over the output fewer per layer. Otherwise, and
    in training, exactly `nn.Sequential`.

    `residual` (a residual block's shortcut, on the output's voxels): returns relu(output +
    residual); when the sequence ends in such a pair, inside its convolution's epilogue too, and
    in training inside the last BatchNorm's kernel (`BatchNorm.forward`).
    """

    def forward(self, input: SparseTensor, residual: SparseTensor | None = None  # type: ignore[override]
                ) -> SparseTensor:
        from kernels.epilogue import NormEpilogue
        from kernels.nn.conv import Conv3d

        modules = list(self._modules.values())
        i = 0
        while i < len(modules):
            module = modules[i]
            following = modules[i + 1] if i + 1 < len(modules) else None
            if (isinstance(module, Conv3d) and isinstance(following, BatchNorm) and module.bias is None
                    and not following._forward_hooks and not following._forward_pre_hooks
                    and _fused_inference(following, input.feats)):
                epilogue = NormEpilogue.of(following, following.fused_relu)
                last = i + 2 == len(modules)
                if (last and residual is not None and not following.fused_relu
                        and residual.feats.dtype == compute_dtype(input.feats)):
                    out = module(input, epilogue=replace(epilogue, residual=residual.feats, relu=True))
                    out.check_same_voxels(residual)
                    return out
                input = module(input, epilogue=epilogue)
                i += 2
            elif (i + 1 == len(modules) and residual is not None and isinstance(module, BatchNorm)
                    and not module._forward_hooks and not module._forward_pre_hooks):
                return module(input, residual=residual)  # the sum inside its kernel where it can
            else:
                input = module(input)
                i += 1
        return input if residual is None else add_relu(input, residual)


def _fused_inference(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> bool:
    """Eval mode on running statistics, nothing to differentiate, CUDA on the Triton backend: one
    kernel instead of torch's three (at MinkUNet sizes each is mostly launch latency)."""
    return (not bn.training and bn.track_running_stats and bn.running_mean is not None and bn.affine
            and x.is_cuda and x.dim() == 2 and get_backend(x.device).name == "triton"
            and not (torch.is_grad_enabled() and (x.requires_grad or bn.weight.requires_grad)))


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
        return _convert(module, (BatchNorm,), cls)

    def forward(self, input: SparseTensor, residual: SparseTensor | None = None  # type: ignore[override]
                ) -> SparseTensor:
        if not (self.training and self.synchronize and _several_processes()):
            return super().forward(input, residual)
        out = input.replace_feats(_activate(self, _synced_batch_norm(self, input.feats)))
        return out if residual is None else add_relu(out, residual)


class DenseSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """`SyncBatchNorm`'s statistics for dense `(N, C, ...)` tensors: it stands in for
    `nn.BatchNorm1d/2d/3d` (point transforms, projectors, an image branch) in multi-process
    training, with the same parameters and buffers and the same fallbacks to plain BatchNorm."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # BatchNorm1d's signature
        super().__init__(*args, **kwargs)
        self.synchronize = True

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"DenseSyncBatchNorm expects (N, C, ...) input, got {input.dim()}D")

    @classmethod
    def convert(cls, module: nn.Module) -> nn.Module:
        """Replace every dense `nn.BatchNorm1d/2d/3d` in `module` (not the sparse `BatchNorm`)."""
        return _convert(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), cls)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.synchronize and _several_processes()):
            return super().forward(input)
        channels_last = input.movedim(1, -1)
        rows = _synced_batch_norm(self, channels_last.reshape(-1, self.num_features))
        return rows.reshape(channels_last.shape).movedim(-1, 1)


def _convert(
    module: nn.Module, types: tuple[type, ...], cls: type[nn.modules.batchnorm._BatchNorm]
) -> nn.Module:
    """`module` with every layer of exactly one of `types` replaced by `cls`, parameters shared."""
    if type(module) in types:
        new = cls(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats  # type: ignore[arg-type]
        )
        # Share rather than copy, as torch's convert_sync_batchnorm does: devices and dtypes stay.
        for name, param in module.named_parameters(recurse=False):
            setattr(new, name, param)
        for name, buffer in module.named_buffers(recurse=False):
            setattr(new, name, buffer)
        new.train(module.training)
        new.fused_relu = getattr(module, "fused_relu", False)  # type: ignore[assignment]
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert(child, types, cls))
    return module


def _as_float(x: torch.Tensor) -> torch.Tensor:
    # Statistics in float32 at least: under autocast the features may arrive in half precision.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _synced_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch normalisation of the rows `x` (rows, C) with statistics over every process's rows."""
    xf = _as_float(x)
    local = torch.cat([xf.sum(dim=0), xf.new_tensor([xf.shape[0]])])
    total = _all_reduce_sum(local)
    count = total[-1]
    mean = total[:-1] / count
    centred = xf - mean
    var = _all_reduce_sum((centred * centred).sum(dim=0)) / count  # biased, as BatchNorm normalises
    return _normalise(bn, centred, mean, var, count).to(x.dtype)


def _triton_rows(x: torch.Tensor) -> bool:
    return x.is_cuda and get_backend(x.device).name == "triton"


def _masked_batch_norm(
    bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batch normalisation of the rows of `x` where `mask` [N, 1] is 1 (`count` of them); the other
    rows come out as zeros (then the ReLU, if `bn` has it fused). No host sync, so it can run
    inside a CUDA graph. On CUDA tensors with the Triton backend: four kernels
    (kernels.triton.batchnorm) instead of these passes.

    residual: returns relu(that + residual), padding rows zero (on the Triton backend, without a
    fused ReLU, inside the normalising pass)."""
    if residual is not None and (getattr(bn, "fused_relu", False) or not _triton_rows(x)):
        return torch.relu((_masked_batch_norm(bn, x, mask, count) + residual) * mask).to(x.dtype)
    if _triton_rows(x):
        from kernels.triton.batchnorm import MaskedBatchNormFunction

        weight = bn.weight if bn.affine else x.new_ones(x.shape[1], dtype=torch.float32)
        bias = bn.bias if bn.affine else x.new_zeros(x.shape[1], dtype=torch.float32)
        tracking = bn.track_running_stats and bn.running_mean is not None
        shift = bn.running_mean if tracking else x.new_zeros(x.shape[1], dtype=torch.float32)
        # With a momentum the kernels move the running statistics themselves (no extra launches).
        momentum = bn.momentum if tracking else None
        out, mean, var = MaskedBatchNormFunction.apply(
            x, mask, count, weight, bias, shift.detach(), bn.running_mean, bn.running_var,
            bn.num_batches_tracked, bn.eps, momentum, getattr(bn, "fused_relu", False), residual)
        if tracking and momentum is None:
            _update_running_stats(bn, mean, var, count)
        return out
    xf = _as_float(x)
    mean = (xf * mask).sum(dim=0) / count
    centred = xf - mean
    var = (centred * centred * mask).sum(dim=0) / count
    return _activate(bn, _normalise(bn, centred, mean, var, count) * mask).to(x.dtype)


def _normalise(
    bn: nn.modules.batchnorm._BatchNorm, centred: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
    count: torch.Tensor,
) -> torch.Tensor:
    out = centred * torch.rsqrt(var + bn.eps)
    if bn.affine:
        out = out * bn.weight + bn.bias
    if bn.track_running_stats:
        _update_running_stats(bn, mean.detach(), var.detach(), count.detach())
    return out


@torch.no_grad()
def _update_running_stats(
    bn: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor
) -> None:
    # The same update as nn.BatchNorm1d (unbiased variance over the real, global row count).
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    unbiased = var * (count / (count - 1.0).clamp(min=1.0))
    bn.running_mean.copy_(factor * mean + (1.0 - factor) * bn.running_mean)  # type: ignore[operator]
    bn.running_var.copy_(factor * unbiased + (1.0 - factor) * bn.running_var)  # type: ignore[operator]


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


def add_relu(a: SparseTensor, b: SparseTensor) -> SparseTensor:
    """`relu(a + b)` on the features of `a` (a residual block's end): one pass on CUDA with the
    Triton backend (where the sum and the ReLU are two kernels and two passes otherwise)."""
    a.check_same_voxels(b)
    x, y = a.feats, b.feats
    # The kernel adds in fp32 and rounds once: bit-identical to torch in fp32, fp16 and bf16 on an H200.
    kernel_dtypes = (torch.float16, torch.bfloat16, torch.float32)
    if (x.is_cuda and x.dim() == 2 and x.shape == y.shape and x.dtype == y.dtype and x.dtype in kernel_dtypes
            and get_backend(x.device).name == "triton"):
        from kernels.triton.elementwise import AddReLUFunction

        return a.replace_feats(AddReLUFunction.apply(x, y))
    return a.replace_feats(torch.relu(x + y))


class ReLU(nn.ReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))


class LeakyReLU(nn.LeakyReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))
