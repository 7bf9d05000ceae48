"""Kernel maps: which input voxel feeds which output voxel through which kernel offset.

A map is built by sorting the linear keys of the input voxels once and binary-searching
(`torch.searchsorted`) every (output, offset) query; no hash table, so nothing can overflow.
Output voxel `o` reads input voxel `o * conv_stride + offset[k]` through weight row `k`
(coordinates compacted, torchsparse v2.1). A transposed convolution uses the map of the matching
down-sampling convolution with the roles of input and output swapped and the same `k`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kernels.coords import CoordinateKeys, kernel_offsets
from kernels.tensor import Stride


@dataclass(frozen=True)
class KernelMap:
    """Input/output pairs grouped by kernel offset.

    Within one offset every input and every output occurs at most once (the map is injective),
    so scattering one offset's products never adds twice into a row: the reference convolution
    is deterministic on every device without atomics or sorting.

    in_index, out_index: int64 `[P]`, offset 0's pairs first, then offset 1's, ...
    pair_counts: pairs per offset (host ints, so slicing needs no device sync).
    identity_offset: offset whose pairs are `(i, i)` for every row (a submanifold centre): a
    backend may run it as one dense matmul without gathering.
    """

    in_index: torch.Tensor
    out_index: torch.Tensor
    pair_counts: tuple[int, ...]
    n_in: int
    n_out: int
    identity_offset: int | None = None

    @property
    def kernel_volume(self) -> int:
        return len(self.pair_counts)

    def offset_pairs(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        """`(k, in_index_k, out_index_k)` for every offset with at least one pair."""
        pairs = []
        start = 0
        for k, count in enumerate(self.pair_counts):
            if count:
                pairs.append((k, self.in_index[start : start + count], self.out_index[start : start + count]))
            start += count
        return pairs

    def transposed(self) -> KernelMap:
        """The same pairs read backwards: outputs become inputs (transposed convolution)."""
        return KernelMap(
            self.out_index, self.in_index, self.pair_counts, self.n_out, self.n_in, self.identity_offset
        )

    def out_in_map(self) -> torch.Tensor:
        """Dense neighbour table `[n_out, K]` (input index or -1), the layout of implicit GEMM."""
        table = torch.full(
            (self.n_out, self.kernel_volume), -1, dtype=torch.int64, device=self.in_index.device
        )
        offset_of_pair = torch.repeat_interleave(
            torch.arange(self.kernel_volume, device=self.in_index.device),
            torch.tensor(self.pair_counts, device=self.in_index.device),
        )
        table[self.out_index, offset_of_pair] = self.in_index
        return table


def build_kernel_map(
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    kernel_size: Stride,
    conv_stride: Stride = (1, 1, 1),
    dilation: Stride = (1, 1, 1),
) -> KernelMap:
    """Pairs (input row, output row) per offset; coordinates `[N, 4]` int32, unique per set."""
    device = in_coords.device
    offsets = kernel_offsets(kernel_size, dilation, device=device)
    volume = offsets.shape[0]
    n_in, n_out = in_coords.shape[0], out_coords.shape[0]
    if n_in == 0 or n_out == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return KernelMap(empty, empty, (0,) * volume, n_in, n_out)

    step = torch.tensor([1, *conv_stride], dtype=torch.int64, device=device)
    anchors = out_coords.to(torch.int64) * step
    keys = CoordinateKeys.covering(in_coords, anchors, margin=offsets.abs().max(dim=0).values)
    sorted_keys, order = torch.sort(keys.encode(in_coords))
    queries = keys.encode(anchors)[None, :] + keys.delta(offsets)[:, None]  # [K, n_out]
    position = torch.searchsorted(sorted_keys, queries).clamp_(max=n_in - 1)
    found = sorted_keys[position] == queries
    # nonzero walks [K, n_out] row-major: pairs come out grouped by offset, outputs ascending.
    offset_of_pair, out_index = found.nonzero(as_tuple=True)
    in_index = order[position[offset_of_pair, out_index]]
    pair_counts = tuple(torch.bincount(offset_of_pair, minlength=volume).tolist())

    identity_offset = None
    is_submanifold = in_coords is out_coords and all(s == 1 for s in conv_stride)
    zero_rows = (offsets == 0).all(dim=1).nonzero().flatten().tolist()
    if is_submanifold and zero_rows and pair_counts[zero_rows[0]] == n_out:
        identity_offset = zero_rows[0]
    return KernelMap(in_index, out_index, pair_counts, n_in, n_out, identity_offset)
