"""Training data: per-scene HDF5 files -> keyframes -> voxelized sparse batches.

Following IUPC, only camera-visible (FOV) points are used for training and evaluation, and one
point is kept per voxel with labelled points preferred; predictions go back to every point through
the inverse map.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

import kernels
from weak3d.io import read_h5_groups

LABEL_KEYS = ("labels", "sparse", "propagated", "candidates", "pseudo")


@dataclass
class Keyframe:
    """One keyframe's points and every label array we have for it, in raw point order."""

    token: str
    points: np.ndarray  # (N, 4) x, y, z, intensity
    fov: np.ndarray  # (N,) visible in at least one camera
    labels: np.ndarray  # (N,) ground truth, 16 classes (0 = ignore / unlabelled)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # sparse, propagated, candidates, pseudo


def load_keyframes(
    scene_files: list[str | Path],
    weak_dir: str | Path | None = None,
    pseudo_dir: str | Path | None = None,
) -> list[Keyframe]:
    """Read preprocessed scenes and attach weak labels and pseudo-labels found beside them."""
    frames = []
    for path in scene_files:
        path = Path(path)
        scene = read_h5_groups(path, keys=["points", "labels", "visible"])
        weak = _optional_groups(weak_dir, path.name)
        pseudo = _optional_groups(pseudo_dir, path.name)
        for token in sorted(scene):
            group = scene[token]
            extra = {}
            if token in weak:
                extra.update({k: weak[token][k] for k in ("sparse", "propagated", "candidates")})
            if token in pseudo:
                extra["pseudo"] = pseudo[token]["pseudo"]
            frames.append(
                Keyframe(
                    token=token,
                    points=group["points"],
                    fov=group["visible"].any(axis=0),
                    labels=group["labels"],
                    extra=extra,
                )
            )
    return frames


def _optional_groups(folder: str | Path | None, name: str) -> dict:
    if folder is None:
        return {}
    path = Path(folder) / name
    return read_h5_groups(path) if path.exists() else {}


@dataclass
class Batch:
    """A voxelized batch: the sparse input and, per voxel, the label arrays of its kept point."""

    tensor: kernels.SparseTensor
    targets: dict[str, torch.Tensor]
    point_to_voxel: list[np.ndarray]  # per keyframe: voxel index (within the batch) of each used point
    point_index: list[np.ndarray]  # per keyframe: indices of the used points in raw order
    voxel_point_index: np.ndarray  # per voxel: (keyframe number in batch, raw point index)

    def to(self, device: torch.device) -> Batch:
        # A fresh batch has no cached kernel maps yet, so rebuilding the tensor on `device` is exact.
        tensor = kernels.SparseTensor(self.tensor.feats.to(device), self.tensor.coords.to(device))
        return replace(self, tensor=tensor, targets={k: v.to(device) for k, v in self.targets.items()})


def label_priority(frame: Keyframe) -> np.ndarray:
    """Which point a voxel keeps: clicked > propagated > pseudo > candidate set > none."""
    priority = np.zeros(len(frame.points), dtype=np.int64)
    for rank, key in enumerate(("candidates", "pseudo", "propagated", "sparse"), start=1):
        if key in frame.extra:
            priority = np.where(frame.extra[key] > 0, rank, priority)
    return priority


def make_batch(
    frames: list[Keyframe],
    voxel_size: float,
    rng: np.random.Generator | None = None,
    fov_only: bool = True,
    augment: bool = False,
) -> Batch:
    """Voxelize keyframes into one SparseTensor (batch index first) with per-voxel targets."""
    feats, coords, to_voxel, used, keep_pairs = [], [], [], [], []
    targets: dict[str, list[np.ndarray]] = {}
    offset = 0
    for b, frame in enumerate(frames):
        idx = np.flatnonzero(frame.fov) if fov_only else np.arange(len(frame.points))
        pts = frame.points[idx]
        xyz = pts[:, :3].astype(np.float64)
        if augment and rng is not None:
            xyz = _yaw_scale(xyz, rng)
        voxel_coords, keep, inverse = kernels.sparse_quantize(
            xyz / voxel_size, 1.0, priority=label_priority(frame)[idx]
        )
        voxel_coords = voxel_coords - voxel_coords.min(axis=0)  # non-negative grid per keyframe
        coords.append(np.concatenate([np.full((len(keep), 1), b), voxel_coords], axis=1))
        kept = pts[keep]
        feats.append(np.concatenate([xyz[keep], kept[:, 3:4] / 255.0], axis=1))
        to_voxel.append(inverse + offset)
        used.append(idx)
        keep_pairs.append(np.stack([np.full(len(keep), b), idx[keep]], axis=1))
        for key in LABEL_KEYS:
            source = frame.labels if key == "labels" else frame.extra.get(key)
            if source is not None:
                targets.setdefault(key, []).append(source[idx][keep])
        offset += len(keep)
    tensor = kernels.SparseTensor(
        torch.from_numpy(np.concatenate(feats).astype(np.float32)),
        torch.from_numpy(np.concatenate(coords).astype(np.int32)),
    )
    stacked = {
        k: torch.from_numpy(np.concatenate(v).astype(np.int64))
        for k, v in targets.items()
        if len(v) == len(frames)
    }
    return Batch(tensor, stacked, to_voxel, used, np.concatenate(keep_pairs))


def _yaw_scale(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """IUPC's training augmentation: a random yaw in [0, 2 pi) and a uniform scale in [0.95, 1.05]."""
    theta = rng.uniform(0.0, 2.0 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return (xyz @ rot.T) * rng.uniform(0.95, 1.05)
