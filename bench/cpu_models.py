"""CPU time and peak memory of MinkUNet / SPVCNN forward and backward on a real nuScenes sweep.

    python bench/cpu_models.py [--repeats 5] [--threads N]

Each configuration runs in its own process so that its peak resident memory (getrusage maxrss;
tracemalloc does not see torch's allocations) is its own. Per configuration:
  inference   eval mode, no_grad forward, kernel maps built every time (each scan is new);
  train step  train mode, forward + cross-entropy + backward, maps built every time.
Times are medians over `--repeats` runs after one warm-up. Peak memory is reported as the process
maxrss and as the increase over the resident size before the first forward (data + model loaded).
Writes bench/results/cpu_models.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = (
    REPO / ".." / "shared" / "realdata/nuscenes"
    / "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"
)
VOXEL_SIZE = 0.05
CONFIGS = {
    "MinkUNet cr=0.5": ("MinkUNet", 0.5),
    "MinkUNet cr=1.0": ("MinkUNet", 1.0),
    "SPVCNN cr=0.64": ("SPVCNN", 0.64),
}


def _resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_one(name: str, repeats: int, threads: int | None) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    import kernels
    from weak3d.models import SPVCNN, MinkUNet

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    sweep = np.fromfile(SWEEP, dtype=np.float32).reshape(-1, 5)
    xyz = sweep[:, :3] - sweep[:, :3].min(axis=0)
    labels = torch.randint(0, 17, (len(sweep),))
    model_name, cr = CONFIGS[name]

    if model_name == "MinkUNet":
        model = MinkUNet(cr=cr)
        voxel_coords, indices, inverse = kernels.sparse_quantize(xyz, VOXEL_SIZE)
        coords = torch.from_numpy(np.concatenate([np.zeros((len(indices), 1), np.int32), voxel_coords], 1))
        feats = torch.from_numpy(sweep[indices, :4])
        inverse_t = torch.from_numpy(inverse)

        def forward(return_features: bool = False):
            out = model(kernels.SparseTensor(feats, coords), return_features=return_features)
            if return_features:
                return out[0][inverse_t], out[1]
            return out[inverse_t]
    else:
        model = SPVCNN(cr=cr)
        batch_column = np.zeros((len(xyz), 1), np.float32)
        point_coords = torch.from_numpy(np.concatenate([batch_column, xyz / VOXEL_SIZE], 1))
        point_feats = torch.from_numpy(sweep[:, :4])

        def forward(return_features: bool = False):
            return model(kernels.PointTensor(point_feats, point_coords), return_features=return_features)

    model.eval()
    with torch.no_grad():
        _, features = forward(return_features=True)
    voxels_per_stride = {str(t.stride[0]): int(t.coords.shape[0]) for t in features["encoder"]}
    del features
    resident_before = _resident_mib()

    def timed(fn) -> list[float]:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times

    def inference() -> None:
        with torch.no_grad():
            forward()

    phases: dict[str, float] = {}

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(forward(), labels)
        middle = time.perf_counter()
        loss.backward()
        phases.setdefault("forward", []).append(middle - start)
        phases.setdefault("backward", []).append(time.perf_counter() - middle)

    model.eval()
    inference_times = timed(inference)
    model.train()
    train_times = timed(train_step)
    return {
        "config": name,
        "points": int(len(sweep)),
        "voxels_per_stride": voxels_per_stride,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "inference_s": statistics.median(inference_times),
        "train_forward_s": statistics.median(phases["forward"][1:]),
        "train_backward_s": statistics.median(phases["backward"][1:]),
        "train_step_s": statistics.median(train_times),
        "peak_rss_mib": round(_peak_mib(), 1),
        "peak_over_loaded_mib": round(_peak_mib() - resident_before, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cpu_models.json")
    parser.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(json.dumps(run_one(args.one, args.repeats, args.threads)))
        return
    if not SWEEP.is_file():
        sys.exit(f"real sweep not found: {SWEEP} (the ../shared folder beside the repository)")

    results = []
    for name in CONFIGS:
        command = [sys.executable, __file__, "--one", name, "--repeats", str(args.repeats)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))

    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpu_count": os.cpu_count()},
              "voxel_size_m": VOXEL_SIZE, "sweep": SWEEP.name, "repeats": args.repeats, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    header = f"{'config':<17}{'voxels s1':>10}{'params':>10}{'infer s':>9}{'fwd s':>8}{'bwd s':>8}" \
             f"{'step s':>8}{'peak MiB':>10}{'+MiB':>8}"
    print(header)
    for r in results:
        print(f"{r['config']:<17}{r['voxels_per_stride']['1']:>10}{r['parameters'] / 1e6:>9.2f}M"
              f"{r['inference_s']:>9.2f}{r['train_forward_s']:>8.2f}{r['train_backward_s']:>8.2f}"
              f"{r['train_step_s']:>8.2f}{r['peak_rss_mib']:>10.0f}{r['peak_over_loaded_mib']:>8.0f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
