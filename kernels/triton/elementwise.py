"""A residual sum and its ReLU in one pass (`kernels.nn.add_relu` on CUDA with the Triton backend)."""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kernels.triton.launch import Launcher
from kernels.triton.tiles import BLOCK_C, BLOCK_R, grid, tile


@triton.jit(do_not_specialize=["n_rows"])
def _add_relu_kernel(a_ptr, b_ptr, y_ptr, n_rows, c, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = max(a + b, 0), the sum rounded once to y's dtype as torch's `a + b` rounds it."""
    rows, cols, row_ok, col_ok, ok, offsets = tile(n_rows, c, BLOCK_R, BLOCK_C)
    total = tl.load(a_ptr + offsets, mask=ok, other=0.0).to(tl.float32) + tl.load(
        b_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + offsets, tl.maximum(total, 0.0).to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["n_rows"])
def _relu_grad_kernel(dy_ptr, y_ptr, dx_ptr, n_rows, c, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx = dy where y > 0, else 0 (torch's ReLU backward)."""
    rows, cols, row_ok, col_ok, ok, offsets = tile(n_rows, c, BLOCK_R, BLOCK_C)
    dy = tl.load(dy_ptr + offsets, mask=ok, other=0.0)
    y = tl.load(y_ptr + offsets, mask=ok, other=0.0)
    tl.store(dx_ptr + offsets, tl.where(y > 0, dy, 0.0).to(dx_ptr.dtype.element_ty), mask=ok)


_ADD_RELU = Launcher(_add_relu_kernel)
_RELU_GRAD = Launcher(_relu_grad_kernel)


class AddReLUFunction(torch.autograd.Function):
    """relu(a + b) for two [N, C] tensors of one shape and dtype."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.contiguous(), b.contiguous()
        y = torch.empty_like(a)
        if y.numel():
            _ADD_RELU(grid(y), a, b, y, y.shape[0], y.shape[1], BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (y,) = ctx.saved_tensors
        dx = relu_grad(dy, y)
        return dx, dx


def relu_grad(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient through y = relu(.) given y's gradient `dy` (both [N, C])."""
    dy = dy.contiguous()
    dx = torch.empty_like(y)
    if y.numel():
        _RELU_GRAD(grid(y), dy, y, dx, y.shape[0], y.shape[1], BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C)
    return dx
