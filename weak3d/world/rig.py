"""Sensor rig like nuScenes: LIDAR_TOP and six cameras, with small per-log calibration differences.

Frames (as nuScenes): ego x forward, y left, z up; LIDAR_TOP x right, y forward, z up; cameras
OpenCV (x right, y down, z along the optical axis). calibrated_sensor = sensor -> ego,
ego_pose = ego -> global; quaternions are (w, x, y, z).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weak3d.datasets.nuscenes import CAMERAS, LIDAR  # the format's channel names

# Mounting (translation in the ego frame, yaw of the optical axis in degrees), fx/cx/cy for
# 1600x900, and camera time minus LiDAR time in ms: the cameras fire as the spinning LiDAR sweeps
# past them, so they lead the LiDAR timestamp by up to ~45 ms as in nuScenes.
_CAMERA_SPECS: dict[str, tuple[tuple[float, float, float], float, tuple[float, float, float], float]] = {
    "CAM_FRONT": ((1.70, 0.016, 1.511), 0.0, (1266.4, 816.3, 491.5), -35.0),
    "CAM_FRONT_RIGHT": ((1.551, -0.493, 1.496), -55.0, (1260.8, 807.9, 495.3), -27.0),
    "CAM_FRONT_LEFT": ((1.524, 0.495, 1.509), 55.0, (1272.6, 826.6, 479.8), -43.0),
    "CAM_BACK": ((0.028, 0.003, 1.579), 180.0, (809.2, 829.2, 481.8), -10.0),
    "CAM_BACK_LEFT": ((1.036, 0.485, 1.591), 110.0, (1256.7, 792.1, 492.8), -1.0),
    "CAM_BACK_RIGHT": ((1.015, -0.481, 1.562), -110.0, (1259.5, 807.3, 501.2), -20.0),
}
LIDAR_MOUNT = (0.943713, 0.0, 1.84023)


def rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def quaternion_wxyz(R: np.ndarray) -> list[float]:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix."""
    m = np.asarray(R, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    q = q / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return [float(v) for v in q]


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


# camera axes in the ego frame for an optical axis along ego +x
_CAM_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Sensor:
    channel: str
    modality: str  # "lidar" | "camera"
    to_ego: np.ndarray  # 4x4 sensor -> ego
    intrinsic: np.ndarray | None  # 3x3 for cameras
    width: int = 0
    height: int = 0
    time_offset_us: int = 0  # camera time - LiDAR key-frame time


def make_rig(rng: np.random.Generator, width: int, height: int) -> dict[str, Sensor]:
    """One log's calibration: nominal nuScenes mounting plus millimetre/0.2-degree differences."""
    rig: dict[str, Sensor] = {}
    jit = rng.normal(0, 0.004, 3)
    R = (
        rot_z(np.radians(-90.0 + rng.normal(0, 0.1)))
        @ rot_y(np.radians(rng.normal(0, 0.3)))
        @ rot_x(np.radians(rng.normal(0, 0.3)))
    )
    rig[LIDAR] = Sensor(LIDAR, "lidar", pose(R, np.asarray(LIDAR_MOUNT) + jit), None)
    sx, sy = width / 1600.0, height / 900.0
    for name in CAMERAS:
        t, yaw, (f, cx, cy), dt_ms = _CAMERA_SPECS[name]
        R = (
            rot_z(np.radians(yaw + rng.normal(0, 0.2)))
            @ rot_y(np.radians(rng.normal(0.5, 0.3)))
            @ rot_x(np.radians(rng.normal(0, 0.2)))
            @ _CAM_BASE
        )
        K = np.array([[f * sx, 0, cx * sx], [0, f * sy, cy * sy], [0, 0, 1.0]])
        rig[name] = Sensor(
            name,
            "camera",
            pose(R, np.asarray(t) + rng.normal(0, 0.005, 3)),
            K,
            width,
            height,
            int(round(dt_ms * 1000 + rng.normal(0, 1500))),
        )
    return rig


def ego_matrix(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Ego -> scene frame."""
    return pose(rot_z(yaw) @ rot_y(pitch) @ rot_x(roll), position)
