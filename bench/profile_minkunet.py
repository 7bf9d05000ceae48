"""Where the time of a MinkUNet inference / training step goes with the Triton backend (GPU).

    python bench/profile_minkunet.py --scan .benchdata/<sweep>.pcd.bin [--voxel 0.05] [--points dense64]
        [--cprofile] [--graphed] [--trace DIR]

--graphed: through kernels.graphs (GraphedInference, and GraphedTrainStep at batch 2 as in
bench/spconv_compare.py), so the device-time table lists the graphed network's kernels.
Prints host time (enqueue only) against wall time, and torch.profiler's top operators by CPU and
by device time, for the inputs of bench/spconv_compare.py. --trace writes the profiled iterations
as Chrome traces (DIR/<mode>.json: host calls and kernels on one timeline, for gaps).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spconv_compare import fresh, load_points, synthesise_dense, voxelise  # noqa: E402

import kernels  # noqa: E402
from kernels.functional import cross_entropy  # noqa: E402
from kernels.graphs import GraphedInference, GraphedTrainStep  # noqa: E402
from weak3d.models import MinkUNet  # noqa: E402


def batch_of_two(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two scans as one batch (the second as batch 1)."""
    second = b[0].clone()
    second[:, 0] = 1
    return torch.cat([a[0], second]), torch.cat([a[1], b[1]])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scan", required=True)
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--points", choices=("nuscenes", "dense64"), default="nuscenes")
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--cprofile", action="store_true", help="also Python's profile of the host code")
    parser.add_argument("--graphed", action="store_true", help="replay CUDA graphs (kernels.graphs)")
    parser.add_argument("--trace", type=Path, help="folder for Chrome traces of the profiled iterations")
    args = parser.parse_args()
    points = load_points(args.scan)
    if args.points == "dense64":
        points = synthesise_dense(points)
    scans = [voxelise(points, args.voxel, 2 * math.pi * i / 8 + 0.1) for i in range(8)]
    model = MinkUNet(num_classes=17, cr=1.0).cuda()

    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    graphed = GraphedInference(model)
    step = GraphedTrainStep(model, cross_entropy, opt, autocast_dtype=torch.float16, max_graphs=8)
    pairs = [batch_of_two(scans[i], scans[(i + 1) % 8]) for i in range(8)]

    def infer(i: int) -> None:
        coords, feats = scans[i % 8]
        if args.graphed:
            graphed(kernels.SparseTensor(feats.half(), fresh(coords)))
            return
        with torch.no_grad():
            model(kernels.SparseTensor(feats.half(), fresh(coords)))

    def train(i: int) -> None:
        coords, feats = pairs[i % 8] if args.graphed else scans[i % 8]
        labels = torch.zeros(len(coords), dtype=torch.long, device="cuda")
        if args.graphed:
            step(kernels.SparseTensor(feats, fresh(coords)), labels)
            return
        with torch.autocast("cuda", dtype=torch.float16):
            logits = model(kernels.SparseTensor(feats, fresh(coords)))
            loss = cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for name, fn, setup in (("inference", infer, lambda: model.eval().half()),
                            ("train", train, lambda: model.float().train())):
        setup()
        for i in range(10):
            fn(i)
        torch.cuda.synchronize()
        host, wall = [], []
        for i in range(16):
            t0 = time.perf_counter()
            fn(i)
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            host.append(t1 - t0)
            wall.append(time.perf_counter() - t0)
        host.sort()
        wall.sort()
        print(f"== {name} {args.points}@{args.voxel}: host enqueue {1e3 * host[8]:.2f} ms, "
              f"wall {1e3 * wall[8]:.2f} ms", flush=True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                torch.profiler.ProfilerActivity.CUDA]) as prof:
            for i in range(4):
                fn(i)
            torch.cuda.synchronize()
        if args.cprofile:  # which Python functions the host time goes to
            import cProfile
            import pstats

            torch.cuda.synchronize()
            py_prof = cProfile.Profile()
            py_prof.enable()
            for i in range(8):
                fn(i)
            torch.cuda.synchronize()
            py_prof.disable()
            print(f"-- cProfile, 8 x {name}, by own time", flush=True)
            pstats.Stats(py_prof).sort_stats("tottime").print_stats(args.rows)
        if args.trace:
            args.trace.mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(args.trace / f"{name}.json"))
        table = prof.key_averages()
        print(table.table(sort_by="self_cpu_time_total", row_limit=args.rows), flush=True)
        print(table.table(sort_by="self_cuda_time_total", row_limit=args.rows), flush=True)


if __name__ == "__main__":
    main()
