"""IUPC pretraining steps in float32 and under mixed precision, side by side, watching for NaN.

Runs the fused network's weak-label step (`iupc_step_loss`'s loss, `train()`'s optimiser and
warm-up) on the keyframes of a finished DAG run, for each precision from the same seed, and per
step records every loss term, the gradient norm, the GradScaler scale, whether the step was
skipped, the largest |activation| and the first module (in execution order) whose output was not
finite. Written to find why mixed-precision weak-label training produced NaN losses on an H200.

    python bench/iupc_amp_check.py --results results/nusc --raw resources/nusc/raw \
        [--steps 20] [--batch 4] [--out bench/results/iupc_amp_check.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from weak3d.models.build import build_model  # noqa: E402
from weak3d.train.iupc_data import load_camera_keyframes, make_camera_batch  # noqa: E402
from weak3d.train.iupc_step import iupc_loss  # noqa: E402
from weak3d.train.loop import TrainConfig, lr_factor  # noqa: E402


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if hasattr(value, "feats"):
        return [value.feats]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


class NonFiniteWatch:
    """Forward hooks: the first module whose output holds inf/NaN, and the largest |output|."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.first: str | None = None
        self.largest = (0.0, "")
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in model.named_modules() if n]

    def _hook(self, name: str):
        def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            for t in _tensors(output):
                if not t.is_floating_point() or t.numel() == 0:
                    continue
                peak = float(t.detach().abs().float().nan_to_num(nan=math.inf).max())
                if peak > self.largest[0]:
                    self.largest = (peak, f"{name} ({t.dtype})")
                if not math.isfinite(peak) and self.first is None:
                    self.first = f"{name} ({type(module).__name__}, {t.dtype})"

        return hook

    def reset(self) -> None:
        self.first, self.largest = None, (0.0, "")


def run(precision: str, frames: list, args: argparse.Namespace, device: torch.device) -> list[dict]:
    cfg = TrainConfig(model="iupc", cr=0.64, voxel_size=args.voxel, batch_size=args.batch, warmup_iters=30)
    torch.manual_seed(args.seed)
    model = build_model("iupc", cfg.cr, image_size=(360, 640)).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    use_amp = precision == "amp"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    watch = NonFiniteWatch(model)
    rng = np.random.default_rng(args.seed)
    records = []
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.warmup_iters, args.steps * 10)
        picks = rng.choice(len(frames), size=min(args.batch, len(frames)), replace=False)
        batch = make_camera_batch(
            [frames[i] for i in picks], cfg.voxel_size, (360, 640), rng=rng, augment=True
        )
        batch = batch.to(device)
        watch.reset()
        model.train()
        with torch.autocast(device.type, enabled=use_amp):
            out = model(batch.batch.tensor, batch.cameras)
        loss, terms = iupc_loss(out, batch, "pretrain")
        optimizer.zero_grad(set_to_none=True)
        scale = scaler.get_scale() if use_amp else 1.0
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf))
        scaler.step(optimizer)
        scaler.update()
        bn_finite = all(bool(torch.isfinite(b).all()) for n, b in model.named_buffers() if "running" in n)
        record = {
            "step": step,
            "loss": float(loss),
            "terms": {k: float(v) for k, v in terms.items()},
            "grad_norm": grad_norm,
            "scale": scale,
            "skipped": use_amp and scaler.get_scale() < scale,
            "first_nonfinite_module": watch.first,
            "largest_activation": watch.largest,
            "bn_stats_finite": bn_finite,
        }
        records.append(record)
        bad = [k for k, v in record["terms"].items() if not math.isfinite(v)]
        print(
            f"{precision:5s} {step:3d} loss {record['loss']:9.3f} gnorm {grad_norm:10.3g} scale {scale:8.0f} "
            f"nonfinite terms {bad or '-'} first bad module {watch.first or '-'} "
            f"max|act| {watch.largest[0]:.3g} at {watch.largest[1]} bn ok {bn_finite}",
            flush=True,
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default="results/nusc")
    parser.add_argument("--raw", default="resources/nusc/raw")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", default=["amp", "fp32"])
    parser.add_argument("--out", default="bench/results/iupc_amp_check.json")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = Path(args.results)
    split = json.loads((results / "scenes.json").read_text())
    train_scenes = split["train"] if "train" in split else sorted(split["samples"])
    scene_files = [results / "preprocessed" / f"{s}.h5" for s in train_scenes]
    scene_files = [f for f in scene_files if (results / "weak_labels" / f.name).exists()]
    frames = load_camera_keyframes(
        scene_files, results / "weak_labels", None, results / "superpixels", image_root=args.raw
    )
    report = {"device": str(torch.cuda.get_device_name() if device.type == "cuda" else "cpu")}
    for precision in args.precisions:
        report[precision] = run(precision, frames, args, device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
