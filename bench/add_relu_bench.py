"""kernels.nn.add_relu (one Triton pass) against torch's relu(a + b) (two kernels), GPU time.

    python bench/add_relu_bench.py [--out bench/results/add_relu.json]

fp16 features of MinkUNet's residual sums (rows x channels of the nuScenes and dense64 scans'
levels); forward, and forward + backward; each timed as a CUDA graph of 20 calls (kernel time,
no host launch cost, as inside the graph runners), median of 5 replays.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conv_tuning import graph_us  # noqa: E402

from kernels.triton.elementwise import AddReLUFunction  # noqa: E402

SHAPES = [(23114, 96), (9169, 256), (93073, 96), (186180, 96), (61211, 256)]
REPEATS = 20  # calls per graph


def measure(n: int, c: int) -> dict[str, float]:
    a = torch.randn(n, c, device="cuda", dtype=torch.float16, requires_grad=True)
    b = torch.randn(n, c, device="cuda", dtype=torch.float16, requires_grad=True)
    grad = torch.randn(n, c, device="cuda", dtype=torch.float16)
    variants = {"torch": lambda: torch.relu(a + b), "ours": lambda: AddReLUFunction.apply(a, b)}
    row: dict[str, float] = {"rows": n, "channels": c}
    for name, fn in variants.items():
        with torch.no_grad():
            row[f"{name}_forward_us"] = graph_us(fn, REPEATS)
        row[f"{name}_train_us"] = graph_us(lambda fn=fn: torch.autograd.grad(fn(), (a, b), grad), REPEATS)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "add_relu.json"))
    args = parser.parse_args()
    rows = []
    for n, c in SHAPES:
        row = measure(n, c)
        rows.append(row)
        forward = row["ours_forward_us"] / row["torch_forward_us"]
        train = row["ours_train_us"] / row["torch_train_us"]
        print(f"{n:>7} x {c:<3} forward torch {row['torch_forward_us']:6.1f} us "
              f"ours {row['ours_forward_us']:6.1f} us ({forward:.2f}x) | forward+backward "
              f"torch {row['torch_train_us']:6.1f} us ours {row['ours_train_us']:6.1f} us ({train:.2f}x)",
              flush=True)
    Path(args.out).write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
