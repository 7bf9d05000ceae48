"""Sparse 3D convolution on `SparseTensor`s (submanifold, strided, transposed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from kernels.backend import SparseBackend, get_backend
from kernels.coords import downsample_coords
from kernels.epilogue import NormEpilogue
from kernels.kmap import KernelMap, build_kernel_map
from kernels.tensor import SparseTensor, Stride, as_triple


def _cached_kernel_map(
    backend: SparseBackend,
    tensor: SparseTensor,
    in_stride: Stride,
    kernel_size: Stride,
    conv_stride: Stride,
    dilation: Stride,
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
) -> KernelMap:
    # Keyed by the stride on the fine side, like torchsparse, so that a transposed convolution
    # finds the map its matching down-sampling convolution built.
    key = (in_stride, kernel_size, conv_stride, dilation)
    kmap = tensor._caches.kmaps.get(key)
    if kmap is None:
        # A backend may build maps in its own layout (the Triton backend: neighbour tables).
        builder = getattr(backend, "build_kernel_map", build_kernel_map)
        kmap = builder(in_coords, out_coords, kernel_size, conv_stride, dilation)
        tensor._caches.kmaps[key] = kmap
    return kmap


def conv3d(
    input: SparseTensor,
    weight: torch.Tensor,
    kernel_size: int | Sequence[int],
    bias: torch.Tensor | None = None,
    stride: int | Sequence[int] = 1,
    dilation: int | Sequence[int] = 1,
    transposed: bool = False,
    epilogue: NormEpilogue | None = None,
) -> SparseTensor:
    """Sparse convolution with weight `[K, Cin, Cout]` (or `[Cin, Cout]` when K == 1).

    stride 1: submanifold (outputs on the input voxels). stride s > 1: outputs on
    `unique(floor(c / s))`, output `o` reads input `o * s + offset[k] * dilation`. transposed with
    stride s > 1: outputs on the stride-`input.stride / s` voxels recorded in the cache (the
    parent's), through the matching down-sampling map read backwards (no kernel flip).
    epilogue: an eval-mode BatchNorm (and ReLU) applied to the output (after `bias`); backends with a
    `conv_epilogue` method apply it inside the convolution.
    """
    if epilogue is not None and bias is None and hasattr(get_backend(input.feats.device), "conv_epilogue"):
        return _conv3d(input, weight, kernel_size, stride, dilation, transposed, epilogue)
    output = _conv3d(input, weight, kernel_size, stride, dilation, transposed, None)
    if bias is not None:
        output = output.replace_feats(output.feats + bias)
    return output if epilogue is None else output.replace_feats(epilogue.apply(output.feats))


def _conv3d(
    input: SparseTensor,
    weight: torch.Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    dilation: int | Sequence[int],
    transposed: bool,
    epilogue: NormEpilogue | None,
) -> SparseTensor:
    """conv3d without bias; `epilogue` (if given) goes to the backend's conv_epilogue."""
    kernel_size = as_triple(kernel_size, "kernel_size")
    stride = as_triple(stride, "stride")
    dilation = as_triple(dilation, "dilation")
    weight3 = weight if weight.dim() == 3 else weight.unsqueeze(0)
    if weight3.shape[0] != math.prod(kernel_size):
        raise ValueError(f"weight has {weight3.shape[0]} kernel rows, kernel_size {kernel_size} needs "
                         f"{math.prod(kernel_size)}")
    backend = get_backend(input.feats.device)

    def run(feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
        if epilogue is None:
            return backend.conv(feats, weight3, kmap)
        return backend.conv_epilogue(feats, weight3, kmap, epilogue)  # type: ignore[attr-defined]

    if math.prod(kernel_size) == 1 and stride == (1, 1, 1):
        output = input.replace_feats(input.feats @ weight3[0])
        if epilogue is not None:
            output = output.replace_feats(epilogue.apply(output.feats))
    elif not transposed:
        out_stride = tuple(a * b for a, b in zip(input.stride, stride, strict=True))
        if stride == (1, 1, 1):
            out_coords = input.coords
        else:
            out_coords = input._caches.coords.get(out_stride)
            if out_coords is None:
                out_coords = getattr(backend, "downsample_coords", downsample_coords)(input.coords, stride)
        kmap = _cached_kernel_map(
            backend,
            input, input.stride, kernel_size, stride, dilation, input.coords, out_coords
        )
        output = SparseTensor(run(input.feats, kmap), out_coords, out_stride, input._caches)
    else:
        if any(a % b for a, b in zip(input.stride, stride, strict=True)):
            raise ValueError(f"transposed conv with stride {stride} on a tensor of stride {input.stride}")
        out_stride = tuple(a // b for a, b in zip(input.stride, stride, strict=True))
        out_coords = input.coords if stride == (1, 1, 1) else input._caches.coords.get(out_stride)
        if out_coords is None:
            raise ValueError(
                f"transposed conv to stride {out_stride}: no coordinates of that stride in the cache; "
                "up-sampling needs the tensor to descend from one at that stride"
            )
        kmap = _cached_kernel_map(
            backend, input, out_stride, kernel_size, stride, dilation, out_coords, input.coords
        )
        output = SparseTensor(run(input.feats, kmap.transposed()), out_coords, out_stride, input._caches)
    return output
