"""Camera keyframes for IUPC tests: the toy keyframe plus 6 small images, uv, and superpixels."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
from PIL import Image

from tests.train.synthetic import toy_keyframe
from weak3d.datasets.camera import CAMERAS
from weak3d.train.data import Keyframe
from weak3d.train.iupc_data import CameraKeyframe

# weak3d's camera order (the devkit's), which differs from the seed's.
CAMERA_NAMES = list(CAMERAS)
WIDTH, HEIGHT = 160, 90  # the "full-resolution" images of the test world
SP_SHAPE = (9, 16)  # superpixel maps: 10x10-pixel blocks, ids row-major within each camera


def block_superpixels() -> np.ndarray:
    ids = np.arange(SP_SHAPE[0] * SP_SHAPE[1], dtype=np.uint16).reshape(SP_SHAPE)
    return np.stack([ids] * len(CAMERA_NAMES))


def camera_keyframe(seed: int, root: Path, with_superpixels: bool = True, **toy: int) -> CameraKeyframe:
    """The toy keyframe with each point visible in 1-3 random cameras at random pixels."""
    frame: Keyframe = toy_keyframe(seed, **toy)
    rng = np.random.default_rng(1000 + seed)
    n = len(frame.points)
    visible = rng.random((len(CAMERA_NAMES), n)) < 0.25
    visible[rng.integers(0, len(CAMERA_NAMES), n), np.arange(n)] = True
    uv = np.stack(
        [
            rng.uniform(0, WIDTH - 1, (len(CAMERA_NAMES), n)),
            rng.uniform(0, HEIGHT - 1, (len(CAMERA_NAMES), n)),
        ],
        axis=2,
    ).astype(np.float32)
    cameras = []
    for c, name in enumerate(CAMERA_NAMES):
        rel = f"samples/{name}/{frame.token}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / rel)
        cameras.append(
            {"name": name, "token": f"{frame.token}-{c}", "image": rel, "width": WIDTH, "height": HEIGHT}
        )
    base = {f.name: getattr(frame, f.name) for f in fields(Keyframe)}
    return CameraKeyframe(
        **base,
        uv=uv,
        visible=visible,
        cameras=cameras,
        image_root=root,
        superpixels=block_superpixels() if with_superpixels else None,
    )
