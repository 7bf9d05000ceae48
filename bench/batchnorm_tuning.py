"""Tiles, warps and programs of the BatchNorm column-sum kernels, on MinkUNet's feature shapes (GPU).

    python bench/batchnorm_tuning.py [--out bench/results/batchnorm_tuning.json]

The forward sums (`x - shift` and its square) and the backward sums (`dy` and `dy * xhat`) of the
masked BatchNorm (kernels/triton/batchnorm.py; each launch also finalises its statistics) are
memory-bound: each reads its inputs once. Every candidate (rows x channels per step, warps,
programs per multiprocessor) is timed as a CUDA graph of calls (`conv_tuning.graph_us`: GPU time,
no launch cost) on fp16 features of the dense scan's and the nuScenes sweep's levels (training,
batch 2), its statistics checked against fp64 ones, and its bandwidth printed next to the
default's (bytes read / time).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conv_tuning import graph_us  # noqa: E402

try:
    from kernels.triton import batchnorm as tbn
except ImportError as error:  # Triton ships with CUDA builds of torch
    raise SystemExit(f"bench/batchnorm_tuning.py needs Triton and a CUDA GPU ({error})") from error

# rows x channels of a MinkUNet training step at batch 2: dense scan (5 cm) levels, nuScenes 5 cm
SHAPES = [(186180, 32), (186180, 96), (143763, 96), (98830, 128), (61211, 256), (33436, 256), (46228, 96)]
CANDIDATES = [
    {"BLOCK_R": r, "BLOCK_C": c, "num_warps": w, "programs_per_sm": p}
    for r, c, w, p in itertools.product((32, 64, 128), (32, 64), (4, 8), (2, 4, 8, 16))
]


def name(config: dict[str, int]) -> str:
    return f"r{config['BLOCK_R']} c{config['BLOCK_C']} w{config['num_warps']} sm{config['programs_per_sm']}"


def measure(n: int, c: int) -> list[dict[str, Any]]:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(n, c, device="cuda", generator=gen).half()
    dy = torch.randn(n, c, device="cuda", generator=gen).half()
    mask = (torch.rand(n, device="cuda", generator=gen) < 0.97).float()  # a few padding rows
    vectors = [torch.rand(c, device="cuda", generator=gen) + 0.5 for _ in range(5)]
    shift, mean, invstd, weight, bias = vectors
    count = mask.sum()
    kernels = {  # each returns what its launch finalises: [mean, var] and [mean(m dy), mean(m dy xhat)]
        "forward": (lambda config: tbn.batch_statistics(x, mask, count, weight, shift, config=config)[:2],
                    2 * n * c),
        "backward": (lambda config: tbn.grad_statistics(dy, x, mask, count, mean, invstd, weight, bias, True,
                                                        config=config)[0], 4 * n * c),
    }
    m = mask.double()[:, None]
    mean64 = (x.double() * m).sum(0) / count.double()
    var64 = ((x.double() - mean64) ** 2 * m).sum(0) / count.double()
    y_pos = ((x.double() - mean.double()) * invstd.double() * weight.double() + bias.double()) > 0
    g = torch.where(y_pos, dy.double(), 0.0) * m
    xhat = (x.double() - mean.double()) * invstd.double()
    expected = {"forward": torch.stack([mean64, var64]),
                "backward": torch.stack([g.sum(0), (g * xhat).sum(0)]) / count.double()}
    rows = []
    for direction, (kernel, nbytes) in kernels.items():
        times, errors = {}, {}
        for config in [tbn.SUMS_CONFIG, *CANDIDATES]:
            def call(config: dict[str, int] = config, kernel: Any = kernel) -> torch.Tensor:
                return kernel(config)
            times[name(config)] = graph_us(call)
            got = call().double()
            errors[name(config)] = float((got - expected[direction]).norm() / expected[direction].norm())
        default = name(tbn.SUMS_CONFIG)
        best = min(times, key=times.get)
        rows.append({"rows": n, "channels": c, "direction": direction, "bytes": nbytes, "default": default,
                     "default_us": times[default], "best": best, "best_us": times[best], "times_us": times,
                     "rel_err_vs_fp64": errors})
        print(f"{n:>7} x {c:<3} {direction:<8} default {times[default]:6.1f} us "
              f"({nbytes / times[default] / 1e6:4.2f} TB/s) | best {times[best]:6.1f} us "
              f"({nbytes / times[best] / 1e6:4.2f} TB/s, {best}, err {errors[best]:.1e}) "
              f"| max err {max(errors.values()):.1e}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", default=str(here / "results" / "batchnorm_tuning.json"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    rows = [row for n, c in SHAPES for row in measure(n, c)]
    totals = {}
    for direction in ("forward", "backward"):
        group = [r for r in rows if r["direction"] == direction]
        singles = {k: sum(r["times_us"][k] for r in group) for k in group[0]["times_us"]}
        best_single = min(singles, key=singles.get)
        totals[direction] = {"default_us": sum(r["default_us"] for r in group), "best_single": best_single,
                             "best_single_us": singles[best_single]}
        print(f"{direction:<8} sum over shapes: default {totals[direction]['default_us']:7.1f} us, "
              f"best single config {singles[best_single]:7.1f} us ({best_single})")
    Path(args.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                                          "rows": rows, "totals": totals}, indent=1))


if __name__ == "__main__":
    main()
