"""Small hand-made keyframes for training tests: a labelled ground plane with two kinds of boxes."""

from __future__ import annotations

import numpy as np

from weak3d.train.data import Keyframe


def toy_keyframe(seed: int, n_ground: int = 1500, n_box: int = 300) -> Keyframe:
    """Ground (class 11) with a car-like box (4) and a pole-like box (15); every point is visible."""
    rng = np.random.default_rng(seed)
    ground = np.c_[rng.uniform(-15, 15, (n_ground, 2)), rng.normal(0, 0.02, n_ground)]
    car = rng.uniform([2, 2, 0], [6, 4, 1.5], (n_box, 3))
    pole = rng.uniform([-4, -4, 0], [-3.7, -3.7, 4], (n_box, 3))
    xyz = np.concatenate([ground, car, pole]).astype(np.float32)
    labels = np.repeat(np.array([11, 4, 15], np.uint8), [n_ground, n_box, n_box])
    points = np.c_[xyz, rng.uniform(0, 255, len(xyz))].astype(np.float32)
    sparse = np.zeros_like(labels)
    for c in (11, 4, 15):
        sparse[rng.choice(np.flatnonzero(labels == c), 3, replace=False)] = c
    candidates = np.where(labels == 11, 0, (1 << 4) | (1 << 15)).astype(np.uint32)
    extra = {
        "sparse": sparse,
        "propagated": np.where(labels == 11, 11, sparse).astype(np.uint8),
        "candidates": candidates,
    }
    return Keyframe(
        token=f"tok{seed}", points=points, fov=np.ones(len(xyz), bool), labels=labels, extra=extra
    )
