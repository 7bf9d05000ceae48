"""Row x channel tiles of `[N, C]` features, for the Triton kernels that work on them elementwise
(BatchNorm, the residual sum): masks per row and per channel, with the channel count specialised,
so that loads along a row stay vectorised (a flat mask over a size Triton does not specialise
would stop vector loads)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_R = 64
BLOCK_C = 64


@triton.jit
def tile(n_rows, c, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's rows and channels: (rows, cols, row_ok, col_ok, ok [R, C], offsets [R, C])."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok = rows < n_rows
    col_ok = cols < c
    ok = row_ok[:, None] & col_ok[None, :]
    return rows, cols, row_ok, col_ok, ok, rows[:, None].to(tl.int64) * c + cols[None, :]


def grid(x: torch.Tensor) -> tuple[int, int]:
    """The launch grid of `tile` over `x` [N, C]."""
    return triton.cdiv(x.shape[0], BLOCK_R), triton.cdiv(x.shape[1], BLOCK_C)
