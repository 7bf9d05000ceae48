"""Point cloud -> voxel quantisation and batching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from kernels.tensor import SparseTensor

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)


def sparse_quantize(
    coords: ArrayLike,
    voxel_size: float | Sequence[float] = 1.0,
    priority: ArrayLike | None = None,
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Keep one point per voxel.

    coords: `[N, D]` point coordinates (any D, e.g. xyz, or batch + xyz with voxel_size 1 on it).
    voxel_size: scalar or one per column; voxels are `floor(coords / voxel_size)` (not shifted).
    priority: `[N]`; within a voxel the point of highest priority is kept, ties going to the
        first occurrence (IUPC keeps labelled points by passing e.g. `labels != 0`). None keeps
        the first point of each voxel (torchsparse's `np.unique` behaviour).

    Returns `(voxel_coords [M, D] int32, indices [M] int64, inverse [N] int64)`, voxels sorted
    lexicographically by coordinate; `coords[indices]` are the kept points and
    `voxel_coords[inverse]` is the voxel of every point. numpy in -> numpy out; torch in -> torch out.
    """
    as_numpy = isinstance(coords, np.ndarray)
    points = torch.as_tensor(coords)
    if points.dim() != 2:
        raise ValueError(f"coords must be [N, D], got shape {tuple(points.shape)}")
    size = torch.as_tensor(voxel_size, dtype=torch.float64, device=points.device)
    voxels = torch.floor(points.to(torch.float64) / size).to(torch.int64)
    n = voxels.shape[0]
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64)
        result = (voxels.to(torch.int32), empty, empty)
        return tuple(r.numpy() for r in result) if as_numpy else result  # type: ignore[return-value]

    keys = _lexicographic_keys(voxels)
    order = torch.arange(n, device=points.device)
    if priority is not None:
        ranks = torch.as_tensor(priority, device=points.device)
        if ranks.shape != (n,):
            raise ValueError(f"priority must have shape ({n},), got {tuple(ranks.shape)}")
        # Stable sorts: highest priority first, ties in input order; then group by voxel, which
        # keeps that order inside each voxel.
        order = torch.sort(ranks, descending=True, stable=True).indices
    order = order[torch.sort(keys[order], stable=True).indices]
    sorted_keys = keys[order]
    starts = torch.ones(n, dtype=torch.bool, device=points.device)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    indices = order[starts]
    inverse = torch.empty(n, dtype=torch.int64, device=points.device)
    inverse[order] = torch.cumsum(starts.to(torch.int64), dim=0) - 1
    voxel_coords = voxels[indices].to(torch.int32)
    if as_numpy:
        return voxel_coords.numpy(), indices.numpy(), inverse.numpy()  # type: ignore[return-value]
    return voxel_coords, indices, inverse  # type: ignore[return-value]


def _lexicographic_keys(voxels: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering rows of `voxels` lexicographically (first column most significant)."""
    low = voxels.min(dim=0).values
    extent = (voxels.max(dim=0).values - low + 1).tolist()
    if float(np.prod([float(e) for e in extent])) >= 2.0**62:
        raise ValueError(f"voxel box {extent} is too large for 64-bit keys")
    keys = torch.zeros(voxels.shape[0], dtype=torch.int64, device=voxels.device)
    for column, span in enumerate(extent):
        keys = keys * int(span) + (voxels[:, column] - low[column])
    return keys


def sparse_collate(tensors: Sequence[SparseTensor]) -> SparseTensor:
    """Batch single-scan tensors: batch column i for the i-th tensor (coords' column 0 replaced)."""
    if not tensors:
        raise ValueError("sparse_collate needs at least one tensor")
    coords = []
    for batch, tensor in enumerate(tensors):
        with_batch = tensor.coords.clone()
        with_batch[:, 0] = batch
        coords.append(with_batch)
    return SparseTensor(torch.cat([t.feats for t in tensors]), torch.cat(coords), tensors[0].stride)
