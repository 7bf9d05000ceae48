"""Rigid transforms in the nuScenes conventions.

nuScenes stores a pose as `translation` (x, y, z in metres) plus `rotation`, a unit quaternion in
(w, x, y, z) order. A calibrated_sensor record is the sensor -> ego transform; an ego_pose record is
the ego -> global transform at one timestamp. All matrices here are float64 4x4 homogeneous
transforms acting on column vectors: p_out = T @ [x, y, z, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quaternion_to_matrix(q_wxyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation matrix (3x3 float64) of a quaternion given as (w, x, y, z).

    The quaternion is normalised first: stored records are unit only to ~1e-9, and an unnormalised
    quaternion would scale points as well as rotate them.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have 4 components (w, x, y, z), got shape {q.shape}")
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"quaternion {q.tolist()} is zero or not finite")
    w, x, y, z = q / norm
    return np.array(
        [
            [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
            [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
            [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)],
        ]
    )


def pose_matrix(translation: Sequence[float], rotation_wxyz: Sequence[float]) -> np.ndarray:
    """4x4 transform of a nuScenes pose record (rotation applied first, then translation)."""
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,):
        raise ValueError(f"translation must have 3 components, got shape {t.shape}")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(rotation_wxyz)
    T[:3, 3] = t
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform, via R^T rather than a general inverse (exact for rigid)."""
    R = T[:3, :3]
    inv = np.eye(4)
    inv[:3, :3] = R.T
    inv[:3, 3] = -R.T @ T[:3, 3]
    return inv


def sensor_to_sensor(
    src_to_ego: np.ndarray,
    ego_to_global_src: np.ndarray,
    ego_to_global_dst: np.ndarray,
    dst_to_ego: np.ndarray,
) -> np.ndarray:
    """Transform from a sensor frame at time t_src to another sensor frame at time t_dst.

    src -> ego(t_src) -> global -> ego(t_dst) -> dst. Going through the global frame compensates
    the ego motion between the two timestamps (up to ~0.3 m between a nuScenes lidar sweep and its
    camera images at city speeds).
    """
    return invert_pose(dst_to_ego) @ invert_pose(ego_to_global_dst) @ ego_to_global_src @ src_to_ego


def transform_points(T: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points; computed in float64, returned as float64."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return xyz @ T[:3, :3].T + T[:3, 3]
