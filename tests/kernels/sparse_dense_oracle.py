"""Dense counterparts of sparse tensors and convolutions, written independently of `kernels`.

The kernel-offset order is spelled out with explicit loops here (not `kernels.kernel_offsets`),
so a test comparing the two checks the order rather than restating it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def torchsparse_offset_order(size: int) -> list[tuple[int, int, int]]:
    """Offsets of a cubic kernel: odd sizes x fastest, even sizes z fastest."""
    axis = list(range(-size // 2 + 1, size // 2 + 1))
    if size % 2 == 1:
        return [(x, y, z) for z in axis for y in axis for x in axis]
    return [(x, y, z) for x in axis for y in axis for z in axis]


def random_coords(
    batch: int, grid: int, density: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Unique int32 coords (b, x, y, z) in [0, grid)^3, in random row order."""
    occupied = torch.rand(batch, grid, grid, grid, generator=generator) < density
    coords = occupied.nonzero().to(torch.int32)
    coords = coords[torch.randperm(coords.shape[0], generator=generator)]
    return coords.to(device)


def to_dense(feats: torch.Tensor, coords: torch.Tensor, batch: int, grid: int) -> torch.Tensor:
    dense = feats.new_zeros(batch, feats.shape[1], grid, grid, grid)
    b, x, y, z = coords.long().unbind(1)
    dense[b, :, x, y, z] = feats
    return dense


def read_dense(dense: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    b, x, y, z = coords.long().unbind(1)
    return dense[b, :, x, y, z]


def dense_weight(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """[K, Cin, Cout] sparse weight -> [Cout, Cin, k, k, k] dense weight (index = offset - low)."""
    low = -size // 2 + 1
    weight = kernel.new_zeros(kernel.shape[2], kernel.shape[1], size, size, size)
    for k, (x, y, z) in enumerate(torchsparse_offset_order(size)):
        weight[:, :, x - low, y - low, z - low] = kernel[k].T
    return weight


def dense_conv(
    dense: torch.Tensor, kernel: torch.Tensor, size: int, stride: int, dilation: int
) -> torch.Tensor:
    """out[o] = sum_k in[o * stride + offset_k * dilation] @ W[k] on a zero-padded grid."""
    low = -size // 2 + 1
    pad_low, pad_high = -low * dilation, (size - 1 + low) * dilation
    padded = F.pad(dense, (pad_low, pad_high) * 3)
    return F.conv3d(padded, dense_weight(kernel, size), stride=stride, dilation=dilation)


def dense_conv_transpose(
    coarse: torch.Tensor, kernel: torch.Tensor, size: int, stride: int, dilation: int, fine_grid: int
) -> torch.Tensor:
    """out[o * stride + offset_k * dilation] += in[o] @ W[k], cropped to [0, fine_grid)^3."""
    low = -size // 2 + 1
    # conv_transpose3d takes its weight as [Cin, Cout, k, k, k].
    weight = dense_weight(kernel, size).transpose(0, 1)
    full = F.conv_transpose3d(coarse, weight, stride=stride, dilation=dilation)
    # full index t = o * stride + (offset - low) * dilation, so fine index i = t + low * dilation.
    start = -low * dilation
    out = full.new_zeros(*full.shape[:2], fine_grid, fine_grid, fine_grid)
    available = min(fine_grid, full.shape[2] - start)
    out[:, :, :available, :available, :available] = full[
        :, :, start : start + available, start : start + available, start : start + available
    ]
    return out

