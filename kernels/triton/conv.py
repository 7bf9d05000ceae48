"""Launchers of the convolution kernels and the autograd Function of the Triton backend."""

from __future__ import annotations

from typing import Any

import torch
import triton

from kernels.epilogue import NormEpilogue
from kernels.reference import autocast_operands
from kernels.triton import conv_kernels as ck
from kernels.triton import settings
from kernels.triton.kmap import GPUKernelMap, MapSide
from kernels.triton.launch import Launcher, sm_count

_IMPLICIT_GEMM = Launcher(ck.implicit_gemm_kernel)
_IMPLICIT_GEMM_COMPACT = Launcher(ck.implicit_gemm_compact_kernel)
_WEIGHT_GRAD = Launcher(ck.weight_grad_kernel)
_WEIGHT_GRAD_FIXUP = Launcher(ck.weight_grad_fixup_kernel)
# Rows of a weight-gradient tile per fixup program (every BLOCK_I is a multiple); it adds
# _FIXUP_ELEMENTS // (rows * max(BLOCK_O, 64)) partials per step (one [partials, rows, BLOCK_O]
# load; wider tiles take fewer). A submanifold centre offset spans about a third of the segments:
# with 16 rows and 8 partials per step the fixup of a 32-channel layer waited out a dozen dependent
# loads (~20 us per call).
_FIXUP_ROWS = 4  # default; weight_grad_config takes 32 for layers of many tiles
_FIXUP_ELEMENTS = 128 * 64
_WIDE_ROWS = 24576  # from here on, 256-channel layers take 256-channel tiles (gemm_config)


def _pow2(n: int, low: int, high: int) -> int:
    return max(low, min(high, triton.next_power_of_2(max(n, 1))))


def gemm_config(c_in: int, c_out: int, wide: bool, n_rows: int = 0, volume: int = 27) -> dict[str, int]:
    """Tile shape, warps and pipeline stages of the implicit GEMM (STAGES 0: the branchy loop).

    For 16-bit (`wide`) inputs, chosen on an H200 by bench/conv_tuning.py over the calls of a MinkUNet
    training step (bench/results/conv_tuning.json): the pipelined kernel wins up to Cin = 192 (32-row
    tiles when both sides have <= 64 channels: more programs to hide the gathers' latency), the loop
    from Cin = 256 on, where a tile's dot is long enough to cover them (and an inference pass,
    bench/results/conv_tuning_inference.json). fp32 keeps the loop.
    """
    block_n = _pow2(c_out, 16, 128 if wide else 64)
    if not wide:
        return {"BLOCK_M": 64, "BLOCK_N": block_n, "BLOCK_K": _pow2(c_in, 16, 32),
                "num_warps": 8 if block_n >= 128 else 4}
    config = {"BLOCK_M": 64, "BLOCK_N": block_n, "BLOCK_K": _pow2(c_in, 16, 64), "num_warps": 4}
    if c_in >= 256 and c_out % 256 == 0 and volume > 8 and n_rows >= _WIDE_ROWS:
        # Every output channel in one 128 x 256 tile (8 warps): each gathered row is loaded once.
        # 5-13 % faster on the dense scan's 256-channel layers, slower on nuScenes' 16k-row ones
        # (bench/results/conv_tuning_wide.json, _inference.json).
        return {**config, "BLOCK_M": 128, "BLOCK_N": 256, "num_warps": 8, "STAGES": 0}
    if c_in >= 256:
        # 128-row tiles from 16k rows: they won on the dense scan's 16.5k-row inference layers
        # (bench/results/conv_tuning_inference.json) and tie elsewhere above that.
        return {**config, "BLOCK_M": 128 if n_rows >= 16384 else 64, "STAGES": 0}
    if c_in <= 64 and c_out <= 64 and volume > 8:
        return {**config, "BLOCK_M": 32, "STAGES": 3}
    if c_in > 64 and c_in % 64 == 32:
        # 96 input channels: 32-channel steps, no half-empty second one (bench/results/
        # conv_tuning_96ch.json: input gradients 7-30 % faster). Below 64k rows (nuScenes) also
        # 32-wide output tiles when the outputs are padded (96 in 128), through the loop.
        if n_rows < 65536 and c_out % 64 == 32:
            return {**config, "BLOCK_N": 32, "BLOCK_K": 32, "STAGES": 0}
        return {**config, "BLOCK_K": 32, "STAGES": 3}
    return {**config, "STAGES": 2}


