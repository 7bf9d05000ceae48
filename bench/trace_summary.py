"""Summarise a Chrome trace written by `bench/profile_minkunet.py --trace`: device time per kernel
and launch grid (one row per distinct layer shape, roughly) and the device's idle gaps with the
host calls that ran during them.

    python bench/trace_summary.py TRACE.json[.xz] [--iterations 4] [--rows 40] [--gap-us 8]

Times are per iteration (the trace holds `--iterations` calls of the profiled function).
"""

from __future__ import annotations

import argparse
import json
import lzma
from collections import defaultdict
from pathlib import Path
from typing import Any

DEVICE_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}


def load_events(path: Path) -> list[dict[str, Any]]:
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt") as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def kernel_table(device: list[dict[str, Any]], iterations: int, rows: int) -> None:
    per_shape: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_name: dict[str, list[float]] = defaultdict(list)
    for e in device:
        grid = str(e.get("args", {}).get("grid", ""))
        per_shape[(e["name"][:60], grid)].append(e["dur"])
        per_name[e["name"][:60]].append(e["dur"])
    total = sum(map(sum, per_name.values())) / iterations
    print(f"device busy {total:.0f} us per iteration, {len(device) / iterations:.0f} launches")
    print(f"{'us/iter':>9} {'calls':>6} {'us/call':>8}  kernel")
    for name, durs in sorted(per_name.items(), key=lambda kv: -sum(kv[1]))[:rows]:
        _print_row(durs, iterations, name)
    print(f"\n{'us/iter':>9} {'calls':>6} {'us/call':>8}  kernel @ grid")
    for (name, grid), durs in sorted(per_shape.items(), key=lambda kv: -sum(kv[1]))[:rows]:
        _print_row(durs, iterations, f"{name} @ {grid}")


def _print_row(durs: list[float], iterations: int, label: str) -> None:
    """us per iteration, calls per iteration, us per call, label."""
    total = sum(durs)
    print(f"{total / iterations:9.1f} {len(durs) / iterations:6.1f} {total / len(durs):8.2f}  {label}")


def gap_table(device: list[dict[str, Any]], host: list[dict[str, Any]], iterations: int,
              gap_us: float, rows: int) -> None:
    """Idle stretches of the device longer than gap_us, and the innermost host calls in them."""
    device = sorted(device, key=lambda e: e["ts"])
    busy_until = device[0]["ts"]
    gaps = []
    for e in device:
        if e["ts"] - busy_until > gap_us:
            gaps.append((busy_until, e["ts"]))
        busy_until = max(busy_until, e["ts"] + e["dur"])
    span = (busy_until - device[0]["ts"]) / iterations
    idle = sum(b - a for a, b in gaps) / iterations
    print(f"\ndevice span {span:.0f} us per iteration, idle in gaps > {gap_us:g} us: {idle:.0f} us")
    blame: dict[str, float] = defaultdict(float)
    host = sorted(host, key=lambda e: e["ts"])
    for start, end in gaps:
        for e in host:
            if e["ts"] >= end:
                break
            overlap = min(end, e["ts"] + e["dur"]) - max(start, e["ts"])
            if overlap > 0:
                blame[e["name"][:70]] += overlap
    print(f"{'us/iter':>9}  host call overlapping the gaps (nested calls each counted)")
    for name, us in sorted(blame.items(), key=lambda kv: -kv[1])[:rows]:
        print(f"{us / iterations:9.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trace", type=Path)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--gap-us", type=float, default=8.0)
    args = parser.parse_args()
    events = load_events(args.trace)
    device = [e for e in events if e.get("cat") in DEVICE_CATEGORIES]
    host = [e for e in events if e.get("cat") in {"cpu_op", "python_function", "cuda_runtime", "cuda_driver"}]
    if not device:
        raise SystemExit(f"{args.trace}: no device events (was the trace taken with CUDA activity?)")
    kernel_table(device, args.iterations, args.rows)
    gap_table(device, host, args.iterations, args.gap_us, args.rows)


if __name__ == "__main__":
    main()
