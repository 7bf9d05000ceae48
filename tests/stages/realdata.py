"""The real nuScenes sweep and images of ../shared/realdata (never copied into the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
NUSC = SHARED / "realdata" / "nuscenes"


def real_sweep() -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 5) float32, camera-visible mask) of the real 34,688-point LIDAR_TOP sweep."""
    (path,) = NUSC.glob("*LIDAR_TOP*.pcd.bin")
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
    calib = json.loads((NUSC / "calibration_scene-0061_sample0.json").read_text())
    hom = np.c_[pts[:, :3].astype(np.float64), np.ones(len(pts))]
    visible = np.zeros(len(pts), dtype=bool)
    for cam in calib["cameras"].values():
        p = hom @ np.asarray(cam["lidar2img"]).T
        depth = p[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = p[:, 0] / depth, p[:, 1] / depth
        visible |= (depth > 1.0) & (u >= 0) & (u < cam["width"]) & (v >= 0) & (v < cam["height"])
    return pts, visible


def real_images() -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(NUSC.glob("*__CAM_*.jpg"))]
