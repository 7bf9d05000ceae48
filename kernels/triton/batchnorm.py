"""BatchNorm over the real rows of a padded tensor (`kernels.graphs`), in four Triton kernels.

The same arithmetic as `kernels.nn.modules._masked_batch_norm` (statistics over rows whose mask is
1, padding rows out as zeros) without its dozens of passes and tiny launches, which dominate the
non-convolution time of a graphed training step. Forward: column sums over runs of rows that also
turn them into mean, scale and the running-statistics update, then the normalisation; backward the
same two steps. Sums: per program, of `x - shift` and its square over a fixed run of rows (shift =
the running mean, so that the one-pass variance does not cancel). A program keeps one partial sum
per row of its tile and adds them up once at the end (a cross-warp sum at every step made these
kernels run at a quarter of the memory bandwidth), stores them, and counts itself done on a
per-channel-tile counter; the last program of a channel tile adds every program's partials in
program order and finalises: deterministic, and no separate finalising launch (it cost ~4 us of
a graphed step per BatchNorm and direction).

`batch_norm_inference`: the eval-mode normalisation (running statistics) as one kernel.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from kernels.triton.elementwise import relu_grad
from kernels.triton.launch import Launcher, sm_count
from kernels.triton.tiles import BLOCK_C, BLOCK_R, grid, tile

_BLOCK_B = 128  # partials added per step when finalising (several loads in flight)
# The sums kernels' tile (rows x channels per step), warps and programs per multiprocessor: the
# best single choice over MinkUNet's shapes, forward and backward together, on an H200
# (bench/results/batchnorm_tuning.json: 2.0-3.1 TB/s against 0.9-1.9 for 128 x 64 tiles).
SUMS_CONFIG = {"BLOCK_R": 32, "BLOCK_C": 32, "num_warps": 8, "programs_per_sm": 4}


@triton.jit
def _vector(ptr, cols, col_ok):
    """A per-channel vector, in fp32."""
    return tl.load(ptr + cols, mask=col_ok, other=0.0).to(tl.float32)


@triton.jit
def _run(rows_per_program, n_rows):
    """(start, end) of this program's run of rows."""
    start = tl.program_id(0) * rows_per_program
    return start, tl.minimum(start + rows_per_program, n_rows)


@triton.jit
def _run_tile(r0, end, cols, col_ok, c, mask_ptr, BLOCK_R: tl.constexpr):
    """(m [R, 1], ok, offsets) of the rows r0.. of a run ending at `end`."""
    rows = r0 + tl.arange(0, BLOCK_R)
    row_ok = rows < end
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    return m, row_ok[:, None] & col_ok[None, :], rows[:, None].to(tl.int64) * c + cols[None, :]


@triton.jit
def _store_sums(partial_ptr, first, second, c, cols, col_ok):
    """partial[program, 0] = the column sums `first`, partial[program, 1] = `second`."""
    base = partial_ptr + tl.program_id(0).to(tl.int64) * 2 * c + cols
    tl.store(base, first, mask=col_ok)
    tl.store(base + c, second, mask=col_ok)


@triton.jit
def _last_program(counter_ptr):
    """True in the program that finishes its channel tile's partial sums last: every other
    program's stores are visible to it. It re-arms the tile's counter for the next launch."""
    tl.debug_barrier()  # all of this program's partials stored before it counts itself done
    done = tl.atomic_add(counter_ptr + tl.program_id(1), 1, sem="acq_rel")
    tl.debug_barrier()
    last = done == tl.num_programs(0) - 1
    if last:
        tl.store(counter_ptr + tl.program_id(1), 0)
    return last


@triton.jit(do_not_specialize=["n_rows", "rows_per_program"])
def _stats_kernel(x_ptr, mask_ptr, shift_ptr, partial_ptr, counter_ptr, n_rows, c, rows_per_program,
                  count_ptr, weight_ptr, stats_ptr, running_mean_ptr, running_var_ptr, tracked_ptr, eps,
                  momentum, UPDATE: tl.constexpr, TRACKED: tl.constexpr, BLOCK_R: tl.constexpr,
                  BLOCK_C: tl.constexpr, BLOCK_B: tl.constexpr):
    """Sums of m (x - shift) and m (x - shift)^2 over this program's rows; the last program of a
    channel tile finalises it (`_finalise_stats`)."""
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < c
    shift = _vector(shift_ptr, cols, col_ok)[None, :]
    start, end = _run(rows_per_program, n_rows)
    first = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    second = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    for r0 in range(start, end, BLOCK_R):
        m, ok, offsets = _run_tile(r0, end, cols, col_ok, c, mask_ptr, BLOCK_R)
        d = (tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32) - shift) * m
        first += d
        second += d * d
    _store_sums(partial_ptr, tl.sum(first, axis=0), tl.sum(second, axis=0), c, cols, col_ok)
    if _last_program(counter_ptr):
        _finalise_stats(partial_ptr, count_ptr, shift_ptr, weight_ptr, stats_ptr, running_mean_ptr,
                        running_var_ptr, tracked_ptr, c, eps, momentum, cols, col_ok, UPDATE, TRACKED,
                        BLOCK_B, BLOCK_C)


