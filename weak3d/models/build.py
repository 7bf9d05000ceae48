"""Build the network named in the training config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import kernels
from weak3d.classes import NUM_CLASSES
from weak3d.models.iupc import IUPCNet
from weak3d.models.minkunet import MinkUNet
from weak3d.models.spvcnn import SPVCNN

IN_CHANNELS = 4  # x, y, z, intensity
MODELS = ("minkunet", "spvcnn", "iupc")


class VoxelSPVCNN(SPVCNN):
    """SPVCNN fed like MinkUNet: one point per voxel at its integer voxel coordinates (as IUPC)."""

    def forward(  # type: ignore[override]
        self, x: kernels.SparseTensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        points = kernels.PointTensor(x.feats, x.coords.float())
        if not return_features:
            return super().forward(points)
        logits, features = super().forward(points, return_features=True)
        return logits, {**features, "voxel_features": features["point_features"]}


def build_model(
    name: str,
    cr: float,
    num_classes: int = NUM_CLASSES,
    image_weights: str | Path | None = None,
    image_size: tuple[int, int] = (360, 640),
) -> torch.nn.Module:
    """A fresh network; `name` is the config key train.model.

    3D weights are always random. `image_weights` (iupc only) is a local ImageNet ResNet-18 file
    for the 2D encoder; without it the 2D branch is randomly initialised too. `image_size` (H, W):
    the camera image size iupc is fed at (stored in its state dict).
    """
    if name == "minkunet":
        return MinkUNet(in_channels=IN_CHANNELS, num_classes=num_classes, cr=cr)
    if name == "spvcnn":
        return VoxelSPVCNN(in_channels=IN_CHANNELS, num_classes=num_classes, cr=cr)
    if name == "iupc":
        return IUPCNet(
            in_channels=IN_CHANNELS,
            num_classes=num_classes,
            cr=cr,
            image_weights=image_weights,
            image_size=tuple(image_size),
        )
    raise ValueError(f"config key train.model: unknown model '{name}' (known: {', '.join(MODELS)})")
