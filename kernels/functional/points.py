"""Point <-> voxel operators used by SPVCNN.

Point coordinates are floats in stride-1 voxel units, `(batch, x, y, z)`. At tensor stride `s`
(compacted coordinates) a point `p` lies in voxel `floor(p / s)`. A voxel's feature sits at its
lower corner, so trilinear interpolation reads the 8 voxels `floor(p / s) + {0, 1}^3` (corner
order = torchsparse's 2x2x2 kernel order, z fastest) with weights `prod(f or 1 - f)` where
`f = p / s - floor(p / s)`; missing voxels get weight 0 and the rest are renormalised.
"""

from __future__ import annotations

import torch

from kernels.backend import get_backend
from kernels.coords import CoordinateKeys, kernel_offsets
from kernels.tensor import PointTensor, SparseTensor, Stride

_NORMALISER_EPS = 1e-8


def voxelize(point_feats: torch.Tensor, voxel_index: torch.Tensor, n_voxels: int) -> torch.Tensor:
    """Average the features `[N, C]` of the points in each voxel (index -1: point ignored)."""
    return get_backend(point_feats.device).voxelize(point_feats, voxel_index, n_voxels)


def devoxelize(
    voxel_feats: torch.Tensor, corner_index: torch.Tensor, corner_weights: torch.Tensor
) -> torch.Tensor:
    """Per point, the weighted sum of its corner voxels' features (index -1: corner absent)."""
    return get_backend(voxel_feats.device).devoxelize(voxel_feats, corner_index, corner_weights)


def find_voxels(voxel_coords: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Row of `voxel_coords` (`[M, 4]` int) equal to each query (`[..., 4]` int), or -1."""
    flat = queries.reshape(-1, 4)
    result = torch.full((flat.shape[0],), -1, dtype=torch.int64, device=flat.device)
    if voxel_coords.shape[0] == 0 or flat.shape[0] == 0:
        return result.reshape(queries.shape[:-1])
    keys = CoordinateKeys.covering(voxel_coords, flat)
    sorted_keys, order = torch.sort(keys.encode(voxel_coords))
    query_keys = keys.encode(flat)
    position = torch.searchsorted(sorted_keys, query_keys).clamp_(max=sorted_keys.shape[0] - 1)
    found = sorted_keys[position] == query_keys
    result[found] = order[position[found]]
    return result.reshape(queries.shape[:-1])


def _scaled_points(point_coords: torch.Tensor, stride: Stride) -> torch.Tensor:
    scale = torch.tensor([1.0, *stride], dtype=point_coords.dtype, device=point_coords.device)
    return point_coords / scale


def point_voxel_index(point_coords: torch.Tensor, voxel_coords: torch.Tensor, stride: Stride) -> torch.Tensor:
    """Index of the stride-`stride` voxel that contains each point, or -1."""
    return find_voxels(voxel_coords, torch.floor(_scaled_points(point_coords, stride)).to(torch.int64))


def trilinear_corners(
    point_coords: torch.Tensor, voxel_coords: torch.Tensor, stride: Stride
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corner voxel indices `[N, 8]` (-1 = absent) and normalised trilinear weights `[N, 8]`."""
    scaled = _scaled_points(point_coords, stride)
    lower = torch.floor(scaled)
    fraction = (scaled - lower)[:, 1:]
    corners = kernel_offsets((2, 2, 2), device=point_coords.device)  # [8, 3] in {0, 1}
    corner_coords = lower.to(torch.int64)[:, None, :].repeat(1, 8, 1)
    corner_coords[:, :, 1:] += corners[None]
    index = find_voxels(voxel_coords, corner_coords)
    # weight of corner bit b on an axis: f if b == 1 else 1 - f
    per_axis = torch.where(corners[None].bool(), fraction[:, None, :], 1.0 - fraction[:, None, :])
    weights = per_axis.prod(dim=2) * (index >= 0).to(per_axis.dtype)
    weights = weights / (weights.sum(dim=1, keepdim=True) + _NORMALISER_EPS)
    return index, weights


def initial_voxelize(points: PointTensor) -> SparseTensor:
    """Stride-1 voxels `floor(coords)` holding the mean features of their points."""
    floored = torch.floor(points.coords).to(torch.int64)
    keys = CoordinateKeys.covering(floored)
    unique_keys, voxel_index = torch.unique(keys.encode(floored), sorted=True, return_inverse=True)
    voxel_coords = keys.decode(unique_keys)
    points.lookup((1, 1, 1)).voxel_index = voxel_index
    feats = voxelize(points.feats, voxel_index, voxel_coords.shape[0])
    return SparseTensor(feats, voxel_coords, 1)


def point_to_voxel(voxels: SparseTensor, points: PointTensor) -> SparseTensor:
    """`voxels`' voxels with features = mean of the point features inside each (0 if none)."""
    lookup = points.lookup(voxels.stride)
    if lookup.voxel_index is None:
        lookup.voxel_index = point_voxel_index(points.coords, voxels.coords, voxels.stride)
    return voxels.replace_feats(voxelize(points.feats, lookup.voxel_index, voxels.coords.shape[0]))


def voxel_to_point(voxels: SparseTensor, points: PointTensor) -> PointTensor:
    """Point features trilinearly interpolated from `voxels` (lookup cached per stride)."""
    lookup = points.lookup(voxels.stride)
    if lookup.corner_index is None or lookup.corner_weights is None:
        lookup.corner_index, lookup.corner_weights = trilinear_corners(
            points.coords, voxels.coords, voxels.stride
        )
    return points.replace_feats(devoxelize(voxels.feats, lookup.corner_index, lookup.corner_weights))
