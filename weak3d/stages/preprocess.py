"""Preprocess: one keyframe -> points, labels, camera projection and visibility, previous sweeps.

Arrays keep the point order of the raw sweep, so every later stage indexes the same points.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from weak3d.datasets.nuscenes import NuScenes, project_all


def preprocess_sample(nusc: NuScenes, sample_token: str, n_sweeps: int = 5) -> dict[str, Any]:
    """Everything the later stages need from one keyframe, as arrays and attributes."""
    sample = nusc.load_sample(sample_token)
    xyz = sample.points[:, :3]
    uv, visible = project_all(xyz, sample.cameras)
    n = len(xyz)
    labels = sample.labels if sample.labels is not None else np.zeros(n, np.uint8)
    sweeps = nusc.previous_sweeps(sample_token, n=n_sweeps)[:, :3] if n_sweeps else np.zeros((0, 3))
    cameras = [
        {
            "name": cam.name,
            "token": cam.token,
            "image": str(cam.image_path.relative_to(nusc.root)),
            "width": cam.width,
            "height": cam.height,
        }
        for cam in sample.cameras
    ]
    return {
        "points": np.ascontiguousarray(sample.points[:, :4], dtype=np.float32),
        "ring": sample.points[:, 4].astype(np.uint8),
        "labels": labels.astype(np.uint8),
        "uv": uv.astype(np.float32),
        "visible": visible.astype(bool),
        "sweeps": np.ascontiguousarray(sweeps, dtype=np.float32),
        "lidar_token": sample.lidar_token,
        "timestamp": int(sample.timestamp),
        "scene": sample.scene_name,
        "has_labels": sample.labels is not None,
        "cameras": json.dumps(cameras),
    }
