"""Launchers of the convolution kernels and the autograd Function of the Triton backend."""

from __future__ import annotations

from typing import Any

import torch
import triton

from kernels.triton import conv_kernels as ck
from kernels.triton import settings
from kernels.triton.kmap import GPUKernelMap, MapSide
from kernels.triton.launch import Launcher

_SM_TARGET = 264  # weight gradient: programs wanted (two per H100/H200 multiprocessor)
_SPLIT_BUFFER_BYTES = 32 << 20  # deterministic mode: room for the splits' partial sums
_IMPLICIT_GEMM = Launcher(ck.implicit_gemm_kernel)
_WEIGHT_GRAD = Launcher(ck.weight_grad_kernel)


def _pow2(n: int, low: int, high: int) -> int:
    return max(low, min(high, triton.next_power_of_2(max(n, 1))))


def implicit_gemm(
    x: torch.Tensor, weight: torch.Tensor, side: MapSide, transpose_weight: bool
) -> torch.Tensor:
    """y[r] = sum_k x[side.table[r, k]] @ W_k with W_k = weight[k] (or weight[k].T)."""
    n_rows, volume = side.table.shape
    if transpose_weight:
        c_in, c_out = weight.shape[2], weight.shape[1]
        s_wk, s_wi, s_wo = weight.stride(0), weight.stride(2), weight.stride(1)
    else:
        c_in, c_out = weight.shape[1], weight.shape[2]
        s_wk, s_wi, s_wo = weight.stride(0), weight.stride(1), weight.stride(2)
    y = torch.empty(n_rows, c_out, dtype=x.dtype, device=x.device)
    if n_rows == 0:
        return y
    wide = x.dtype != torch.float32
    block_n = _pow2(c_out, 16, 128 if wide else 64)
    block_k = _pow2(c_in, 16, 64 if wide else 32)
    block_m = 64
    grid = (triton.cdiv(n_rows, block_m), triton.cdiv(c_out, block_n))
    _IMPLICIT_GEMM(
        grid,
        x, weight, y, side.table, side.perm if side.perm is not None else side.table,
        n_rows, c_in, c_out, s_wk, s_wi, s_wo,
        K=volume, FLIP=side.flip, HAS_PERM=side.perm is not None, PRECISION=settings.dot_precision(x.dtype),
        BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=8 if block_n >= 128 else 4,
    )
    return y


def weight_grad(x: torch.Tensor, dy: torch.Tensor, kmap: GPUKernelMap, volume: int) -> torch.Tensor:
    """dW [K, Cin, Cout] in fp32."""
    rows, counts, rows_are_out = kmap.offset_lists()
    table = kmap._state.forward.table
    c_in, c_out = x.shape[1], dy.shape[1]
    wide = x.dtype != torch.float32
    block_i = _pow2(c_in, 16, 64)
    block_o = _pow2(c_out, 16, 64)
    block_p = 64 if wide else 32
    tiles_out = triton.cdiv(c_out, block_o)
    tiles = volume * triton.cdiv(c_in, block_i) * tiles_out
    n_rows = table.shape[0]
    # Split the pair lists until there are ~2 programs per multiprocessor. (Splitting further, to
    # <= 512 pairs per program, measured 2x slower at C >= 128 on an H200: the splits' atomics on
    # one tile serialise. See kernels/README.md.)
    splits = max(1, min(triton.cdiv(_SM_TARGET, tiles), n_rows // (4 * block_p)))
    deterministic = settings.deterministic()
    if deterministic:  # partial sums kept apart: bound their memory
        splits = max(1, min(splits, _SPLIT_BUFFER_BYTES // (4 * volume * c_in * c_out)))
    atomic = not deterministic and splits > 1
    if atomic:
        out = torch.zeros(volume, c_in, c_out, dtype=torch.float32, device=x.device)
    else:
        out = torch.empty(splits, volume, c_in, c_out, dtype=torch.float32, device=x.device)
    if n_rows:
        _WEIGHT_GRAD(
            (volume, splits, tiles),
            x, dy, table, rows, counts, out,
            n_rows, c_in, c_out, splits, tiles_out,
            K=volume, ROWS_ARE_OUT=rows_are_out, ATOMIC=atomic, PRECISION=settings.dot_precision(x.dtype),
            BLOCK_I=block_i, BLOCK_O=block_o, BLOCK_P=block_p, num_warps=4,
        )
    else:
        out.zero_()
    if atomic:
        return out
    # Fixed-order sum over the splits: bit-identical across runs.
    return out[0] if splits == 1 else out.sum(dim=0)


class TritonConvFunction(torch.autograd.Function):
    """Sparse convolution `[n_in, Cin] -> [n_out, Cout]` with weight `[K, Cin, Cout]` on a GPUKernelMap."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: GPUKernelMap) -> torch.Tensor:
        device = feats.device.type
        if torch.is_autocast_enabled(device):
            # As the reference: compute in the autocast dtype; the engine casts gradients back.
            dtype = torch.get_autocast_dtype(device)
            feats, weight = feats.to(dtype), weight.to(dtype)
        if feats.dtype != weight.dtype:
            raise TypeError(f"sparse conv: features are {feats.dtype} but the weight is {weight.dtype}")
        feats = feats.contiguous()
        ctx.kmap = kmap
        ctx.save_for_backward(feats, weight)
        return implicit_gemm(feats, weight, kmap.output_side(), transpose_weight=False)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        kmap: GPUKernelMap = ctx.kmap
        grad_out = grad_out.to(feats.dtype).contiguous()
        grad_feats = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_feats = implicit_gemm(grad_out, weight, kmap.input_side(), transpose_weight=True)
        if ctx.needs_input_grad[1]:
            grad_weight = weight_grad(feats, grad_out, kmap, weight.shape[0]).to(weight.dtype)
        return grad_feats, grad_weight, None
