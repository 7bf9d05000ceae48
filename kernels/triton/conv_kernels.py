"""Triton kernels of sparse convolution: implicit GEMM (forward and input gradient), weight gradient.

Implicit GEMM, output-stationary: a program owns BLOCK_M output rows x BLOCK_N output channels.
With a neighbour bitmask per row the rows come in mask order (the map side stores its table
permuted into that order and transposed, `[K, n]`, so a tile's column is one contiguous load), and
the OR of the tile's masks says which offsets any of its rows has: the other offsets cost no
memory access at all. For each present offset the tile gathers the neighbours' feature rows
straight from global memory (fused gather: no gathered copy) and accumulates `A_k @ W_k` in fp32.
Each output element is written once by one program, offsets summed in a fixed order:
deterministic without atomics. At inference an eval-mode BatchNorm (and ReLU) can be applied to
the fp32 sums before the store (NORMALISE).

Weight gradient, stream-K: dW[k] = sum over the pairs (i, o) of offset k of x[i]^T dy[o]. The
pairs of all offsets, concatenated offset after offset, are cut into `n_programs` equal segments;
a program owns (segment, Cin x Cout tile), walks its pairs and flushes one partial sum per offset
it touches. An offset wholly inside one segment is stored straight into dW; the (at most two)
offsets a segment shares with its neighbours go to a partial buffer that a second kernel sums in
a fixed order (several segments' partials per step). Balanced whatever the offsets' sizes (a
submanifold centre offset holds every row), no atomics, deterministic.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _bit_or(a, b):
    return a | b


@triton.jit
def _gather_dot(acc, index, x_ptr, w_ptr, c_in, stride_wi, stride_wo, cols, col_ok,
                PRECISION: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc += x[index] @ W (rows with index -1 read zeros), W [Cin, Cout] at w_ptr."""
    has = index >= 0
    src = tl.where(has, index, 0).to(tl.int64) * c_in
    for c0 in range(0, c_in, BLOCK_K):
        ck = c0 + tl.arange(0, BLOCK_K)
        ck_ok = ck < c_in
        a = tl.load(x_ptr + src[:, None] + ck[None, :], mask=has[:, None] & ck_ok[None, :], other=0.0)
        w = tl.load(w_ptr + ck[:, None] * stride_wi + cols[None, :] * stride_wo,
                    mask=ck_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(a, w, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _store_rows(acc, y_ptr, rows, cols, row_ok, col_ok, c_out, mean_ptr, var_ptr, weight_ptr, bias_ptr, eps,
                res_ptr, NORMALISE: tl.constexpr, RESIDUAL: tl.constexpr, RELU: tl.constexpr):
    """y[rows] = acc; with NORMALISE, an eval-mode BatchNorm (running statistics) first, then with
    RESIDUAL + res[rows], and with RELU max(., 0): the arithmetic of batchnorm._inference_kernel
    and of a residual block's end, on the fp32 sums."""
    out = rows[:, None] * c_out + cols[None, :]
    ok = row_ok[:, None] & col_ok[None, :]
    if NORMALISE:
        var = tl.load(var_ptr + cols, mask=col_ok, other=1.0).to(tl.float32)
        scale = tl.load(weight_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) / tl.sqrt(var + eps)
        shift = (tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
                 - tl.load(mean_ptr + cols, mask=col_ok, other=0.0).to(tl.float32) * scale)
        acc = acc * scale[None, :] + shift[None, :]
        if RESIDUAL:
            acc += tl.load(res_ptr + out, mask=ok, other=0.0).to(tl.float32)
        if RELU:
            acc = tl.maximum(acc, 0.0)
    tl.store(y_ptr + out, acc.to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["n_rows"])
def implicit_gemm_kernel(
    x_ptr, w_ptr, y_ptr, table_ptr, perm_ptr, mask_ptr,
    n_rows, c_in, c_out, stride_wk, stride_wi, stride_wo, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, eps,
    res_ptr, K: tl.constexpr, FLIP: tl.constexpr, SORTED: tl.constexpr, PRECISION: tl.constexpr,
    NORMALISE: tl.constexpr, RESIDUAL: tl.constexpr, RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """y[rows] = sum_k x[table[k, slot]] @ W[k] (table entry -1: no neighbour).

    SORTED: table is `[K, n]` in mask order, perm[slot] is the output row of a slot and mask[slot]
    its neighbour bitmask. Else table is `[n, K]` in row order (no masks: wide kernels).
    FLIP reads the table's column K-1-k for weight row k.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    slots = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = slots < n_rows
    if SORTED:
        rows = tl.load(perm_ptr + slots, mask=row_ok, other=0).to(tl.int64)
        tile_mask = tl.reduce(tl.load(mask_ptr + slots, mask=row_ok, other=0), 0, _bit_or)
    else:
        rows = slots.to(tl.int64)
        tile_mask = 0  # unused
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < c_out
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k in range(K):
        if FLIP:
            column = K - 1 - k
        else:
            column = k
        if SORTED:
            if ((tile_mask >> column) & 1) != 0:  # offsets no row of this tile has cost nothing
                index = tl.load(table_ptr + column * n_rows + slots, mask=row_ok, other=-1)
                acc = _gather_dot(acc, index, x_ptr, w_ptr + k * stride_wk, c_in, stride_wi, stride_wo,
                                  cols, col_ok, PRECISION, BLOCK_K)
        else:
            index = tl.load(table_ptr + rows * K + column, mask=row_ok, other=-1)
            if tl.max(index, axis=0) >= 0:
                acc = _gather_dot(acc, index, x_ptr, w_ptr + k * stride_wk, c_in, stride_wi, stride_wo,
                                  cols, col_ok, PRECISION, BLOCK_K)
    _store_rows(acc, y_ptr, rows, cols, row_ok, col_ok, c_out, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr,
                eps, res_ptr, NORMALISE, RESIDUAL, RELU)


@triton.jit(do_not_specialize=["n_rows"])
def implicit_gemm_compact_kernel(
    x_ptr, w_ptr, y_ptr, table_ptr, perm_ptr, mask_ptr,
    n_rows, c_in, c_out, stride_wk, stride_wi, stride_wo, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr, eps,
    res_ptr, K: tl.constexpr, K_POW2: tl.constexpr, FLIP: tl.constexpr, PRECISION: tl.constexpr,
    NORMALISE: tl.constexpr, RESIDUAL: tl.constexpr, RELU: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, STAGES: tl.constexpr,
    PRELOAD: tl.constexpr = False,
):
    """The SORTED implicit GEMM as one flat loop over (present offset, Cin chunk) that Triton can
    software-pipeline: the next step's table column and gathered rows load while this one's dot runs
    (the branchy loop above waits out both load latencies at every offset).

    The tile's present table columns are ranked once (a cumulative sum over its OR-ed bitmask);
    step j reads column number j // chunks in ascending column order.

    PRELOAD: the tile's present table columns are loaded once before the loop, as a [K_POW2,
    BLOCK_M] block in registers, and each step picks its column out of it. No load in the loop
    then feeds another load, so Triton's pipeliner can issue the gathers STAGES - 1 steps ahead
    into as many buffers (with the table read in the loop, the chain table -> gather -> dot
    splits the stages and leaves one gather in flight).
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    slots = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = slots < n_rows
    rows = tl.load(perm_ptr + slots, mask=row_ok, other=0).to(tl.int64)
    tile_mask = tl.reduce(tl.load(mask_ptr + slots, mask=row_ok, other=0), 0, _bit_or)
    columns = tl.arange(0, K_POW2)
    present = ((tile_mask >> columns) & 1) != 0
    rank = tl.cumsum(present.to(tl.int32), 0) - 1
    chunks = tl.cdiv(c_in, BLOCK_K)
    steps = tl.sum(present.to(tl.int32), 0) * chunks
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < c_out
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    if PRELOAD:
        block = tl.load(table_ptr + columns[:, None] * n_rows + slots[None, :],
                        mask=present[:, None] & row_ok[None, :], other=-1)
    for j in tl.range(0, steps, num_stages=STAGES):
        q = j // chunks
        column = tl.sum(tl.where(present & (rank == q), columns, 0), 0)
        if FLIP:
            k = K - 1 - column
        else:
            k = column
        if PRELOAD:
            index = tl.sum(tl.where((columns == column)[:, None], block, 0), 0)
        else:
            index = tl.load(table_ptr + column * n_rows + slots, mask=row_ok, other=-1)
        has = index >= 0
        ck = (j - q * chunks) * BLOCK_K + tl.arange(0, BLOCK_K)
        ck_ok = ck < c_in
        src = tl.where(has, index, 0).to(tl.int64) * c_in
        a = tl.load(x_ptr + src[:, None] + ck[None, :], mask=has[:, None] & ck_ok[None, :], other=0.0)
        w = tl.load(w_ptr + k * stride_wk + ck[:, None] * stride_wi + cols[None, :] * stride_wo,
                    mask=ck_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(a, w, acc, input_precision=PRECISION)
    _store_rows(acc, y_ptr, rows, cols, row_ok, col_ok, c_out, mean_ptr, var_ptr, bn_weight_ptr, bn_bias_ptr,
                eps, res_ptr, NORMALISE, RESIDUAL, RELU)


@triton.jit
def _segment(starts_ptr, n_programs, K: tl.constexpr, BLOCK_P: tl.constexpr):
    """Length of one segment of the concatenated pair lists (a multiple of BLOCK_P)."""
    total = tl.load(starts_ptr + K)
    return tl.cdiv(tl.cdiv(total, n_programs), BLOCK_P) * BLOCK_P, total


@triton.jit(do_not_specialize=["n_rows", "n_programs"])
def weight_grad_kernel(
    x_ptr, dy_ptr, rows_ptr, others_ptr, starts_ptr, out_ptr, part_ptr,
    n_rows, c_in, c_out, n_programs, tiles_out,
    K: tl.constexpr, K_POW2: tl.constexpr, ROWS_ARE_OUT: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_I: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_P: tl.constexpr,
):
    """Partial dW over one segment of the pair lists, for one Cin x Cout tile.

    Offset k's pairs are (rows[k, j], others[k, j]) for j < starts[k+1] - starts[k]: (output,
    input) if ROWS_ARE_OUT else (input, output). Offsets wholly inside the segment go to
    out[K, Cin, Cout]; a shared one to part[program, 0] (it holds the segment's start) or
    part[program, 1] (it runs past the segment's end).
    """
    program = tl.program_id(0)
    tile = tl.program_id(1)
    ti = tile // tiles_out
    to = tile % tiles_out
    ci = ti * BLOCK_I + tl.arange(0, BLOCK_I)
    co = to * BLOCK_O + tl.arange(0, BLOCK_O)
    ci_ok = ci < c_in
    co_ok = co < c_out
    tile_mask = ci_ok[:, None] & co_ok[None, :]
    tile_offset = ci[:, None] * c_out + co[None, :]
    segment, total = _segment(starts_ptr, n_programs, K, BLOCK_P)
    seg_start = program * segment
    seg_end = tl.minimum(seg_start + segment, total)
    # The offset holding seg_start: the last k with starts[k] <= seg_start.
    ks = tl.arange(0, K_POW2)
    starts = tl.load(starts_ptr + ks, mask=ks < K, other=2147483647)
    k = tl.sum((starts <= seg_start).to(tl.int32), axis=0) - 1
    f = seg_start
    while f < seg_end:
        k_start = tl.load(starts_ptr + k)
        k_end = tl.load(starts_ptr + k + 1)
        stop = tl.minimum(k_end, seg_end)
        base = k.to(tl.int64) * n_rows - k_start
        acc = tl.zeros([BLOCK_I, BLOCK_O], dtype=tl.float32)
        for q in range(f, stop, BLOCK_P):
            p = q + tl.arange(0, BLOCK_P)
            p_ok = p < stop
            r = tl.load(rows_ptr + base + p, mask=p_ok, other=0).to(tl.int64)
            other = tl.load(others_ptr + base + p, mask=p_ok, other=0).to(tl.int64)
            if ROWS_ARE_OUT:
                x_rows = other
                y_rows = r
            else:
                x_rows = r
                y_rows = other
            xa = tl.load(x_ptr + x_rows[:, None] * c_in + ci[None, :], mask=p_ok[:, None] & ci_ok[None, :],
                         other=0.0)
            yb = tl.load(dy_ptr + y_rows[:, None] * c_out + co[None, :], mask=p_ok[:, None] & co_ok[None, :],
                         other=0.0)
            acc = tl.dot(tl.trans(xa), yb, acc, input_precision=PRECISION)
        if (k_start >= seg_start) & (k_end <= seg_end):
            tl.store(out_ptr + k.to(tl.int64) * c_in * c_out + tile_offset, acc, mask=tile_mask)
        else:
            slot = tl.where(k_start <= seg_start, 0, 1)
            tl.store(part_ptr + (program * 2 + slot).to(tl.int64) * c_in * c_out + tile_offset, acc,
                     mask=tile_mask)
        f = stop
        k += 1


@triton.jit(do_not_specialize=["n_programs"])
def weight_grad_fixup_kernel(
    starts_ptr, out_ptr, part_ptr, n_programs, c_in, c_out, tiles_out,
    K: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_P: tl.constexpr,
    ROWS: tl.constexpr, CHUNK: tl.constexpr,
):
    """dW[k] of the offsets no segment owns: the sum of the partials of the segments that share k,
    in a fixed order, or zeros for an offset without pairs (`out` is not zeroed beforehand).

    A program owns ROWS rows of one Cin x Cout tile and reads CHUNK partials per step (a large
    offset, such as a submanifold's centre, spans dozens of segments: one load in flight at a time
    made this kernel nearly as slow as the weight gradient itself).
    """
    k = tl.program_id(0)
    part = tl.program_id(1)
    per_tile = BLOCK_I // ROWS
    tile = part // per_tile
    ci = (tile // tiles_out) * BLOCK_I + (part % per_tile) * ROWS + tl.arange(0, ROWS)
    co = (tile % tiles_out) * BLOCK_O + tl.arange(0, BLOCK_O)
    tile_mask = (ci < c_in)[:, None] & (co < c_out)[None, :]
    tile_offset = ci[:, None] * c_out + co[None, :]
    segment, total = _segment(starts_ptr, n_programs, K, BLOCK_P)
    k_start = tl.load(starts_ptr + k)
    k_end = tl.load(starts_ptr + k + 1)
    first = k_start // segment
    last = (k_end - 1) // segment
    if (k_end == k_start) | (last > first):
        acc = tl.zeros([ROWS, BLOCK_O], dtype=tl.float32)
        if k_end > k_start:
            for p0 in range(first, last + 1, CHUNK):
                programs = p0 + tl.arange(0, CHUNK)
                slot = tl.where(k_start <= programs * segment, 0, 1)
                base = (programs * 2 + slot).to(tl.int64) * c_in * c_out
                mask = (programs <= last)[:, None, None] & tile_mask[None, :, :]
                partials = part_ptr + base[:, None, None] + tile_offset[None, :, :]
                acc += tl.sum(tl.load(partials, mask=mask, other=0.0), axis=0)
        tl.store(out_ptr + k.to(tl.int64) * c_in * c_out + tile_offset, acc, mask=tile_mask)
