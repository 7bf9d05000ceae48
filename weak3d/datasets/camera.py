"""Cameras of a LiDAR sample: calibration, point projection and image reading."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from weak3d.datasets.geometry import pose_matrix, sensor_to_sensor, transform_points
from weak3d.datasets.nuscenes_io import NuScenesFormatError

# The six nuScenes cameras, in the order used for every per-camera array in weak3d.
CAMERAS: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)

# Points closer than this to the image plane are not projected: their pixel position is unstable
# and they are usually parts of the ego vehicle.
MIN_DEPTH = 1.0

Bounds = Literal["pixel", "iupc"]


@dataclass(frozen=True)
class Camera:
    """One camera image of a sample, with the transform from the sample's LiDAR frame."""

    name: str
    token: str  # sample_data token of the image
    image_path: Path  # absolute
    width: int
    height: int
    intrinsic: np.ndarray  # 3x3 float64 pinhole K (nuScenes images are undistorted)
    lidar_to_camera: np.ndarray  # 4x4 float64: LiDAR frame at the LiDAR time -> camera frame

    @property
    def lidar_to_image(self) -> np.ndarray:
        """4x4 matrix [[K, 0], [0, 1]] @ lidar_to_camera."""
        K4 = np.eye(4)
        K4[:3, :3] = self.intrinsic
        return K4 @ self.lidar_to_camera


def make_camera(
    name: str,
    token: str,
    image_path: str | os.PathLike,
    width: int,
    height: int,
    intrinsic: np.ndarray | list,
    lidar_calibration: dict,
    lidar_ego_pose: dict,
    camera_ego_pose: dict,
    camera_calibration: dict,
) -> Camera:
    """Build a Camera from raw nuScenes records.

    Each record is a dict with `translation` and `rotation` (w, x, y, z): the lidar and camera
    calibrated_sensor records (sensor -> ego) and the ego_pose records (ego -> global) at the lidar
    and at the camera timestamps. The chain is lidar -> ego(t_lidar) -> global -> ego(t_cam) -> cam.
    """
    K = np.asarray(intrinsic, dtype=np.float64)
    if K.shape != (3, 3):
        raise NuScenesFormatError(f"{name} ({token}): camera_intrinsic must be 3x3, got shape {K.shape}")
    lidar_to_camera = sensor_to_sensor(
        pose_matrix(lidar_calibration["translation"], lidar_calibration["rotation"]),
        pose_matrix(lidar_ego_pose["translation"], lidar_ego_pose["rotation"]),
        pose_matrix(camera_ego_pose["translation"], camera_ego_pose["rotation"]),
        pose_matrix(camera_calibration["translation"], camera_calibration["rotation"]),
    )
    return Camera(
        name=name,
        token=token,
        image_path=Path(image_path).resolve(),
        width=int(width),
        height=int(height),
        intrinsic=K,
        lidar_to_camera=lidar_to_camera,
    )


