"""Build the 3D network named in the training config."""

from __future__ import annotations

import torch

from weak3d.classes import NUM_CLASSES
from weak3d.models.minkunet import MinkUNet

IN_CHANNELS = 4  # x, y, z, intensity


def build_model(name: str, cr: float, num_classes: int = NUM_CLASSES) -> torch.nn.Module:
    """A fresh, randomly initialised network; `name` is the config key train.model."""
    if name == "minkunet":
        return MinkUNet(in_channels=IN_CHANNELS, num_classes=num_classes, cr=cr)
    raise ValueError(f"config key train.model: unknown model '{name}' (known: minkunet)")
