"""Pure-PyTorch implementation of the sparse operators: the default backend and the test oracle.

Convolution is gather -> matmul -> scatter per kernel offset. Each offset's pairs are injective
(see `KernelMap`), so `index_add_` never adds twice into a row within one call and the result
does not depend on atomics: forward and backward are deterministic on CPU and CUDA.
The point<->voxel scatter (`voxelize`, and the backward of `devoxelize`) adds many points into one
voxel: deterministic on CPU; on CUDA only under `torch.use_deterministic_algorithms(True)`,
which makes PyTorch's `index_add_` use its sorted (deterministic) path.
"""

from __future__ import annotations

from typing import Any

import torch

from kernels.kmap import KernelMap


def compute_dtype(feats: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of `feats` computes and outputs in: the autocast dtype when
    autocast is on, else the features' own."""
    device = feats.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else feats.dtype


def autocast_operands(feats: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both operands in the autocast dtype when autocast is on (unchanged otherwise).

    Mixed precision: a convolution computes in the autocast dtype itself, so that forward buffers
    and the saved tensors share one dtype and backward (which runs outside autocast) multiplies
    matching dtypes. The engine casts the returned gradients back to the inputs' dtypes.
    """
    if torch.is_autocast_enabled(feats.device.type):
        dtype = compute_dtype(feats)
        feats, weight = feats.to(dtype), weight.to(dtype)
    return feats, weight


class _GatherMatmulScatter(torch.autograd.Function):
    """out[o] = sum_k feats[in_k] @ weight[k] over the pairs of each offset k.

    A custom Function saves only `feats` and `weight` for backward; composing index_select/mm in
    autograd would keep one gathered copy of the input per offset alive until backward.
    """

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        feats, weight = autocast_operands(feats, weight)
        ctx.kmap = kmap
        ctx.save_for_backward(feats, weight)
        if kmap.identity_offset is not None:
            out = feats @ weight[kmap.identity_offset]
        else:
            out = feats.new_zeros(kmap.n_out, weight.shape[2])
        for k, in_index, out_index in kmap.offset_pairs():
            if k == kmap.identity_offset:
                continue
            out.index_add_(0, out_index, feats.index_select(0, in_index) @ weight[k])
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        grad_out = grad_out.to(feats.dtype).contiguous()
        need_feats, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_feats = grad_weight = None
        if need_feats:
            if kmap.identity_offset is not None:
                grad_feats = grad_out @ weight[kmap.identity_offset].T
            else:
                grad_feats = feats.new_zeros(feats.shape)
        if need_weight:
            grad_weight = torch.zeros_like(weight)
        for k, in_index, out_index in kmap.offset_pairs():
            if k == kmap.identity_offset:
                if need_weight:
                    grad_weight[k] = feats.T @ grad_out
                continue
            grad_rows = grad_out.index_select(0, out_index)
            if need_feats:
                grad_feats.index_add_(0, in_index, grad_rows @ weight[k].T)
            if need_weight:
                grad_weight[k] = feats.index_select(0, in_index).T @ grad_rows
        return grad_feats, grad_weight, None


class ReferenceBackend:
    """The PyTorch reference: runs on any device torch supports."""

    name = "reference"

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        """Sparse convolution `[n_in, Cin] -> [n_out, Cout]` with weight `[K, Cin, Cout]`."""
        return _GatherMatmulScatter.apply(feats, weight, kmap)

    def voxelize(self, point_feats: torch.Tensor, voxel_index: torch.Tensor, n_voxels: int) -> torch.Tensor:
        """Mean of the point features per voxel; points with index -1 are ignored."""
        keep = voxel_index >= 0
        index = voxel_index[keep]
        sums = point_feats.new_zeros(n_voxels, point_feats.shape[1]).index_add_(0, index, point_feats[keep])
        counts = torch.bincount(index, minlength=n_voxels).clamp_(min=1)
        return sums / counts.to(point_feats.dtype)[:, None]

    def devoxelize(
        self, voxel_feats: torch.Tensor, corner_index: torch.Tensor, corner_weights: torch.Tensor
    ) -> torch.Tensor:
        """out[i] = sum_j w[i, j] * voxel_feats[idx[i, j]] over the corners with idx >= 0."""
        # One corner at a time: a single [N, 8, C] gather would be kept alive for backward
        # (180 MB for a 35k-point scan at 163 channels), per corner only [N, C] temporaries exist.
        weights = torch.where(corner_index >= 0, corner_weights, torch.zeros_like(corner_weights))
        weights = weights.to(voxel_feats.dtype)
        safe_index = corner_index.clamp(min=0)
        out = voxel_feats.new_zeros(corner_index.shape[0], voxel_feats.shape[1])
        for corner in range(corner_index.shape[1]):
            out = out + weights[:, corner, None] * voxel_feats.index_select(0, safe_index[:, corner])
        return out
