"""The E-step driver: run the previous model over the training keyframes and apply IUPC's rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from weak3d.config import config_from_dict
from weak3d.estep import estep_iteration1, estep_iteration2, pseudo_label_quality
from weak3d.train.data import Keyframe
from weak3d.train.loop import predict_frame


@dataclass
class EstepConfig:
    classifier_margin: float = 0.1  # threshold max(floor, class max - margin) on the classifier
    prototype_margin: float = 0.4  # the same on prototype scores
    floor: float = 0.5
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EstepConfig:
        return config_from_dict(cls, values, "estep")


def pseudo_labels(
    model: torch.nn.Module,
    frame: Keyframe,
    iteration: int,
    voxel_size: float,
    cfg: EstepConfig,
    device: torch.device,
) -> np.ndarray:
    """Full-scan uint8 pseudo-labels of one keyframe (0 = none) for E-step `iteration` (1 or 2)."""
    idx, probs, feats = predict_frame(model, frame, voxel_size, device, fov_only=True)
    probs, feats = probs.numpy(), feats.numpy()
    sparse = frame.extra["sparse"][idx]
    margins = {"margin_cls": cfg.classifier_margin, "margin_proto": cfg.prototype_margin, "floor": cfg.floor}
    if iteration == 1:
        labels = estep_iteration1(probs, feats, sparse, frame.extra["candidates"][idx], **margins)
    else:
        labels = estep_iteration2(
            probs, feats, sparse, frame.extra["propagated"][idx], frame.extra["pseudo"][idx], **margins
        )
    full = np.zeros(len(frame.points), dtype=np.uint8)
    full[idx] = labels
    return full


def pseudo_region(frame: Keyframe, iteration: int) -> np.ndarray:
    """The points an E-step may label: candidate-set points (1), or unlabelled FOV points (2+)."""
    if iteration == 1:
        return frame.extra["candidates"] != 0
    return frame.fov & (frame.extra["sparse"] == 0) & (frame.extra["propagated"] == 0)


def quality(frames: list[Keyframe], pseudo: dict[str, np.ndarray], iteration: int) -> dict[str, Any]:
    """Precision and coverage of one E-step's pseudo-labels against ground truth, over all keyframes."""
    labels = np.concatenate([pseudo[f.token] for f in frames])
    gt = np.concatenate([f.labels for f in frames])
    region = np.concatenate([pseudo_region(f, iteration) for f in frames])
    visible = np.concatenate([f.fov for f in frames])
    return {"iteration": iteration, **pseudo_label_quality(labels, gt, region, visible)}
