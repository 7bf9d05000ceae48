"""Batches for IUPC's fused 2D/3D network: keyframes with their camera images and superpixels.

Adds to `weak3d.train.data` (whose voxelization and targets are reused unchanged), per the IUPC
notes §3-§5:
- the 6 camera images of each keyframe, resized to `image_size` (360x640 in the seed) with PIL's
  bilinear filter, fed as raw 0-255 floats;
- for each voxel's kept point: the camera it is read from (the last visible one in the seed's
  camera order) and its normalised image coordinate for grid_sample(align_corners=True). The uv
  come from preprocessing, i.e. from the un-augmented coordinates, so the yaw/scale augmentation
  of the voxels never moves a point in the images (the seed projects before rotating too);
- the point's superpixel id (offset per camera so ids are unique within the keyframe) and the
  association target: the sparse points, plus every point of a superpixel whose sparse labels
  are all one class.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from weak3d.io import read_h5_groups
from weak3d.models.fusion import CameraInputs
from weak3d.train.data import Batch, Keyframe, load_keyframes, make_batch

# The seed's camera order; a point seen by several cameras takes the *last* of these.
SEED_CAMERA_ORDER = (
    "CAM_FRONT_LEFT",
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_BACK_LEFT",
    "CAM_BACK",
    "CAM_BACK_RIGHT",
)
IMAGE_CACHE_SIZE = 6 * 512  # resized images kept in memory (~0.7 MB each at 360x640)


@dataclass
class CameraKeyframe(Keyframe):
    """A keyframe with its camera projection, image files and (train split) superpixels.

    uv: (C, N, 2) full-resolution pixel coordinates; visible: (C, N); cameras: the preprocess
    `cameras` records (name, image path relative to `image_root`, width, height), in uv's order;
    superpixels: (C, H', W') label maps or None.
    """

    uv: np.ndarray = None  # type: ignore[assignment]
    visible: np.ndarray = None  # type: ignore[assignment]
    cameras: list[dict] = None  # type: ignore[assignment]
    image_root: Path | None = None
    superpixels: np.ndarray | None = None


def load_camera_keyframes(
    scene_files: list[str | Path],
    weak_dir: str | Path | None = None,
    pseudo_dir: str | Path | None = None,
    superpixel_dir: str | Path | None = None,
    image_root: str | Path | None = None,
) -> list[CameraKeyframe]:
    """`load_keyframes` plus uv, visibility, camera records and superpixels found beside them."""
    frames = []
    for path in map(Path, scene_files):
        scene = read_h5_groups(path, keys=["uv", "visible"])
        superpixels = {}
        if superpixel_dir is not None and (Path(superpixel_dir) / path.name).exists():
            superpixels = read_h5_groups(Path(superpixel_dir) / path.name)
        for frame in load_keyframes([path], weak_dir=weak_dir, pseudo_dir=pseudo_dir):
            group = scene[frame.token]
            cameras = json.loads(group["cameras"])
            if len(cameras) != group["uv"].shape[0]:
                raise ValueError(
                    f"{path}: token {frame.token} has {len(cameras)} cameras but uv for "
                    f"{group['uv'].shape[0]}"
                )
            base = {f.name: getattr(frame, f.name) for f in fields(Keyframe)}
            frames.append(
                CameraKeyframe(
                    **base,
                    uv=group["uv"],
                    visible=group["visible"],
                    cameras=cameras,
                    image_root=Path(image_root) if image_root is not None else None,
                    superpixels=superpixels.get(frame.token, {}).get("superpixels"),
                )
            )
    return frames


def last_visible_camera(visible: np.ndarray, names: list[str]) -> np.ndarray:
    """Per point, the row of the camera it is read from (-1: none): the last visible one in
    SEED_CAMERA_ORDER (cameras with other names rank after those, in their own order)."""
    rank = np.array(
        [
            SEED_CAMERA_ORDER.index(n) if n in SEED_CAMERA_ORDER else len(SEED_CAMERA_ORDER) + i
            for i, n in enumerate(names)
        ]
    )
    score = np.where(visible, rank[:, None] + 1, 0)
    best = score.argmax(axis=0)
    return np.where(score.max(axis=0) > 0, best, -1)


def normalized_grid(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel (u, v) -> [-1, 1] with the first / last pixel centres at -1 / +1 (align_corners=True).

    Resolution independent: the same grid addresses a resized image or a superpixel map.
    """
    size = np.array([width - 1, height - 1], dtype=np.float64)
    return (np.asarray(uv, np.float64) / size * 2.0 - 1.0).astype(np.float32)


