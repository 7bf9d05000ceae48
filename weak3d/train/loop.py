"""The training loop shared by pretraining (iteration 0), the M-steps and the full-label bound.

As in the IUPC seed: SGD with Nesterov momentum, linear warm-up then a per-iteration cosine
schedule, yaw and scale augmentation, validation after every epoch, and the best-on-val weights
kept for the next E-step.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weak3d.classes import NUM_CLASSES
from weak3d.config import config_from_dict
from weak3d.io import atomic_path
from weak3d.losses import IUPCLossConfig, ce_lovasz, iupc_total_loss
from weak3d.metrics import confusion_matrix, miou_summary
from weak3d.models.build import build_model
from weak3d.train import distributed
from weak3d.train.data import Batch, Keyframe, make_batch
from weak3d.train.iupc_step import is_iupc, iupc_step_loss, predict_camera_frame

log = logging.getLogger(__name__)
MODES = ("pretrain", "mstep", "full")


@dataclass
class TrainConfig:
    model: str = "minkunet"
    cr: float = 0.5
    voxel_size: float = 0.1
    epochs: int = 6
    batch_size: int = 2
    lr: float = 0.24
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 0
    amp: bool = False
    seed: int = 0
    association: bool = True  # iupc: the cross-modal association loss (False = the ablation)
    image_size: tuple[int, int] = (360, 640)  # iupc: camera images fed at (H, W)
    image_weights: str | None = None  # iupc: local ImageNet ResNet-18 file; None = random init

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, values, "train")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key device: 'cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` iterations, then half a cosine down to zero at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def batches(frames: list[Keyframe], size: int, rng: np.random.Generator) -> Iterator[list[Keyframe]]:
    order = rng.permutation(len(frames))
    for start in range(0, len(order), size):
        yield [frames[i] for i in order[start : start + size]]


def training_loss(logits: torch.Tensor, batch: Batch, mode: str) -> torch.Tensor:
    """The loss of each mode: all labels (full), or IUPC's weak-label terms (+ pseudo-labels in M-steps)."""
    t = batch.targets
    if mode == "full":
        return ce_lovasz(logits, t["labels"])
    is_mstep = mode == "mstep"
    total, _ = iupc_total_loss(
        logits,
        t["sparse"],
        t["propagated"],
        t["candidates"],
        pseudo=t["pseudo"] if is_mstep else None,
        config=IUPCLossConfig.mstep() if is_mstep else IUPCLossConfig.pretrain(),
    )
    return total