def weight_grad_config(
    c_in: int, c_out: int, wide: bool, n_rows: int = 0, volume: int = 27
) -> dict[str, int]:
    """Cin x Cout tile, pairs per step, warps, programs per multiprocessor and fixup rows of the
    weight gradient (16-bit: 128 pairs per step measured best for every MinkUNet call; 32 fixup rows
    from 6 tiles on, where they saved 5-26 % per call, bench/results/conv_tuning_wgrad.json).
    n_rows: rows of the map's offset lists."""
    if wide and c_in >= 256 and c_out % 256 == 0 and volume > 8 and n_rows >= _WIDE_ROWS:
        # 128 x 256 tiles, one program per multiprocessor: 22-30 % faster on the dense scan's
        # 256-channel layers (bench/results/conv_tuning_wide.json, _inference.json).
        return {"BLOCK_I": 128, "BLOCK_O": 256, "BLOCK_P": 64, "num_warps": 8, "programs_per_sm": 1,
                "fixup_rows": 32}
    block_i, block_o = _pow2(c_in, 16, 64), _pow2(c_out, 16, 64)
    tiles = triton.cdiv(c_in, block_i) * triton.cdiv(c_out, block_o)
    return {"BLOCK_I": block_i, "BLOCK_O": block_o, "BLOCK_P": 128 if wide else 32, "num_warps": 4,
            "programs_per_sm": 2, "fixup_rows": min(32, block_i) if tiles >= 6 else _FIXUP_ROWS}


def implicit_gemm(
    x: torch.Tensor, weight: torch.Tensor, side: MapSide, transpose_weight: bool,
    config: dict[str, int] | None = None, epilogue: NormEpilogue | None = None,
) -> torch.Tensor:
    """y[r] = sum_k x[side.table[r, k]] @ W_k with W_k = weight[k] (or weight[k].T).

    config: tile shape, warps, STAGES (> 0: the pipelined compact kernel) and PRELOAD (1: that
    kernel reads its table block before the loop), default gemm_config.
    epilogue: an eval-mode BatchNorm (and a residual sum, and ReLU) applied to the fp32 sums before
    the store.
    """
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
    config = dict(config or gemm_config(c_in, c_out, x.dtype != torch.float32, n_rows, volume))
    stages = config.pop("STAGES", 0)
    preload = bool(config.pop("PRELOAD", 0))  # the compact kernel's table block (its docstring)
    grid = (triton.cdiv(n_rows, config["BLOCK_M"]), triton.cdiv(c_out, config["BLOCK_N"]))
    precision = settings.dot_precision(x.dtype)
    residual = None if epilogue is None else epilogue.residual
    if epilogue is None:
        norm: tuple[Any, ...] = (y, y, y, y, 0.0, y)  # unread
    else:
        if residual is not None and (residual.shape != y.shape or residual.dtype != y.dtype):
            raise ValueError(f"conv epilogue: residual {tuple(residual.shape)} {residual.dtype} does not "
                             f"match the output {tuple(y.shape)} {y.dtype}")
        norm = (epilogue.running_mean, epilogue.running_var, epilogue.weight, epilogue.bias, epilogue.eps,
                y if residual is None else residual.contiguous())
    flags = {"NORMALISE": epilogue is not None, "RESIDUAL": residual is not None,
             "RELU": epilogue is not None and epilogue.relu}
    if side.sorted_table is not None and stages:
        _IMPLICIT_GEMM_COMPACT(
            grid,
            x, weight, y, side.sorted_table, side.perm, side.sorted_mask,
            n_rows, c_in, c_out, s_wk, s_wi, s_wo, *norm,
            K=volume, K_POW2=triton.next_power_of_2(volume), FLIP=side.flip, PRECISION=precision,
            STAGES=stages, PRELOAD=preload, **flags, **config,
        )
        return y
    if side.sorted_table is not None:
        table, perm, mask = side.sorted_table, side.perm, side.sorted_mask
    else:
        table = perm = mask = side.table
    _IMPLICIT_GEMM(
        grid,
        x, weight, y, table, perm, mask,
        n_rows, c_in, c_out, s_wk, s_wi, s_wo, *norm,
        K=volume, FLIP=side.flip, SORTED=side.sorted_table is not None, PRECISION=precision, **flags,
        **config,
    )
    return y


