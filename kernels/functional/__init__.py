"""Functional sparse operators (torchsparse.nn.functional-like)."""

from kernels.functional.conv import conv3d
from kernels.functional.loss import cross_entropy
from kernels.functional.points import (
    devoxelize,
    find_voxels,
    initial_voxelize,
    point_to_voxel,
    point_voxel_index,
    trilinear_corners,
    voxel_to_point,
    voxelize,
)

__all__ = [
    "conv3d",
    "cross_entropy",
    "devoxelize",
    "find_voxels",
    "initial_voxelize",
    "point_to_voxel",
    "point_voxel_index",
    "trilinear_corners",
    "voxel_to_point",
    "voxelize",
]