def train(
    cfg: TrainConfig,
    mode: str,
    train_frames: list[Keyframe],
    val_frames: list[Keyframe],
    device: torch.device,
    resume_path: str | Path | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train from scratch; return the best-on-val checkpoint and the per-epoch history.

    With `resume_path`, the whole training state (weights, optimizer, schedule, random generators,
    best so far) is saved there atomically after every epoch, and a run that finds the file carries
    on from it: a job killed mid-run and restarted ends with the same weights as one never killed.
    """
    if mode not in MODES:
        raise ValueError(f"training mode '{mode}' is not one of {MODES}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg.model, cr=cfg.cr, image_weights=cfg.image_weights, image_size=cfg.image_size)
    model = model.to(device)
    # Several processes (torchrun): DDP with synced BatchNorm; `model` itself in one process.
    net = distributed.wrap(model, find_unused_parameters=cfg.model == "iupc")
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    per_epoch = math.ceil(len(train_frames) / cfg.batch_size)
    total = per_epoch * cfg.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cfg.warmup_iters, total)
    )
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    best: dict[str, Any] = {"val_miou": -1.0}
    history: list[dict[str, Any]] = []
    first_epoch = 0
    if resume_path is not None and Path(resume_path).exists():
        state = torch.load(resume_path, map_location=device, weights_only=False)
        if state["config"] != asdict(cfg) or state["mode"] != mode:
            raise ValueError(f"{resume_path}: saved for other settings; delete it to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        best, history, first_epoch = state["best"], state["history"], state["epoch"] + 1
        log.info("resuming from %s after epoch %d", resume_path, state["epoch"])
    for epoch in range(first_epoch, cfg.epochs):
        model.train()
        start, losses = time.time(), []
        for frames in batches(train_frames, cfg.batch_size, rng):
            if cfg.model == "iupc":
                loss = iupc_step_loss(
                    net, frames, mode, cfg.voxel_size, rng, device, use_amp, cfg.association
                )
            else:
                shard = distributed.shard_batch(frames, cfg.voxel_size, rng)  # this process's keyframes
                batch = shard.batch.to(device)
                with torch.autocast(device.type, enabled=use_amp), shard.context(net):
                    logits = net(batch.tensor)
                loss = training_loss(*shard.gather(logits.float(), batch), mode)  # whole-batch loss
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
        # Each process scores its share of the validation keyframes; the counts are summed.
        cm = frames_confusion(model, distributed.shard(val_frames), cfg.voxel_size, device)
        val = miou_summary(distributed.all_reduce_sum(cm))
        val["miou"] = val["miou"] or 0.0  # None when no class is defined yet
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "val_miou": val["miou"],
            "seconds": round(time.time() - start, 2),
        }
        history.append(record)
        log.info(
            "epoch %d loss %.4f val mIoU %.2f (%.1fs)", epoch, record["loss"], val["miou"], record["seconds"]
        )
        if val["miou"] > best["val_miou"]:
            best = {
                "state_dict": copy.deepcopy(model.state_dict()),
                "epoch": epoch,
                "val_miou": val["miou"],
                "config": asdict(cfg),
                "mode": mode,
            }
        if resume_path is not None and distributed.is_main():
            state = {
                "epoch": epoch,
                "config": asdict(cfg),
                "mode": mode,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state,
                "best": best,
                "history": history,
            }
            with atomic_path(resume_path) as tmp:
                torch.save(state, tmp)
    return best, history


@torch.no_grad()
def predict_frame(
    model: torch.nn.Module, frame: Keyframe, voxel_size: float, device: torch.device, fov_only: bool = True
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Per-point class probabilities and features for the used points of one keyframe.

    Returns (point indices in raw order, probabilities (n, C), features (n, D)); every point takes
    the prediction of its voxel.
    """
    if is_iupc(model):  # the fused network also needs the frame's images
        return predict_camera_frame(model, frame, voxel_size, device, fov_only)
    model.eval()
    batch = make_batch([frame], voxel_size, fov_only=fov_only).to(device)
    logits, features = model(batch.tensor, return_features=True)
    voxel = torch.from_numpy(batch.point_to_voxel[0]).to(device)
    probs = torch.softmax(logits.float(), dim=1)[voxel]
    return batch.point_index[0], probs.cpu(), features["voxel_features"].float()[voxel].cpu()


def evaluate_frames(
    model: torch.nn.Module,
    frames: list[Keyframe],
    voxel_size: float,
    device: torch.device,
    fov_only: bool = True,
) -> dict[str, Any]:
    """Point-level mIoU over keyframes (FOV points by default, as the IUPC protocol)."""
    return miou_summary(frames_confusion(model, frames, voxel_size, device, fov_only))


def frames_confusion(
    model: torch.nn.Module,
    frames: list[Keyframe],
    voxel_size: float,
    device: torch.device,
    fov_only: bool = True,
) -> np.ndarray:
    """The point-level confusion matrix of `evaluate_frames` (sums over processes, unlike mIoU)."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for frame in frames:
        idx, probs, _ = predict_frame(model, frame, voxel_size, device, fov_only=fov_only)
        pred = probs.argmax(dim=1).numpy()
        cm += confusion_matrix(pred, frame.labels[idx], num_classes=NUM_CLASSES)
    return cm