def weight_grad(
    x: torch.Tensor, dy: torch.Tensor, kmap: GPUKernelMap, volume: int, config: dict[str, int] | None = None
) -> torch.Tensor:
    """dW [K, Cin, Cout] in fp32, stream-K over the pairs of all offsets (deterministic).

    config: tiles, warps, programs_per_sm and fixup_rows, default weight_grad_config.
    """
    rows, others, starts, rows_are_out = kmap.offset_lists()
    n_rows = rows.shape[1]
    c_in, c_out = x.shape[1], dy.shape[1]
    config = dict(config or weight_grad_config(c_in, c_out, x.dtype != torch.float32, n_rows, volume))
    programs_per_sm = config.pop("programs_per_sm", 2)
    fixup_rows = min(config.pop("fixup_rows", _FIXUP_ROWS), config["BLOCK_I"])
    block_i, block_o, block_p = config["BLOCK_I"], config["BLOCK_O"], config["BLOCK_P"]
    tiles_out = triton.cdiv(c_out, block_o)
    tiles = triton.cdiv(c_in, block_i) * tiles_out
    if n_rows == 0:
        return torch.zeros(volume, c_in, c_out, dtype=torch.float32, device=x.device)
    out = torch.empty(volume, c_in, c_out, dtype=torch.float32, device=x.device)
    # Enough segments for ~2 programs per multiprocessor, and no more than one per 2 * BLOCK_P
    # table rows (the pair count itself is on the device; a small map gets few, long segments).
    wanted = triton.cdiv(programs_per_sm * sm_count(x.device), tiles)
    programs = max(1, min(wanted, n_rows // (2 * block_p)))
    partial = torch.empty(programs, 2, c_in, c_out, dtype=torch.float32, device=x.device)
    precision = settings.dot_precision(x.dtype)
    _WEIGHT_GRAD(
        (programs, tiles),
        x, dy, rows, others, starts, out, partial,
        n_rows, c_in, c_out, programs, tiles_out,
        K=volume, K_POW2=triton.next_power_of_2(volume + 1), ROWS_ARE_OUT=rows_are_out,
        PRECISION=precision, **config,
    )
    _WEIGHT_GRAD_FIXUP(
        (volume, tiles * (block_i // fixup_rows)),
        starts, out, partial, programs, c_in, c_out, tiles_out,
        K=volume, BLOCK_I=block_i, BLOCK_O=block_o, BLOCK_P=block_p, ROWS=fixup_rows,
        CHUNK=max(1, _FIXUP_ELEMENTS // (fixup_rows * max(block_o, 64))), num_warps=4,
    )
    return out


def _compute_dtype(feats: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats, weight = autocast_operands(feats, weight)
    if feats.dtype != weight.dtype:
        raise TypeError(f"sparse conv: features are {feats.dtype} but the weight is {weight.dtype}")
    return feats.contiguous(), weight


def conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: GPUKernelMap,
                 epilogue: NormEpilogue | None = None) -> torch.Tensor:
    """The forward convolution alone (no autograd graph), in the autocast dtype if one is active,
    with an eval-mode BatchNorm (and ReLU) applied before the store if `epilogue` is given."""
    feats, weight = _compute_dtype(feats, weight)
    return implicit_gemm(feats, weight, kmap.output_side(), transpose_weight=False, epilogue=epilogue)


class TritonConvFunction(torch.autograd.Function):
    """Sparse convolution `[n_in, Cin] -> [n_out, Cout]` with weight `[K, Cin, Cout]` on a GPUKernelMap."""

    @staticmethod
    def forward(ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: GPUKernelMap) -> torch.Tensor:
        ctx.weight_dtype = weight.dtype  # the gradient goes back in it, straight from fp32
        feats, weight = _compute_dtype(feats, weight)
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
            grad_weight = weight_grad(feats, grad_out, kmap, weight.shape[0]).to(ctx.weight_dtype)
        return grad_feats, grad_weight, None
