"""BatchNorm over the real rows of a padded tensor (`kernels.graphs`), in four Triton kernels.

The same arithmetic as `kernels.nn.modules._masked_batch_norm` (statistics over rows whose mask is
1, padding rows out as zeros) without its dozen full passes over the features, forward and
backward, which dominate a graphed training step on dense scans. Statistics: per block of rows,
sums of `x - shift` and its square (shift = the running mean, so that the one-pass variance does
not cancel), summed over blocks in a fixed order: deterministic, no atomics.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kernels.triton.launch import Launcher

_BLOCK_R = 64
_BLOCK_C = 64


@triton.jit
def _tile(n_rows, c, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's rows and channels: (cols, row_ok, col_ok, ok [R, C], element offsets [R, C])."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok = rows < n_rows
    col_ok = cols < c
    ok = row_ok[:, None] & col_ok[None, :]
    return rows, cols, row_ok, col_ok, ok, rows[:, None].to(tl.int64) * c + cols[None, :]


@triton.jit
def _channel(ptr, cols, col_ok):
    """A per-channel vector as a [1, C] row."""
    return tl.load(ptr + cols, mask=col_ok, other=0.0)[None, :]


@triton.jit
def _store_sums(partial_ptr, a, b, c, cols, col_ok):
    """partial[block, 0] = column sums of a, partial[block, 1] = those of b."""
    base = partial_ptr + tl.program_id(0).to(tl.int64) * 2 * c + cols
    tl.store(base, tl.sum(a, axis=0), mask=col_ok)
    tl.store(base + c, tl.sum(b, axis=0), mask=col_ok)


@triton.jit(do_not_specialize=["n_rows"])
def _stats_kernel(x_ptr, mask_ptr, shift_ptr, partial_ptr, n_rows, c,
                  BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Sums of m (x - shift) and m (x - shift)^2 over this block of rows."""
    rows, cols, row_ok, col_ok, ok, offsets = _tile(n_rows, c, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    d = (x - _channel(shift_ptr, cols, col_ok)) * m
    _store_sums(partial_ptr, d, d * d, c, cols, col_ok)


@triton.jit(do_not_specialize=["n_rows"])
def _apply_kernel(x_ptr, mask_ptr, mean_ptr, scale_ptr, bias_ptr, y_ptr, n_rows, c,
                  BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = ((x - mean) * scale + bias) * m, scale = weight / std."""
    rows, cols, row_ok, col_ok, ok, offsets = _tile(n_rows, c, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    centred = x - _channel(mean_ptr, cols, col_ok)
    y = (centred * _channel(scale_ptr, cols, col_ok) + _channel(bias_ptr, cols, col_ok)) * m
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit
def _masked_grad(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr, n_rows, c,
                 BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """(m dy, xhat, m, cols, col_ok, ok, offsets) of this program's tile."""
    rows, cols, row_ok, col_ok, ok, offsets = _tile(n_rows, c, BLOCK_R, BLOCK_C)
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    dy = tl.load(dy_ptr + offsets, mask=ok, other=0.0).to(tl.float32) * m
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    xhat = (x - _channel(mean_ptr, cols, col_ok)) * _channel(invstd_ptr, cols, col_ok)
    return dy, xhat, m, cols, col_ok, ok, offsets


@triton.jit(do_not_specialize=["n_rows"])
def _grad_stats_kernel(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr, partial_ptr, n_rows, c,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Sums of m dy and m dy xhat over this block of rows."""
    dy, xhat, m, cols, col_ok, ok, offsets = _masked_grad(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr,
                                                          n_rows, c, BLOCK_R, BLOCK_C)
    _store_sums(partial_ptr, dy, dy * xhat, c, cols, col_ok)


@triton.jit(do_not_specialize=["n_rows"])
def _grad_apply_kernel(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr, scale_ptr, mean_dy_ptr, mean_dyx_ptr,
                       dx_ptr, n_rows, c, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx = m * scale * (m dy - mean(m dy) - xhat * mean(m dy xhat))."""
    dy, xhat, m, cols, col_ok, ok, offsets = _masked_grad(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr,
                                                          n_rows, c, BLOCK_R, BLOCK_C)
    mean_dy = _channel(mean_dy_ptr, cols, col_ok)
    mean_dyx = _channel(mean_dyx_ptr, cols, col_ok)
    dx = m * _channel(scale_ptr, cols, col_ok) * (dy - mean_dy - xhat * mean_dyx)
    tl.store(dx_ptr + offsets, dx.to(dx_ptr.dtype.element_ty), mask=ok)


_STATS = Launcher(_stats_kernel)
_APPLY = Launcher(_apply_kernel)
_GRAD_STATS = Launcher(_grad_stats_kernel)
_GRAD_APPLY = Launcher(_grad_apply_kernel)


def _grid(x: torch.Tensor) -> tuple[int, int]:
    return triton.cdiv(x.shape[0], _BLOCK_R), triton.cdiv(x.shape[1], _BLOCK_C)


def _block_sums(kernel: Launcher, x: torch.Tensor, *args: Any) -> torch.Tensor:
    """[2, C]: a stats kernel's per-block sums, added in block order."""
    grid = _grid(x)
    partial = torch.empty(grid[0], 2, x.shape[1], dtype=torch.float32, device=x.device)
    kernel(grid, *args, partial, x.shape[0], x.shape[1], BLOCK_R=_BLOCK_R, BLOCK_C=_BLOCK_C)
    return partial.sum(dim=0)


class MaskedBatchNormFunction(torch.autograd.Function):
    """(x [N, C], mask [N, 1], count, weight [C], bias [C], shift [C], eps) -> (y, mean, biased var)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor, shift: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
        x = x.contiguous()
        mask = mask.reshape(-1).float().contiguous()
        shift = shift.float().contiguous()
        n = count.float()
        sums = _block_sums(_STATS, x, x, mask, shift)
        shifted_mean = sums[0] / n
        mean = shift + shifted_mean
        var = (sums[1] / n - shifted_mean * shifted_mean).clamp(min=0.0)
        invstd = torch.rsqrt(var + eps)
        scale = (weight.float() * invstd).contiguous()
        y = torch.empty_like(x)
        _APPLY(_grid(x), x, mask, mean, scale, bias.float().contiguous(), y, x.shape[0], x.shape[1],
               BLOCK_R=_BLOCK_R, BLOCK_C=_BLOCK_C)
        ctx.save_for_backward(x, mask, n, mean, invstd, scale)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        x, mask, n, mean, invstd, scale = ctx.saved_tensors
        dy = dy.contiguous()
        sums = _block_sums(_GRAD_STATS, x, dy, x, mask, mean, invstd)
        dx = torch.empty_like(x)
        mean_dy, mean_dyx = (sums[0] / n).contiguous(), (sums[1] / n).contiguous()
        _GRAD_APPLY(_grid(x), dy, x, mask, mean, invstd, scale, mean_dy, mean_dyx, dx, x.shape[0], x.shape[1],
                    BLOCK_R=_BLOCK_R, BLOCK_C=_BLOCK_C)
        dtype = ctx.weight_dtype
        return dx, None, None, sums[1].to(dtype), sums[0].to(dtype), None, None
