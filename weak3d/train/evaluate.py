"""Evaluate a checkpoint: the `.miou` JSON of DESIGN.md (FOV points as in the paper, and full scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from weak3d.models.build import build_model
from weak3d.train.data import Keyframe
from weak3d.train.loop import evaluate_frames


def load_checkpoint(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the network of a training checkpoint and load its best-on-val weights."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    cfg = ckpt["config"]
    model = build_model(cfg["model"], cr=cfg["cr"]).to(device)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, ckpt


def evaluate_checkpoint(
    path: str | Path, frames: list[Keyframe], device: torch.device, full_scan: bool = True
) -> dict[str, Any]:
    """mIoU on camera-visible points (the paper's protocol) and, optionally, on the full scans."""
    model, ckpt = load_checkpoint(path, device)
    voxel_size = ckpt["config"]["voxel_size"]
    fov = evaluate_frames(model, frames, voxel_size, device, fov_only=True)
    full = evaluate_frames(model, frames, voxel_size, device, fov_only=False) if full_scan else None
    return {
        "miou": fov["miou"],
        "per_class": fov["per_class"],
        "split": "val",
        "points": "fov",
        "miou_full_scan": full["miou"] if full else None,
        "checkpoint": str(path),
        "best_epoch": ckpt["epoch"],
        "n_points": fov["n_points"],
        "n_keyframes": len(frames),
    }
