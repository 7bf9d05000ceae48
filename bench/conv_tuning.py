"""Block configurations of the Triton convolution kernels, timed on the calls a MinkUNet makes (GPU).

    python bench/conv_tuning.py [--scan PATH] [--out JSON] [--inputs nuscenes@5cm,dense64@5cm] [--inference]
                                [--directions forward,input_grad,weight_grad]

One fp16 training step (autocast, batch 2, MinkUNet cr 1.0; `--inference`: an eval-mode fp16
forward pass at batch 1, as spconv_compare times inference) is run with the implicit GEMM and the
weight gradient wrapped, so that every call the network makes (forward, input gradient, weight
gradient) is recorded with its arguments; calls with the same shape, map kind and direction are
merged (their count kept). Each distinct call is then replayed with every candidate configuration
through a CUDA graph of `REPEATS` calls (GPU time only: no host launch cost, as in the graphed
network) and its output checked against the default configuration's. The table prints, per call,
the default's time and the best candidate; the totals weigh each call by its count, so they are
the network's convolution kernel time under one configuration policy.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spconv_compare import (  # noqa: E402
    default_scan,
    environment,
    fresh,
    load_points,
    synthesise_dense,
    voxelise,
)

import kernels  # noqa: E402
from weak3d.models import MinkUNet  # noqa: E402

try:
    from kernels.triton import conv as triton_conv
except ImportError as error:  # Triton ships with CUDA builds of torch
    raise SystemExit(f"bench/conv_tuning.py needs Triton and a CUDA GPU ({error})") from error

REPEATS = 10


def gemm_candidates(c_in: int, c_out: int) -> dict[str, dict[str, int]]:
    default = triton_conv.gemm_config(c_in, c_out, True)  # its channel tiles are kept
    block_n, block_k = default["BLOCK_N"], default["BLOCK_K"]
    out = {}
    for block_m, warps in ((32, 2), (32, 4), (64, 4), (64, 8), (128, 4), (128, 8)):
        for stages in (0, 3):
            name = f"{'pipe' if stages else 'loop'} m{block_m} w{warps}"
            out[name] = {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "num_warps": warps,
                         "STAGES": stages}
    for stages in (2, 4):
        out[f"pipe{stages} m64 w4"] = {"BLOCK_M": 64, "BLOCK_N": block_n, "BLOCK_K": block_k, "num_warps": 4,
                                       "STAGES": stages}
    # The pipelined kernel with its table block read before the loop (PRELOAD): only then does
    # Triton keep STAGES - 1 gathers in flight (a CPU compile for sm_90a: STAGES buffers, waits
    # that leave the newer copies pending; without it one buffer set, waits for every copy).
    for block_m, warps in ((32, 2), (32, 4), (64, 4), (128, 4)):
        for stages in (2, 3, 4):
            out[f"pre{stages} m{block_m} w{warps}"] = {
                "BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "num_warps": warps,
                "STAGES": stages, "PRELOAD": 1}
    if block_n > 64:  # more programs for layers of few rows
        for name in ("pipe m64 w4", "loop m64 w4", "loop m32 w4"):
            out[f"{name} n64"] = {**out[name], "BLOCK_N": 64}
    if block_k > 32:
        out["pipe m64 w4 k32"] = {**out["pipe m64 w4"], "BLOCK_K": 32}
    if c_out % block_n:  # padded channel tiles (96 outputs in 128): 32-wide ones that fit exactly
        for name in ("pipe m64 w4", "pipe2 m64 w4", "loop m64 w4", "pipe m128 w4"):
            out[f"{name} n32"] = {**out[name], "BLOCK_N": 32}
            if c_in % block_k and block_k > 32:
                out[f"{name} n32 k32"] = {**out[name], "BLOCK_N": 32, "BLOCK_K": 32}
    if c_out > 128:  # every output channel in one tile: each gathered row is loaded once
        for block_m in (64, 128):
            for stages in (0, 2, 3):
                out[f"{'pipe' if stages else 'loop'}{stages or ''} m{block_m} w8 n256"] = {
                    "BLOCK_M": block_m, "BLOCK_N": 256, "BLOCK_K": block_k, "num_warps": 8, "STAGES": stages}
        # 256 rows x 128 channels: half the weight loads of 128 x 256 per row, each gathered row
        # loaded twice (fewer bytes in all if masked-off rows cost no traffic; 245 registers, no
        # spills on a CPU compile for sm_90a)
        out["loop m256 w8 n128"] = {"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": block_k, "num_warps": 8,
                                    "STAGES": 0}
        for stages in (2, 3):
            out[f"pre{stages} m256 w8 n128"] = {**out["loop m256 w8 n128"], "STAGES": stages, "PRELOAD": 1}
    return out


def wgrad_candidates(c_in: int, c_out: int) -> dict[str, dict[str, int]]:
    default = triton_conv.weight_grad_config(c_in, c_out, True)  # its channel tiles are kept
    block_i, block_o = default["BLOCK_I"], default["BLOCK_O"]
    out = {}
    for per_sm in (2, 4, 8):
        for block_p in (32, 64, 128, 256):
            for warps in (4, 8):
                out[f"sm{per_sm} p{block_p} w{warps}"] = {
                    "BLOCK_I": block_i, "BLOCK_O": block_o, "BLOCK_P": block_p, "num_warps": warps,
                    "programs_per_sm": per_sm}
    if c_in >= 128 and c_out >= 128:
        for per_sm in (2, 4):
            out[f"sm{per_sm} p64 w8 i128"] = {"BLOCK_I": 128, "BLOCK_O": 128, "BLOCK_P": 64, "num_warps": 8,
                                             "programs_per_sm": per_sm}
    if c_in >= 128 and c_out > 128:  # wide tiles: each pair's rows read by fewer programs
        for block_i, block_o, block_p in ((64, 256, 64), (64, 256, 128), (128, 256, 64)):
            for per_sm in (1, 2):
                out[f"sm{per_sm} p{block_p} w8 i{block_i} o{block_o}"] = {
                    "BLOCK_I": block_i, "BLOCK_O": block_o, "BLOCK_P": block_p, "num_warps": 8,
                    "programs_per_sm": per_sm}
    for rows in (4, 8, 16, 32):  # rows of a tile per fixup program
        if rows <= block_i and rows != default["fixup_rows"]:
            out[f"default fixup{rows}"] = {**default, "fixup_rows": rows}
    if c_in % block_i or c_out % block_o:  # padded tiles (96 channels in 64 + 64): tiles that fit
        for tile_i, tile_o in ((32, 32), (32, 128), (128, 32)):
            for per_sm in (2, 4):
                out[f"sm{per_sm} p128 w4 i{tile_i} o{tile_o}"] = {
                    "BLOCK_I": tile_i, "BLOCK_O": tile_o, "BLOCK_P": 128, "num_warps": 4,
                    "programs_per_sm": per_sm}
    return {name: {"fixup_rows": default["fixup_rows"], **config} for name, config in out.items()}


def record_calls(model: nn.Module, coords: torch.Tensor, feats: torch.Tensor, inference: bool = False
                 ) -> list[dict[str, Any]]:
    """The distinct implicit-GEMM and weight-gradient calls of one training step (or of one
    inference), with counts."""
    calls: dict[tuple[Any, ...], dict[str, Any]] = {}
    original_gemm, original_wgrad = triton_conv.implicit_gemm, triton_conv.weight_grad

    def gemm(x: torch.Tensor, weight: torch.Tensor, side: Any, transpose_weight: bool, config: Any = None,
             epilogue: Any = None):
        kind = "input_grad" if transpose_weight else "forward"
        key = (kind, x.shape[0], tuple(weight.shape), side.table.shape[0], side.flip, epilogue is not None)
        entry = calls.setdefault(key, {"fn": original_gemm, "args": (x, weight, side, transpose_weight),
                                       "kwargs": {"epilogue": epilogue}, "direction": kind, "count": 0})
        entry["count"] += 1
        return original_gemm(x, weight, side, transpose_weight, config, epilogue)

    def wgrad(x: torch.Tensor, dy: torch.Tensor, kmap: Any, volume: int, config: Any = None):
        key = ("weight_grad", x.shape, dy.shape, volume)
        entry = calls.setdefault(key, {"fn": original_wgrad, "args": (x, dy, kmap, volume),
                                       "direction": "weight_grad", "count": 0})
        entry["count"] += 1
        return original_wgrad(x, dy, kmap, volume, config)

    triton_conv.implicit_gemm, triton_conv.weight_grad = gemm, wgrad
    try:
        if inference:
            with torch.no_grad():
                model.eval().half()(kernels.SparseTensor(feats.half(), fresh(coords)))
            return list(calls.values())
        labels = torch.randint(0, 17, (coords.shape[0],), device="cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            logits = model(kernels.SparseTensor(feats, fresh(coords)))
            loss = nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
    finally:
        triton_conv.implicit_gemm, triton_conv.weight_grad = original_gemm, original_wgrad
    return list(calls.values())


def graph_us(fn: Callable[[], Any], repeats: int = REPEATS) -> float:
    """GPU microseconds per call of `fn`: a CUDA graph of `repeats` calls, median of 5 replays (no
    host launch cost, as inside the graph runners). `fn` runs once before the capture."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(repeats):
            fn()
    graph.replay()
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000 / repeats)
    return statistics.median(times)


