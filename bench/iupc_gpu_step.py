"""Time and peak memory of one IUPC training step on synthetic inputs of the paper's size.

    python bench/iupc_gpu_step.py [--batch 4] [--points 20000] [--image-size 360 640] [--amp]
                                  [--repeats 5] [--device cuda]

Per keyframe: `--points` voxels (one point per 5 cm voxel, a ground plane plus boxes, about what
a nuScenes keyframe keeps inside the camera views) and 6 random 0-255 images. The step is the
pretrain loss of both branches plus the association, backward and an SGD step, with mixed
precision if `--amp`. Prints JSON: median step seconds after two warm-ups, peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import kernels  # noqa: E402
from weak3d.losses import IUPCLossConfig, iupc_total_loss  # noqa: E402
from weak3d.models.build import build_model  # noqa: E402
from weak3d.models.fusion import CameraInputs  # noqa: E402


def synthetic_batch(batch: int, points: int, size: tuple[int, int], rng: np.random.Generator):
    coords, feats, labels = [], [], []
    for b in range(batch):
        ground = np.c_[rng.uniform(-40, 40, (points, 2)), rng.normal(0, 0.05, points)]
        boxes = rng.uniform([-20, -20, 0], [20, 20, 3], (points // 3, 3))
        xyz = np.concatenate([ground, boxes])
        vox, keep, _ = kernels.sparse_quantize(xyz / 0.05, 1.0)
        keep = keep[:points]
        vox = vox[:points] - vox[:points].min(axis=0)
        coords.append(np.c_[np.full(len(keep), b), vox])
        feats.append(np.c_[xyz[keep], rng.uniform(0, 1, len(keep))])
        labels.append(np.where(xyz[keep, 2] > 0.3, 4, 11))
    n = sum(len(c) for c in coords)
    tensor = kernels.SparseTensor(
        torch.from_numpy(np.concatenate(feats)).float(), torch.from_numpy(np.concatenate(coords)).int()
    )
    frame = np.concatenate([np.full(len(c), b) for b, c in enumerate(coords)])
    cameras = CameraInputs(
        torch.rand(batch * 6, 3, *size) * 255,
        torch.from_numpy(frame * 6 + rng.integers(0, 6, n)),
        torch.from_numpy(rng.uniform(-1, 1, (n, 2))).float(),
    )
    gt = torch.from_numpy(np.concatenate(labels))
    sparse = torch.where(torch.rand(n) < 0.01, gt, torch.zeros_like(gt))
    propagated = torch.where(torch.rand(n) < 0.5, gt, torch.zeros_like(gt))
    assoc = torch.where(torch.rand(n) < 0.1, gt, sparse)
    return tensor, cameras, sparse, propagated, assoc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--image-size", type=int, nargs=2, default=(360, 640))
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    size = tuple(args.image_size)
    model = build_model("iupc", cr=0.64, image_size=size).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.24, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp)
    tensor, cameras, sparse, propagated, assoc = synthetic_batch(
        args.batch, args.points, size, np.random.default_rng(0)
    )
    candidates = torch.zeros_like(sparse)

    def step() -> float:
        voxels = kernels.SparseTensor(tensor.feats.to(device), tensor.coords.to(device))
        with torch.autocast(device.type, enabled=args.amp):
            out = model(voxels, cameras.to(device))
        loss, _ = iupc_total_loss(
            out.x_vox.float(), sparse.to(device), propagated.to(device), candidates.to(device),
            logits_2d=out.x_pix.float(), emb_3d=out.emb_3d.float(), emb_2d=out.emb_2d.float(),
            assoc_target=assoc.to(device), config=IUPCLossConfig.pretrain(),
        )
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    losses, times = [step(), step()], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses.append(step())
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "voxels": int(tensor.coords.shape[0]),
        "image_size": list(size),
        "amp": args.amp,
        "step_s_median": round(statistics.median(times), 3),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "losses": [round(v, 3) for v in losses],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
