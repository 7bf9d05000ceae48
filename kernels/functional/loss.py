"""Losses over per-voxel class scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernels.backend import get_backend

_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MAX_CLASSES = 1024  # the kernels hold a row of scores in one tile


def cross_entropy(scores: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                  reduction: str = "mean") -> torch.Tensor:
    """`F.cross_entropy(scores [N, C], labels [N])` without class weights or label smoothing.

    On CUDA with the Triton backend (C <= 1024, mean or sum): two kernels that read the scores in
    their own dtype and compute in fp32 (`kernels.triton.loss`), deterministic; a label outside
    [0, C) that is not `ignore_index` makes the loss NaN there (torch's kernel stops the process
    with a device assert). The loss is fp32 under autocast, else in the scores' dtype, as torch's.
    Elsewhere: `F.cross_entropy`.
    """
    if _use_kernel(scores, labels, reduction):
        from kernels.triton.loss import CrossEntropyFunction

        loss = CrossEntropyFunction.apply(scores, labels, ignore_index, reduction == "mean")
        return loss if torch.is_autocast_enabled(scores.device.type) else loss.to(scores.dtype)
    return F.cross_entropy(scores, labels, ignore_index=ignore_index, reduction=reduction)


def _use_kernel(scores: torch.Tensor, labels: torch.Tensor, reduction: str) -> bool:
    return (scores.is_cuda and scores.dim() == 2 and labels.dim() == 1 and labels.dtype == torch.int64
            and scores.dtype in _KERNEL_DTYPES and 0 < scores.shape[1] <= _MAX_CLASSES
            and labels.shape[0] == scores.shape[0] and reduction in ("mean", "sum")
            and get_backend(scores.device).name == "triton")