def project_points(
    xyz: np.ndarray, camera: Camera, bounds: Bounds = "pixel"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project LiDAR-frame points into a camera image.

    Returns uv (N, 2) float32 pixel coordinates (x right, y down; pixel centres at integers),
    depth (N,) float32 along the optical axis, and visible (N,) bool.

    visible = depth > 1 m and inside the image. `bounds` chooses the image test:
    - "pixel" (default): 0 <= u < W and 0 <= v < H, the nuScenes devkit / mmdetection3d rule; it
      reproduces the reference counts of the real sample (20,206 of 34,688 points).
    - "iupc": the normalised coordinates u/(W-1)*2-1 and v/(H-1)*2-1 lie strictly inside (-1, 1),
      i.e. 0 < u < W-1 and 0 < v < H-1, so grid_sample(align_corners=True) never reads padding.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must have shape (N, 3), got {xyz.shape}")
    p_cam = transform_points(camera.lidar_to_camera, xyz)
    depth = p_cam[:, 2]
    pix = p_cam @ camera.intrinsic.T
    # Points behind or on the image plane get NaN uv; they are never visible.
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.where(depth[:, None] > 1e-9, pix[:, :2] / depth[:, None], np.nan)
    u, v = uv[:, 0], uv[:, 1]
    W, H = camera.width, camera.height
    if bounds == "pixel":
        inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    elif bounds == "iupc":
        inside = (u > 0) & (u < W - 1) & (v > 0) & (v < H - 1)
    else:
        raise ValueError(f"bounds must be 'pixel' or 'iupc', got {bounds!r}")
    visible = (depth > MIN_DEPTH) & inside
    uv32 = uv.astype(np.float32)
    # Casting to float32 can round u = W - 1e-5 up to W; keep visible points strictly inside so
    # that floor(uv) is always a valid pixel index.
    limit = np.array([np.nextafter(np.float32(W), 0), np.nextafter(np.float32(H), 0)], dtype=np.float32)
    uv32[visible] = np.minimum(uv32[visible], limit)
    return uv32, depth.astype(np.float32), visible


def project_all(
    xyz: np.ndarray, cameras: list[Camera], bounds: Bounds = "pixel"
) -> tuple[np.ndarray, np.ndarray]:
    """Project points into every camera: uv (C, N, 2) float32 and visible (C, N) bool."""
    n = len(xyz)
    uv = np.empty((len(cameras), n, 2), dtype=np.float32)
    visible = np.empty((len(cameras), n), dtype=bool)
    for i, camera in enumerate(cameras):
        uv[i], _, visible[i] = project_points(xyz, camera, bounds)
    return uv, visible


def normalize_uv(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel coordinates -> [-1, 1] grid coordinates for grid_sample(align_corners=True)."""
    # float64 division first, so that the last pixel maps to exactly 1.0.
    size = np.array([width - 1, height - 1], dtype=np.float64)
    return (np.asarray(uv, dtype=np.float64) / size * 2.0 - 1.0).astype(np.float32)


def read_image(camera: Camera) -> np.ndarray:
    """Read a camera image as uint8 (H, W, 3) RGB; its size must match the sample_data record."""
    path = camera.image_path
    if not path.is_file():
        raise NuScenesFormatError(f"{path}: image of {camera.name} (sample_data {camera.token}) not found")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise NuScenesFormatError(f"{path}: not a readable image ({err})") from err
    if rgb.shape[:2] != (camera.height, camera.width):
        raise NuScenesFormatError(
            f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} but sample_data {camera.token} "
            f"says {camera.width}x{camera.height}"
        )
    return rgb


def cameras_from_calibration_json(path: str | os.PathLike, image_dir: str | os.PathLike) -> list[Camera]:
    """Cameras of a calibration file such as realdata/nuscenes/calibration_scene-0061_sample0.json.

    The Cameras are built from the file's raw calibrated_sensor / ego_pose records through the same
    chain as the table reader (make_camera); the file's precomputed 4x4 matrices are not used here,
    so they can serve as an independent check.
    """
    path = Path(path)
    if not path.is_file():
        raise NuScenesFormatError(f"{path}: calibration file not found")
    data = json.loads(path.read_text())

    def record(rec: dict) -> dict:
        return {"translation": rec["translation"], "rotation": rec["rotation_wxyz"]}

    try:
        lidar = data["lidar"]
        cameras = []
        for name in CAMERAS:
            cam = data["cameras"][name]
            cs = cam["nuscenes_calibrated_sensor"]
            cameras.append(
                make_camera(
                    name=name,
                    token=cam["sample_data_token"],
                    image_path=Path(image_dir) / cam["image_file"],
                    width=cam["width"],
                    height=cam["height"],
                    intrinsic=cs["camera_intrinsic"],
                    lidar_calibration=record(lidar["nuscenes_calibrated_sensor"]),
                    lidar_ego_pose=record(lidar["nuscenes_ego_pose"]),
                    camera_ego_pose=record(cam["nuscenes_ego_pose_at_camera_timestamp"]),
                    camera_calibration=record(cs),
                )
            )
    except KeyError as err:
        raise NuScenesFormatError(f"{path}: missing key {err} in the calibration file") from err
    return cameras