@triton.jit
def _grad_terms(dy_ptr, x_ptr, offsets, ok, m, mean, invstd, weight, bias, RELU: tl.constexpr):
    """(m dy, xhat) of a tile; with RELU, dy is the ReLU's input gradient (0 where the
    normalised value weight * xhat + bias is not positive)."""
    dy = tl.load(dy_ptr + offsets, mask=ok, other=0.0).to(tl.float32) * m
    xhat = (tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32) - mean) * invstd
    if RELU:
        dy = tl.where(xhat * weight + bias > 0, dy, 0.0)
    return dy, xhat


@triton.jit(do_not_specialize=["n_rows", "rows_per_program"])
def _grad_stats_kernel(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, partial_ptr,
                       counter_ptr, n_rows, c, rows_per_program, count_ptr, means_ptr, grad_weight_ptr,
                       grad_bias_ptr, RELU: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
                       BLOCK_B: tl.constexpr):
    """Sums of m dy and m dy xhat over this program's rows; the last program of a channel tile
    finalises it (`_finalise_grad`)."""
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < c
    mean = _vector(mean_ptr, cols, col_ok)[None, :]
    invstd = _vector(invstd_ptr, cols, col_ok)[None, :]
    weight = _vector(weight_ptr, cols, col_ok)[None, :]
    bias = _vector(bias_ptr, cols, col_ok)[None, :]
    start, end = _run(rows_per_program, n_rows)
    first = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    second = tl.zeros([BLOCK_R, BLOCK_C], dtype=tl.float32)
    for r0 in range(start, end, BLOCK_R):
        m, ok, offsets = _run_tile(r0, end, cols, col_ok, c, mask_ptr, BLOCK_R)
        dy, xhat = _grad_terms(dy_ptr, x_ptr, offsets, ok, m, mean, invstd, weight, bias, RELU)
        first += dy
        second += dy * xhat
    _store_sums(partial_ptr, tl.sum(first, axis=0), tl.sum(second, axis=0), c, cols, col_ok)
    if _last_program(counter_ptr):
        _finalise_grad(partial_ptr, count_ptr, means_ptr, grad_weight_ptr, grad_bias_ptr, c, cols, col_ok,
                       BLOCK_B, BLOCK_C)