def superpixel_ids(maps: np.ndarray, camera: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Superpixel id of each point (-1 without a camera), offset per camera to be unique.

    maps: (C, H', W'); camera: (n,) row or -1; grid: (n, 2). The pixel is
    floor((g + 1) / 2 * (size - 1)), the seed's lookup.
    """
    counts = maps.reshape(len(maps), -1).max(axis=1).astype(np.int64) + 1
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    height, width = maps.shape[1:]
    ids = np.full(len(camera), -1, dtype=np.int64)
    seen = camera >= 0
    x = np.clip(np.floor((grid[seen, 0] + 1.0) / 2.0 * (width - 1)), 0, width - 1).astype(np.int64)
    y = np.clip(np.floor((grid[seen, 1] + 1.0) / 2.0 * (height - 1)), 0, height - 1).astype(np.int64)
    ids[seen] = maps[camera[seen], y, x].astype(np.int64) + offsets[camera[seen]]
    return ids


def association_target(sparse: np.ndarray, superpixel: np.ndarray) -> np.ndarray:
    """Class per point for the 2D side of the association (0 = not a target).

    Sparse points keep their label; every other point of a superpixel whose sparse labels are all
    one class gets that class. Superpixels with mixed or no clicks give nothing.
    """
    target = np.asarray(sparse, dtype=np.int64).copy()
    clicked = (target > 0) & (superpixel >= 0)
    if not clicked.any():
        return target
    ids, inverse = np.unique(superpixel[clicked], return_inverse=True)
    low = np.full(len(ids), np.iinfo(np.int64).max)
    high = np.full(len(ids), -1)
    np.minimum.at(low, inverse, target[clicked])
    np.maximum.at(high, inverse, target[clicked])
    pure_ids, pure_class = ids[low == high], low[low == high]
    if len(pure_ids) == 0:
        return target
    slot = np.clip(np.searchsorted(pure_ids, superpixel), 0, len(pure_ids) - 1)
    fill = (superpixel >= 0) & (pure_ids[slot] == superpixel) & (target == 0)
    target[fill] = pure_class[slot[fill]]
    return target


@functools.lru_cache(maxsize=IMAGE_CACHE_SIZE)
def read_resized(path: str, height: int, width: int) -> np.ndarray:
    """A camera image as read-only uint8 (height, width, 3), resized like the seed.

    PIL bilinear, which widens its filter when shrinking (torchvision's Resize on PIL images).
    Cached, because every epoch reads the same images and decoding dominates the batch time.
    """
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.uint8).copy()
    except OSError as err:
        raise RuntimeError(f"{path}: cannot read camera image ({err})") from err
    array.flags.writeable = False
    return array


def camera_images(frame: CameraKeyframe, image_size: tuple[int, int]) -> np.ndarray:
    """(C, 3, H, W) float32 raw 0-255 images of a keyframe, in the order of its uv rows."""
    if frame.image_root is None:
        raise ValueError(f"keyframe {frame.token}: no image root given (the rule's params.root)")
    height, width = image_size
    images = [read_resized(str(frame.image_root / cam["image"]), height, width) for cam in frame.cameras]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)


@dataclass
class CameraBatch:
    """A voxel batch (`weak3d.train.data.Batch`) plus, per voxel, its image read and targets."""

    batch: Batch
    cameras: CameraInputs
    assoc_target: torch.Tensor  # (V,) class for the association's 2D side, 0 = none
    superpixel: torch.Tensor  # (V,) superpixel id within the keyframe, -1 = none

    def to(self, device: torch.device) -> CameraBatch:
        return replace(
            self,
            batch=self.batch.to(device),
            cameras=self.cameras.to(device),
            assoc_target=self.assoc_target.to(device),
            superpixel=self.superpixel.to(device),
        )


def make_camera_batch(
    frames: list[CameraKeyframe],
    voxel_size: float,
    image_size: tuple[int, int],
    rng: np.random.Generator | None = None,
    fov_only: bool = True,
    augment: bool = False,
) -> CameraBatch:
    """`make_batch`, then the images, image reads, superpixels and association target per voxel."""
    batch = make_batch(frames, voxel_size, rng=rng, fov_only=fov_only, augment=augment)
    frame_of_voxel, point_of_voxel = batch.voxel_point_index[:, 0], batch.voxel_point_index[:, 1]
    n_voxels = len(point_of_voxel)
    image_index = np.full(n_voxels, -1, dtype=np.int64)
    grid = np.zeros((n_voxels, 2), dtype=np.float32)
    superpixel = np.full(n_voxels, -1, dtype=np.int64)
    assoc = np.zeros(n_voxels, dtype=np.int64)
    images, first_image = [], 0
    for b, frame in enumerate(frames):
        if not isinstance(frame, CameraKeyframe):
            raise TypeError(
                f"keyframe {frame.token}: the iupc model needs camera keyframes "
                "(weak3d.train.iupc_data.load_camera_keyframes)"
            )
        rows = np.flatnonzero(frame_of_voxel == b)
        points = point_of_voxel[rows]
        camera = last_visible_camera(frame.visible[:, points], [c["name"] for c in frame.cameras])
        seen = camera >= 0
        for c, cam in enumerate(frame.cameras):
            on = seen & (camera == c)
            grid[rows[on]] = normalized_grid(frame.uv[c, points[on]], cam["width"], cam["height"])
        image_index[rows[seen]] = first_image + camera[seen]
        if frame.superpixels is not None:
            ids = superpixel_ids(frame.superpixels, camera, grid[rows])
            superpixel[rows] = ids
            if "sparse" in frame.extra:
                assoc[rows] = association_target(frame.extra["sparse"][points], ids)
        images.append(camera_images(frame, image_size))
        first_image += len(frame.cameras)
    cameras = CameraInputs(
        images=torch.from_numpy(np.concatenate(images)),
        image_index=torch.from_numpy(image_index),
        grid=torch.from_numpy(grid),
    )
    return CameraBatch(batch, cameras, torch.from_numpy(assoc), torch.from_numpy(superpixel))
