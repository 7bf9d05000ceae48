"""Triton kernels of sparse convolution: implicit GEMM (forward and input gradient), weight gradient.

Implicit GEMM, output-stationary: a program owns BLOCK_M output rows (taken in neighbour-mask
order, so its rows need mostly the same offsets) x BLOCK_N output channels. For each offset it
skips the whole step when none of its rows has that neighbour; otherwise it gathers the
neighbours' feature rows straight from global memory (fused gather, no gathered copy) and
accumulates `A_k @ W_k` in fp32. Each output element is written once by one program and the
offsets are summed in a fixed order: deterministic without atomics.

Weight gradient: dW[k] = sum over the pairs (i, o) of offset k of x[i]^T dy[o]. A program owns
(offset k, one split of k's pair list, one Cin x Cout tile); the splits' fp32 partial sums are
either added with atomics (fast mode) or written apart and summed in a fixed order (deterministic
mode).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit(do_not_specialize=["n_rows"])
def implicit_gemm_kernel(
    x_ptr, w_ptr, y_ptr, table_ptr, perm_ptr,
    n_rows, c_in, c_out, stride_wk, stride_wi, stride_wo,
    K: tl.constexpr, FLIP: tl.constexpr, HAS_PERM: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """y[r] = sum_k x[table[r, k]] @ W[k] (table -1: no neighbour); FLIP reads table[r, K-1-k]."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    slots = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = slots < n_rows
    if HAS_PERM:
        rows = tl.load(perm_ptr + slots, mask=row_ok, other=0).to(tl.int64)
    else:
        rows = slots.to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < c_out
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k in range(K):
        if FLIP:
            column = K - 1 - k
        else:
            column = k
        index = tl.load(table_ptr + rows * K + column, mask=row_ok, other=-1)
        if tl.max(index, axis=0) >= 0:  # skip offsets no row of this tile has
            has = index >= 0
            src = tl.where(has, index, 0).to(tl.int64) * c_in
            for c0 in range(0, c_in, BLOCK_K):
                ck = c0 + tl.arange(0, BLOCK_K)
                ck_ok = ck < c_in
                a = tl.load(x_ptr + src[:, None] + ck[None, :], mask=has[:, None] & ck_ok[None, :], other=0.0)
                w = tl.load(
                    w_ptr + k * stride_wk + ck[:, None] * stride_wi + cols[None, :] * stride_wo,
                    mask=ck_ok[:, None] & col_ok[None, :], other=0.0,
                )
                acc = tl.dot(a, w, acc, input_precision=PRECISION)
    out = y_ptr + rows[:, None] * c_out + cols[None, :]
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@triton.jit(do_not_specialize=["n_rows", "n_splits"])
def weight_grad_kernel(
    x_ptr, dy_ptr, table_ptr, lists_ptr, counts_ptr, out_ptr,
    n_rows, c_in, c_out, n_splits, tiles_out,
    K: tl.constexpr, ROWS_ARE_OUT: tl.constexpr, ATOMIC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_I: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """Partial dW[k][tile] over one split of offset k's rows.

    lists[k, :counts[k]] are the rows r of `table` with table[r, k] >= 0; a pair is
    (r, table[r, k]) = (output, input) if ROWS_ARE_OUT else (input, output).
    ATOMIC: add into out[K, Cin, Cout]; else write out[split, K, Cin, Cout].
    """
    k = tl.program_id(0)
    split = tl.program_id(1)
    tile = tl.program_id(2)
    ti = tile // tiles_out
    to = tile % tiles_out
    count = tl.load(counts_ptr + k)
    chunk = tl.cdiv(tl.cdiv(count, n_splits), BLOCK_P) * BLOCK_P
    start = split * chunk
    end = tl.minimum(start + chunk, count)
    ci = ti * BLOCK_I + tl.arange(0, BLOCK_I)
    co = to * BLOCK_O + tl.arange(0, BLOCK_O)
    ci_ok = ci < c_in
    co_ok = co < c_out
    acc = tl.zeros([BLOCK_I, BLOCK_O], dtype=tl.float32)
    for p0 in range(start, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        p_ok = p < end
        r = tl.load(lists_ptr + k.to(tl.int64) * n_rows + p, mask=p_ok, other=0).to(tl.int64)
        other = tl.load(table_ptr + r * K + k, mask=p_ok, other=0).to(tl.int64)
        if ROWS_ARE_OUT:
            x_rows = other
            y_rows = r
        else:
            x_rows = r
            y_rows = other
        x_mask = p_ok[:, None] & ci_ok[None, :]
        y_mask = p_ok[:, None] & co_ok[None, :]
        xa = tl.load(x_ptr + x_rows[:, None] * c_in + ci[None, :], mask=x_mask, other=0.0)
        yb = tl.load(dy_ptr + y_rows[:, None] * c_out + co[None, :], mask=y_mask, other=0.0)
        acc = tl.dot(tl.trans(xa), yb, acc, input_precision=PRECISION)
    tile_mask = ci_ok[:, None] & co_ok[None, :]
    if ATOMIC:
        dst = out_ptr + (k * c_in + ci[:, None]) * c_out + co[None, :]
        tl.atomic_add(dst, acc, mask=tile_mask & (end > start))
    else:
        dst = out_ptr + ((split * K + k) * c_in + ci[:, None]) * c_out + co[None, :]
        tl.store(dst, acc, mask=tile_mask)
