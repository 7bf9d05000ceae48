"""Small synthetic scenes for the stage tests: a noisy ground plane with objects of known class."""

from __future__ import annotations

import numpy as np

GROUND_Z = -1.8
ROAD, SIDEWALK, MANMADE, VEGETATION = 11, 13, 15, 16
CAR, PEDESTRIAN = 4, 7


def ground_plane(
    rng: np.random.Generator, x=(6.0, 26.0), y=(-10.0, 10.0), step=0.3, noise=0.03
) -> np.ndarray:
    gx, gy = np.meshgrid(np.arange(*x, step), np.arange(*y, step), indexing="ij")
    pts = np.c_[gx.ravel(), gy.ravel(), np.full(gx.size, GROUND_Z)]
    pts[:, :2] += rng.uniform(-step / 3, step / 3, (len(pts), 2))
    pts[:, 2] += rng.normal(0.0, noise, len(pts))
    return pts


def box_surface(rng: np.random.Generator, center, size, n: int) -> np.ndarray:
    """Points on the sides and top of an axis-aligned box standing on the ground."""
    c, s = np.asarray(center, float), np.asarray(size, float)
    u = rng.uniform(-0.5, 0.5, (n, 3)) * s
    face = rng.integers(0, 5, n)  # 0-3: sides, 4: top
    for axis, sign, f in ((0, -1, 0), (0, 1, 1), (1, -1, 2), (1, 1, 3)):
        u[face == f, axis] = sign * s[axis] / 2
    u[face == 4, 2] = s[2] / 2
    out = u + c
    out[:, 2] += GROUND_Z + s[2] / 2
    return out


def cylinder_surface(rng: np.random.Generator, center_xy, radius: float, height: float, n: int) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi, n)
    return np.c_[
        center_xy[0] + radius * np.cos(a),
        center_xy[1] + radius * np.sin(a),
        GROUND_Z + rng.uniform(0, height, n),
    ]


def street_scene(seed: int = 0) -> dict[str, np.ndarray]:
    """Keyframe xyz, GT, visibility and sweeps of a small street: road, a car, a pedestrian, a wall.

    Points behind the ego (x < 0) are a few invisible ground points, as the FOV filter would drop.
    """
    rng = np.random.default_rng(seed)
    ground = ground_plane(rng)
    ground_gt = np.where(ground[:, 1] > 6.0, SIDEWALK, ROAD)
    car = box_surface(rng, (12.0, 3.0, 0.0), (4.0, 1.8, 1.5), 400)
    ped = cylinder_surface(rng, (16.0, -4.0), 0.3, 1.7, 120)
    wall = np.c_[np.full(300, 24.5), rng.uniform(-8, -2, 300), GROUND_Z + rng.uniform(0.3, 3.0, 300)]
    hidden = np.c_[rng.uniform(-20, -6, (200, 2)), np.full(200, GROUND_Z)]
    xyz = np.concatenate([ground, car, ped, wall, hidden])
    gt = np.concatenate(
        [
            ground_gt,
            np.full(len(car), CAR),
            np.full(len(ped), PEDESTRIAN),
            np.full(len(wall), MANMADE),
            np.zeros(200),
        ]
    ).astype(np.uint8)
    visible = np.ones(len(xyz), dtype=bool)
    visible[-200:] = False
    kind = np.concatenate(
        [
            np.zeros(len(ground)),
            np.ones(len(car)),
            np.full(len(ped), 2),
            np.full(len(wall), 3),
            np.full(200, 4),
        ]
    ).astype(np.int64)
    # One earlier "sweep": the ground seen again from slightly further back, plus ego-body returns.
    sweep = ground_plane(rng, step=0.5)
    ego = rng.uniform(-0.9, 0.9, (50, 3))
    perm = rng.permutation(len(xyz))  # raw order is not grouped by object
    return {
        "xyz": xyz[perm].astype(np.float32),
        "gt": gt[perm],
        "visible": visible[perm],
        "kind": kind[perm],  # 0 ground, 1 car, 2 pedestrian, 3 wall, 4 hidden
        "sweeps": np.concatenate([sweep, ego]).astype(np.float32),
    }
