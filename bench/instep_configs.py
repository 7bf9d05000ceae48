"""Kernel configurations timed inside the graphed MinkUNet training step, not in isolation (GPU).

    python bench/instep_configs.py --scan .benchdata/<sweep>.pcd.bin [--points dense64] [--voxel 0.05]
        [--sums r32c32w8p4,r64c32w8p4,...] [--gemm base,pre,pre3,pre4] [--out JSON]

bench/batchnorm_tuning.py times a kernel by replaying it alone on one buffer, so its input sits
in L2 between replays; inside a training step the features were written by other kernels, much
of them evicted. This script captures a fresh GraphedTrainStep (dense64 batch 2, as
bench/spconv_compare.py) per candidate: a configuration of the BatchNorm sums kernels
(`kernels.triton.batchnorm.SUMS_CONFIG`, forward and backward) and a variant of the implicit
GEMM's configurations (`--gemm`: base = `kernels.triton.conv.gemm_config`; pre = every pipelined
call with PRELOAD; preN = that with N stages), every pair of the two lists. It times its
replays (median of CUDA events over rotating scans; host preparation included, as
spconv_compare times it) and sums the device time of each kernel over profiled replays ("busy").
Prints a table; writes JSON. (bench/results/instep_conv_sums_*.json and instep_bn_sums_sweep*
came from this script at commit 83ac665 (run 2; b5013bc for the others), which could also
switch off the since reverted convolution column sums and set the since removed
GRAD_SUMS_CONFIG with SUMS_CONFIG.)
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_minkunet import batch_of_two  # noqa: E402
from spconv_compare import (  # noqa: E402
    environment,
    event_time,
    fresh,
    load_points,
    synthesise_dense,
    voxelise,
)

import kernels  # noqa: E402
from kernels.functional import cross_entropy  # noqa: E402
from kernels.graphs import GraphedTrainStep  # noqa: E402
from kernels.triton import batchnorm as tbn  # noqa: E402
from kernels.triton import conv as triton_conv  # noqa: E402
from weak3d.models import MinkUNet  # noqa: E402


def parse_sums(text: str) -> dict[str, int]:
    """'r64c32w8p4' -> BLOCK_R 64, BLOCK_C 32, 8 warps, 4 programs per multiprocessor."""
    match = re.fullmatch(r"r(\d+)c(\d+)w(\d+)p(\d+)", text)
    if match is None:
        raise ValueError(f"--sums: {text!r} is not of the form r<rows>c<channels>w<warps>p<programs>")
    r, c, w, p = (int(g) for g in match.groups())
    return {"BLOCK_R": r, "BLOCK_C": c, "num_warps": w, "programs_per_sm": p}


BASE_GEMM_CONFIG = triton_conv.gemm_config  # before main() swaps in a variant


def gemm_variant(name: str) -> Callable[..., dict[str, int]]:
    """`gemm_config` as variant `name` changes it: base, pre (PRELOAD on every pipelined call) or
    preN (that with N stages)."""
    match = re.fullmatch(r"base|pre([1-9]?)", name)
    if match is None:
        raise ValueError(f"--gemm: {name!r} is not base, pre or pre<stages>")

    def config(*args: Any, **kwargs: Any) -> dict[str, int]:
        chosen = BASE_GEMM_CONFIG(*args, **kwargs)
        if name == "base" or not chosen.get("STAGES"):
            return chosen
        stages = int(match.group(1)) if match.group(1) else chosen["STAGES"]
        return {**chosen, "STAGES": stages, "PRELOAD": 1}

    return config


def step_times(step: GraphedTrainStep, pairs: list[tuple[torch.Tensor, torch.Tensor]], iters: int
               ) -> tuple[list[float], dict[str, float]]:
    """(ms per replay, device us per kernel name over one replay) after warm-up and capture."""
    def call(i: int) -> None:
        coords, feats = pairs[i % len(pairs)]
        labels = torch.randint(0, 17, (len(coords),), device="cuda")
        step(kernels.SparseTensor(feats, fresh(coords)), labels)

    for i in range(6):
        call(i)
    torch.cuda.synchronize()
    times = [event_time(call, i) for i in range(iters)]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for i in range(4):
            call(i)
        torch.cuda.synchronize()
    kernels_us: dict[str, float] = {}
    for event in prof.key_averages():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels_us[event.key] = event.self_device_time_total / 4
    return times, kernels_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scan", required=True)
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--points", choices=("nuscenes", "dense64"), default="dense64")
    parser.add_argument("--sums", default="r32c32w8p4", help="BatchNorm sums configurations, e.g. "
                        "r32c32w8p4,r64c32w8p4,r128c32w8p2 (bench/results/instep_bn_sums_sweep_h100.json)")
    parser.add_argument("--gemm", default="base", help="implicit-GEMM variants: base,pre,pre3,pre4")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    points = load_points(args.scan)
    if args.points == "dense64":
        points = synthesise_dense(points)
    scans = [voxelise(points, args.voxel, 2 * math.pi * i / 8 + 0.1) for i in range(8)]
    pairs = [batch_of_two(scans[i], scans[(i + 1) % 8]) for i in range(8)]
    torch.manual_seed(0)
    model = MinkUNet(num_classes=17, cr=1.0).cuda().train()
    watched = ("_stats_kernel", "_grad_stats_kernel", "_apply_kernel", "_grad_apply_kernel",
               "implicit_gemm_kernel", "implicit_gemm_compact_kernel")
    rows: list[dict[str, Any]] = []
    for text, variant in itertools.product(args.sums.split(","), args.gemm.split(",")):
        tbn.SUMS_CONFIG = parse_sums(text)
        triton_conv.gemm_config = gemm_variant(variant)
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)
        step = GraphedTrainStep(model, cross_entropy, opt, autocast_dtype=torch.float16, max_graphs=8)
        times, kernels_us = step_times(step, pairs, args.iters)
        row = {"sums": text, "gemm": variant, "config": dict(tbn.SUMS_CONFIG),
               "median_ms": statistics.median(times),
               "min_ms": min(times), "busy_us": sum(kernels_us.values()),
               "kernels_us": {k: kernels_us.get(k, 0.0) for k in watched}, "all_kernels_us": kernels_us}
        rows.append(row)
        print(f"{text:<12} {variant:<5} step {row['median_ms']:6.2f} ms "
              f"(min {row['min_ms']:.2f}) busy {row['busy_us'] / 1e3:6.2f} ms | " + " ".join(
                  f"{k.strip('_').replace('_kernel', '')} {v:.0f}" for k, v in row["kernels_us"].items()),
              flush=True)
        del step, opt
        gc.collect()
        torch.cuda.empty_cache()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": environment(), "input": f"{args.points}@{args.voxel}",
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