@triton.jit
def _added_partials(partial_ptr, c, cols, col_ok, BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    """The two column sums over every program's partials, added in program order (read from L2,
    where the other programs' stores are)."""
    n_partials = tl.num_programs(0)
    first = tl.zeros([BLOCK_B, BLOCK_C], dtype=tl.float32)
    second = tl.zeros([BLOCK_B, BLOCK_C], dtype=tl.float32)
    for b0 in range(0, n_partials, BLOCK_B):
        b = b0 + tl.arange(0, BLOCK_B)
        ok = (b < n_partials)[:, None] & col_ok[None, :]
        base = partial_ptr + b[:, None].to(tl.int64) * 2 * c + cols[None, :]
        first += tl.load(base, mask=ok, other=0.0, cache_modifier=".cg")
        second += tl.load(base + c, mask=ok, other=0.0, cache_modifier=".cg")
    return tl.sum(first, axis=0), tl.sum(second, axis=0)


@triton.jit
def _finalise_stats(partial_ptr, count_ptr, shift_ptr, weight_ptr, stats_ptr, running_mean_ptr,
                    running_var_ptr, tracked_ptr, c, eps, momentum, cols, col_ok, UPDATE: tl.constexpr,
                    TRACKED: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    """stats [4, C] = mean, biased variance, 1/std and weight/std of each channel; with UPDATE, the
    running statistics as nn.BatchNorm1d moves them (unbiased variance) and num_batches_tracked + 1."""
    first, second = _added_partials(partial_ptr, c, cols, col_ok, BLOCK_B, BLOCK_C)
    n = tl.load(count_ptr).to(tl.float32)
    shifted_mean = first / n
    mean = _vector(shift_ptr, cols, col_ok) + shifted_mean
    var = tl.maximum(second / n - shifted_mean * shifted_mean, 0.0)
    invstd = 1.0 / tl.sqrt(var + eps)
    tl.store(stats_ptr + cols, mean, mask=col_ok)
    tl.store(stats_ptr + c + cols, var, mask=col_ok)
    tl.store(stats_ptr + 2 * c + cols, invstd, mask=col_ok)
    tl.store(stats_ptr + 3 * c + cols, _vector(weight_ptr, cols, col_ok) * invstd, mask=col_ok)
    if UPDATE:  # shift_ptr may be running_mean itself: every program has read it before this one ends
        unbiased = var * (n / tl.maximum(n - 1.0, 1.0))
        old_mean = _vector(running_mean_ptr, cols, col_ok)
        old_var = _vector(running_var_ptr, cols, col_ok)
        tl.store(running_mean_ptr + cols, (momentum * mean + (1.0 - momentum) * old_mean)
                 .to(running_mean_ptr.dtype.element_ty), mask=col_ok)
        tl.store(running_var_ptr + cols, (momentum * unbiased + (1.0 - momentum) * old_var)
                 .to(running_var_ptr.dtype.element_ty), mask=col_ok)
        if TRACKED:
            if tl.program_id(1) == 0:
                tl.store(tracked_ptr, tl.load(tracked_ptr) + 1)


@triton.jit
def _finalise_grad(partial_ptr, count_ptr, means_ptr, grad_weight_ptr, grad_bias_ptr, c, cols, col_ok,
                   BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr):
    """means [2, C] = means of m dy and m dy xhat; their sums are the bias's and the weight's
    gradients."""
    sum_dy, sum_dyx = _added_partials(partial_ptr, c, cols, col_ok, BLOCK_B, BLOCK_C)
    n = tl.load(count_ptr).to(tl.float32)
    tl.store(means_ptr + cols, sum_dy / n, mask=col_ok)
    tl.store(means_ptr + c + cols, sum_dyx / n, mask=col_ok)
    tl.store(grad_weight_ptr + cols, sum_dyx.to(grad_weight_ptr.dtype.element_ty), mask=col_ok)
    tl.store(grad_bias_ptr + cols, sum_dy.to(grad_bias_ptr.dtype.element_ty), mask=col_ok)


@triton.jit(do_not_specialize=["n_rows"])
def _apply_kernel(x_ptr, mask_ptr, mean_ptr, scale_ptr, bias_ptr, res_ptr, y_ptr, n_rows, c,
                  RESIDUAL: tl.constexpr, RELU: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = ((x - mean) * scale + bias) * m, scale = weight / std; with RESIDUAL, + res before the
    mask (a residual block's end); then max(y, 0) with RELU."""
    rows, cols, row_ok, col_ok, ok, offsets = tile(n_rows, c, BLOCK_R, BLOCK_C)
    x = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    centred = x - _vector(mean_ptr, cols, col_ok)[None, :]
    y = centred * _vector(scale_ptr, cols, col_ok)[None, :] + _vector(bias_ptr, cols, col_ok)[None, :]
    if RESIDUAL:
        y += tl.load(res_ptr + offsets, mask=ok, other=0.0).to(tl.float32)
    y *= m
    if RELU:
        y = tl.maximum(y, 0.0)
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["n_rows"])
def _grad_apply_kernel(dy_ptr, x_ptr, mask_ptr, mean_ptr, invstd_ptr, weight_ptr, bias_ptr, scale_ptr,
                       mean_dy_ptr, mean_dyx_ptr, dx_ptr, n_rows, c, RELU: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx = m * scale * (m dy - mean(m dy) - xhat * mean(m dy xhat))."""
    rows, cols, row_ok, col_ok, ok, offsets = tile(n_rows, c, BLOCK_R, BLOCK_C)
    m = tl.load(mask_ptr + rows, mask=row_ok, other=0.0)[:, None]
    mean = _vector(mean_ptr, cols, col_ok)[None, :]
    invstd = _vector(invstd_ptr, cols, col_ok)[None, :]
    weight = _vector(weight_ptr, cols, col_ok)[None, :]
    bias = _vector(bias_ptr, cols, col_ok)[None, :]
    dy, xhat = _grad_terms(dy_ptr, x_ptr, offsets, ok, m, mean, invstd, weight, bias, RELU)
    mean_dy = _vector(mean_dy_ptr, cols, col_ok)[None, :]
    mean_dyx = _vector(mean_dyx_ptr, cols, col_ok)[None, :]
    dx = m * _vector(scale_ptr, cols, col_ok)[None, :] * (dy - mean_dy - xhat * mean_dyx)
    tl.store(dx_ptr + offsets, dx.to(dx_ptr.dtype.element_ty), mask=ok)


@triton.jit(do_not_specialize=["n_rows"])
def _inference_kernel(x_ptr, running_mean_ptr, running_var_ptr, weight_ptr, bias_ptr, y_ptr, n_rows, c, eps,
                      RELU: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias (then max(y, 0) with RELU)."""
    rows, cols, row_ok, col_ok, ok, offsets = tile(n_rows, c, BLOCK_R, BLOCK_C)
    scale = _vector(weight_ptr, cols, col_ok) / tl.sqrt(_vector(running_var_ptr, cols, col_ok) + eps)
    shift = _vector(bias_ptr, cols, col_ok) - _vector(running_mean_ptr, cols, col_ok) * scale
    y = tl.load(x_ptr + offsets, mask=ok, other=0.0).to(tl.float32) * scale[None, :] + shift[None, :]
    if RELU:
        y = tl.maximum(y, 0.0)
    tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=ok)


_STATS = Launcher(_stats_kernel)
_GRAD_STATS = Launcher(_grad_stats_kernel)
_APPLY = Launcher(_apply_kernel)
_GRAD_APPLY = Launcher(_grad_apply_kernel)
_INFERENCE = Launcher(_inference_kernel)
_COUNTERS: dict[tuple[int, int], torch.Tensor] = {}


def _runs(x: torch.Tensor, block_r: int, block_c: int, programs_per_sm: int) -> tuple[int, int]:
    """(programs, rows per program) of the column sums: about `programs_per_sm` programs per
    multiprocessor in all (over every channel tile), each over a run of whole row blocks (fixed by
    the shape: deterministic)."""
    blocks, channel_tiles = max(1, triton.cdiv(x.shape[0], block_r)), triton.cdiv(x.shape[1], block_c)
    wanted = max(1, programs_per_sm * sm_count(x.device) // channel_tiles)
    blocks_per_program = triton.cdiv(blocks, min(blocks, wanted))
    return triton.cdiv(blocks, blocks_per_program), blocks_per_program * block_r


def _counters(x: torch.Tensor, tiles: int) -> torch.Tensor:
    """Zeroed int32 counters of the sums kernels' channel tiles, one buffer per device and stream
    (kernels on one stream run one after another; each leaves its counters at zero again)."""
    stream = torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0
    key = (x.device.index or 0, stream)
    counters = _COUNTERS.get(key)
    if counters is None or counters.numel() < tiles:
        counters = torch.zeros(max(tiles, 256), dtype=torch.int32, device=x.device)
        _COUNTERS[key] = counters
    return counters


def _launch_sums(kernel: Launcher, x: torch.Tensor, inputs: tuple[Any, ...], finalise: tuple[Any, ...],
                 config: dict[str, int] | None, **constexprs: Any) -> None:
    """A sums kernel over x's shape: `inputs`, then partials, counters and the run of rows, then the
    finalising arguments. config: tile, warps and programs per multiprocessor (default
    SUMS_CONFIG; bench/batchnorm_tuning.py)."""
    config = dict(config or SUMS_CONFIG)
    programs_per_sm = config.pop("programs_per_sm")
    programs, rows_per_program = _runs(x, config["BLOCK_R"], config["BLOCK_C"], programs_per_sm)
    tiles = triton.cdiv(x.shape[1], config["BLOCK_C"])
    partial = torch.empty(programs, 2, x.shape[1], dtype=torch.float32, device=x.device)
    kernel((programs, tiles), *inputs, partial, _counters(x, tiles), x.shape[0], x.shape[1], rows_per_program,
           *finalise, **constexprs, BLOCK_B=_BLOCK_B, **config)


def batch_statistics(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, weight: torch.Tensor,
                     shift: torch.Tensor, running_mean: torch.Tensor | None = None,
                     running_var: torch.Tensor | None = None, tracked: torch.Tensor | None = None,
                     eps: float = 1e-5, momentum: float | None = None, config: dict[str, int] | None = None
                     ) -> torch.Tensor:
    """[4, C] fp32: mean, biased variance, 1/std and weight/std over the rows of x [N, C] where
    mask [N] is 1 (`count` of them), in one kernel; with a momentum and running statistics, those
    (and `tracked`) moved in place as nn.BatchNorm1d moves them."""
    stats = torch.empty(4, x.shape[1], dtype=torch.float32, device=x.device)
    update = momentum is not None and running_mean is not None and running_var is not None
    finalise = (count, weight, stats, running_mean if update else stats, running_var if update else stats,
                tracked if update and tracked is not None else count, float(eps), float(momentum or 0.0))
    _launch_sums(_STATS, x, (x, mask, shift), finalise, config, UPDATE=update,
                 TRACKED=update and tracked is not None)
    return stats


def grad_statistics(dy: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor,
                    mean: torch.Tensor, invstd: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    relu: bool, grad_dtypes: tuple[torch.dtype, torch.dtype] = (torch.float32, torch.float32),
                    config: dict[str, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(means [2, C] of m dy and m dy xhat, weight gradient, bias gradient) in one kernel; with
    relu, dy is first masked where the normalised value is not positive."""
    c = x.shape[1]
    means = torch.empty(2, c, dtype=torch.float32, device=x.device)
    grad_weight = torch.empty(c, dtype=grad_dtypes[0], device=x.device)
    grad_bias = torch.empty(c, dtype=grad_dtypes[1], device=x.device)
    _launch_sums(_GRAD_STATS, x, (dy, x, mask, mean, invstd, weight, bias),
                 (count, means, grad_weight, grad_bias), config, RELU=relu)
    return means, grad_weight, grad_bias


class MaskedBatchNormFunction(torch.autograd.Function):
    """(x [N, C], mask [N, 1] float32, count (0-dim), weight [C], bias [C], shift [C], running_mean,
    running_var, num_batches_tracked, eps, momentum, relu, residual) -> (y, mean, biased var).

    shift: the running mean (or zeros), subtracted before summing squares. With a `momentum` and
    running statistics, the kernels update them (and num_batches_tracked, if given) in place;
    momentum None leaves them to the caller. relu: y = max(normalised, 0). residual ([N, C], x's
    dtype): y = max(normalised + residual, 0) in the same pass (a residual block's end; `relu` is
    then implied), and the residual gets the ReLU's input gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor, shift: torch.Tensor, running_mean: torch.Tensor | None,
                running_var: torch.Tensor | None, tracked: torch.Tensor | None, eps: float,
                momentum: float | None, relu: bool = False, residual: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, ...]:
        x = x.contiguous()
        if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
            raise ValueError(f"batch norm: residual {tuple(residual.shape)} {residual.dtype} does not match "
                             f"the input {tuple(x.shape)} {x.dtype}")
        mask = mask.reshape(-1).float().contiguous()
        c = x.shape[1]
        mean, var, invstd, scale = batch_statistics(x, mask, count, weight, shift, running_mean, running_var,
                                                    tracked, eps, momentum)
        y = torch.empty_like(x)
        res = x if residual is None else residual.contiguous()  # unread without a residual
        _APPLY(grid(x), x, mask, mean, scale, bias, res, y, x.shape[0], c, RESIDUAL=residual is not None,
               RELU=relu or residual is not None, BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C)
        # With a residual the backward masks dy by y > 0 first; the statistics see no ReLU then.
        ctx.save_for_backward(x, mask, count, mean, invstd, scale, weight, bias,
                              y if residual is not None else None)
        ctx.relu = relu and residual is None
        ctx.param_dtypes = (weight.dtype, bias.dtype)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        x, mask, count, mean, invstd, scale, weight, bias, y = ctx.saved_tensors
        dy = dy.contiguous() if y is None else relu_grad(dy, y)
        c = x.shape[1]
        means, grad_weight, grad_bias = grad_statistics(dy, x, mask, count, mean, invstd, weight, bias,
                                                        ctx.relu, ctx.param_dtypes)
        dx = torch.empty_like(x)
        _GRAD_APPLY(grid(x), dy, x, mask, mean, invstd, weight, bias, scale, means[0], means[1], dx,
                    x.shape[0], c, RELU=ctx.relu, BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C)
        grad_residual = None if y is None else dy
        return dx, None, None, grad_weight, grad_bias, None, None, None, None, None, None, None, grad_residual


def batch_norm_inference(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                         weight: torch.Tensor, bias: torch.Tensor, eps: float, relu: bool = False
                         ) -> torch.Tensor:
    """Eval-mode BatchNorm of rows [N, C] (then a ReLU with `relu`) in one kernel (no autograd:
    callers use it without grads)."""
    x = x.contiguous()
    y = torch.empty_like(x)
    if x.shape[0]:
        _INFERENCE(grid(x), x, running_mean, running_var, weight, bias, y, x.shape[0], x.shape[1],
                   float(eps), RELU=relu, BLOCK_R=BLOCK_R, BLOCK_C=BLOCK_C)
    return y
