"""Check multi-GPU training (issue #7) on a machine with several GPUs: N processes vs 1 process.

    python bench/ddp_check.py [--gpus 2] [--frames 8] [--points 1500] [--batch 4] [--epochs 2] [--cr 0.5]
                              [--lr 0.02] [--amp]

Trains MinkUNet (pretrain losses) on small hand-made keyframes (tests/train/synthetic.py) once on
cuda:0 alone, twice (the spread between two single-GPU runs: GPU atomics make runs differ), then
with `--gpus` processes under torchrun (NCCL, synced BatchNorm). Prints JSON: the largest
difference of weights and BatchNorm statistics between the multi-GPU and the first single-GPU run
next to the single-GPU spread, both histories, and the seconds of each run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.train.synthetic import toy_keyframe  # noqa: E402
from weak3d.train import distributed, loop  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--gpus", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--points", type=int, default=1500, help="ground points per keyframe (+ 2 boxes of 20%%)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cr", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--amp", action="store_true")
    p.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        help="scale the initial weights of the second single-GPU run by (1 + this * N(0, 1)): how far "
        "rounding-sized changes carry over the run, to set the multi-GPU difference against",
    )
    p.add_argument("--out", default=None, help="folder for the runs' states (a temporary one if not given)")
    return p.parse_args()


def run(args: argparse.Namespace, device: torch.device, state: Path) -> list[dict]:
    frames = [toy_keyframe(i, args.points, args.points // 5) for i in range(args.frames + 2)]
    cfg = loop.TrainConfig(
        cr=args.cr,
        voxel_size=0.1,
        batch_size=args.batch,
        epochs=args.epochs,
        lr=args.lr,
        amp=args.amp,
        seed=3,
    )
    _, history = loop.train(cfg, "pretrain", frames[: args.frames], frames[args.frames :], device, state)
    return history


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, object]:
    """The largest absolute difference, and the largest relative to the tensor's largest value."""
    diffs = [
        ((a[k].float() - v.float()).abs().max().item(), v.float().abs().max().item(), k)
        for k, v in b.items()
        if v.is_floating_point()
    ]
    worst_abs = max(diffs)
    worst_rel = max(diffs, key=lambda d: d[0] / max(d[1], 1e-12))
    return {
        "abs": worst_abs[0],
        "abs_key": worst_abs[2],
        "rel": worst_rel[0] / max(worst_rel[1], 1e-12),
        "rel_key": worst_rel[2],
    }


def perturbed(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)  # not the global generator, which training goes on using
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0 + scale * torch.randn(p.shape, generator=gen))
    return model


def main() -> None:
    args = parse()
    if distributed.launched():  # one of the torchrun workers
        device = distributed.init_from_env(torch.device("cuda"))
        out = Path(args.out)
        start = time.time()
        history = run(args, device, out / "multi.pt")
        if distributed.is_main():
            (out / "multi.json").write_text(json.dumps({"history": history, "seconds": time.time() - start}))
        distributed.finish()
        return
    out = Path(args.out or tempfile.mkdtemp())
    report: dict = {"args": vars(args), "device": torch.cuda.get_device_name(0)}
    build = loop.build_model
    for name in ("single", "single_again"):
        if name == "single_again" and args.perturb:
            loop.build_model = lambda *a, **k: perturbed(build(*a, **k), args.perturb)
        start = time.time()
        report[f"{name}_history"] = run(args, torch.device("cuda", 0), out / f"{name}.pt")
        report[f"{name}_seconds"] = round(time.time() - start, 2)
    argv = [*sys.argv[1:], "--out", str(out)]  # the last --out wins
    code = distributed.launch(str(Path(__file__).resolve()), args.gpus, threads_per_process=4, args=argv)
    if code != 0:
        raise SystemExit(f"torchrun failed with status {code}")
    multi = json.loads((out / "multi.json").read_text())
    report["multi_history"], report["multi_seconds"] = multi["history"], round(multi["seconds"], 2)
    states = {
        n: torch.load(out / f"{n}.pt", weights_only=False)["model"]
        for n in ("single", "single_again", "multi")
    }
    report["max_diff_multi_vs_single"] = max_diff(states["multi"], states["single"])
    report["max_diff_single_vs_single"] = max_diff(states["single_again"], states["single"])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
