"""Readers for single nuScenes data files: LiDAR sweeps and lidarseg label files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# A nuScenes .pcd.bin point is 5 little-endian float32: x, y, z, intensity, ring index.
POINT_DIMS = 5
POINT_BYTES = POINT_DIMS * 4


class NuScenesFormatError(ValueError):
    """A nuScenes file, table or record is missing or not in the expected format."""


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read a nuScenes .pcd.bin file into float32 (N, 5): x, y, z, intensity, ring."""
    path = Path(path)
    if not path.is_file():
        raise NuScenesFormatError(f"{path}: LiDAR file not found")
    size = path.stat().st_size
    if size % POINT_BYTES != 0:
        raise NuScenesFormatError(
            f"{path}: size {size} bytes is not a multiple of {POINT_BYTES} "
            f"(expected float32 x {POINT_DIMS} per point: x, y, z, intensity, ring)"
        )
    points = np.fromfile(path, dtype="<f4").reshape(-1, POINT_DIMS)
    bad = ~np.isfinite(points[:, :3]).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise NuScenesFormatError(
            f"{path}: {int(bad.sum())} of {len(points)} points have NaN or infinite coordinates "
            f"(first at point index {first})"
        )
    # fromfile with "<f4" is already native float32 on little-endian hosts; astype is a no-op there.
    return points.astype(np.float32, copy=False)


def read_lidarseg(path: str | os.PathLike, n_points: int) -> np.ndarray:
    """Read a nuScenes-lidarseg .bin file: one uint8 raw category index per point of the sweep."""
    path = Path(path)
    if not path.is_file():
        raise NuScenesFormatError(f"{path}: lidarseg label file not found")
    labels = np.fromfile(path, dtype=np.uint8)
    if len(labels) != n_points:
        raise NuScenesFormatError(
            f"{path}: {len(labels)} labels but the LiDAR sweep has {n_points} points "
            "(expected one uint8 label per point)"
        )
    return labels