def time_config(fn: Any, args: tuple[Any, ...], config: dict[str, int], kwargs: dict[str, Any]
                ) -> tuple[float, torch.Tensor]:
    """Microseconds per call (`graph_us`) and one output."""
    return graph_us(lambda: fn(*args, config=config, **kwargs)), fn(*args, config=config, **kwargs)


def describe(call: dict[str, Any]) -> dict[str, Any]:
    args = call["args"]
    if call["direction"] == "weight_grad":
        x, dy, kmap, volume = args
        # rows of the offset lists, as weight_grad_config sees them
        rows = int(kmap.offset_lists()[0].shape[1])
        return {"rows": rows, "c_in": x.shape[1], "c_out": dy.shape[1], "K": volume}
    x, weight, side, transpose = args
    c_in, c_out = (weight.shape[2], weight.shape[1]) if transpose else (weight.shape[1], weight.shape[2])
    return {"rows": int(side.table.shape[0]), "c_in": c_in, "c_out": c_out, "K": weight.shape[0],
            "flip": side.flip, "sorted": side.sorted_table is not None}


def tune(label: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for call in calls:
        info = describe(call)
        if call["direction"] == "weight_grad":
            default = triton_conv.weight_grad_config(info["c_in"], info["c_out"], True, info["rows"],
                                                     info["K"])
            candidates = wgrad_candidates(info["c_in"], info["c_out"])
        else:
            default = triton_conv.gemm_config(info["c_in"], info["c_out"], True, info["rows"], info["K"])
            candidates = gemm_candidates(info["c_in"], info["c_out"]) if info["sorted"] else {}
        kwargs = call.get("kwargs", {})
        base_us, base_out = time_config(call["fn"], call["args"], default, kwargs)
        times, errors = {}, {}
        for name, config in candidates.items():
            us, out = time_config(call["fn"], call["args"], config, kwargs)
            times[name] = us
            errors[name] = float(
                (out.float() - base_out.float()).norm()
                / base_out.float().norm().clamp_min(1e-30))
        best = min(times, key=times.get) if times else "default"
        row = {"input": label, "direction": call["direction"], "count": call["count"], **info,
               "default_config": default, "default_us": base_us, "times_us": times,
               "rel_err_vs_default": errors,
               "best": best, "best_us": times.get(best, base_us)}
        rows.append(row)
        print(f"{label:<14} {call['direction']:<11} x{call['count']:<2} rows {info['rows']:>7} "
              f"{info['c_in']:>3}->{info['c_out']:<3} K{info['K']:<2} default {base_us:7.1f} us  "
              f"best {row['best_us']:7.1f} us ({best}, err {errors.get(best, 0):.1e})", flush=True)
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Count-weighted sums per direction: default, best per call, and each single candidate."""
    out: dict[str, Any] = {}
    for direction in ("forward", "input_grad", "weight_grad"):
        group = [r for r in rows if r["direction"] == direction]
        names = set.intersection(*(set(r["times_us"]) for r in group)) if group else set()
        singles = {n: sum(r["count"] * r["times_us"][n] for r in group) for n in names}
        out[direction] = {
            "default_us": sum(r["count"] * r["default_us"] for r in group),
            "best_per_call_us": sum(r["count"] * r["best_us"] for r in group),
            "best_single": min(singles.items(), key=lambda kv: kv[1]) if singles else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--scan", default=default_scan())
    parser.add_argument("--out", default=str(here / "bench" / "results" / "conv_tuning.json"))
    parser.add_argument("--inputs", default="nuscenes@5cm,dense64@5cm")
    parser.add_argument("--inference", action="store_true", help="the calls of a batch-1 inference")
    parser.add_argument("--directions", default="forward,input_grad,weight_grad", help="which calls to tune")
    parser.add_argument("--min-channels", type=int, default=0,
                        help="tune only calls with this many input or output channels or more")
    parser.add_argument("--max-channels", type=int, default=1 << 30,
                        help="tune only calls with at most this many input and output channels")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    points = load_points(args.scan)
    sources = {"nuscenes": points, "dense64": synthesise_dense(points)}
    results: dict[str, Any] = {"environment": environment(), "repeats": REPEATS, "inference": args.inference,
                               "inputs": {}}
    for label in args.inputs.split(","):
        name, voxel = label.split("@")
        pts = sources[name]
        (c1, f1), (c2, f2) = (voxelise(pts, int(voxel[:-2]) / 100, a) for a in (0.1, 0.1 + math.pi / 4))
        c2 = c2.clone()
        c2[:, 0] = 1
        coords, feats = (c1, f1) if args.inference else (torch.cat([c1, c2]), torch.cat([f1, f2]))
        torch.manual_seed(0)
        model = MinkUNet(num_classes=17, cr=1.0).cuda().train()
        calls = [call for call in record_calls(model, coords, feats, args.inference)
                 if call["direction"] in args.directions.split(",")
                 and args.min_channels <= max(describe(call)["c_in"], describe(call)["c_out"])
                 <= args.max_channels]
        rows = tune(label, calls)
        results["inputs"][label] = {"voxels": int(coords.shape[0]), "calls": rows, "totals": totals(rows)}
        for direction, t in results["inputs"][label]["totals"].items():
            single = t["best_single"]
            print(f"{label:<14} {direction:<11} total default {t['default_us']:8.1f} us, best per call "
                  f"{t['best_per_call_us']:8.1f} us, best single config "
                  f"{single[1] if single else float('nan'):8.1f} us ({single[0] if single else '-'})")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
