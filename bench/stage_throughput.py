"""Per-core throughput of the data stages (presegment, superpixels, weak labels) on real bytes.

Input: the real nuScenes sweep (34,688 points) and its 6 camera images in ../shared/realdata; they
are read in place, never copied. The sweep has no lidarseg labels and no sweeps next to it, so
- the 5 previous sweeps are stand-ins: the keyframe shifted by 0.45 m per sweep along y (about
  9 m/s at 20 Hz) plus 2 cm noise, i.e. ~173k fitting points as in the release;
- GT for the weak-label stage is made up: ground -> driveable_surface, each cluster -> one class
  drawn at random with 5 % of its points relabelled, so every rule path is taken.
Everything runs on one thread (BLAS, OpenMP, OpenCV), so frames/s is per core.

    python bench/stage_throughput.py [--repeats 3] [--out bench/results/stage_throughput.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/open3d load their thread pools

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.stages.realdata import NUSC, real_images, real_sweep  # noqa: E402
from weak3d.io import write_json  # noqa: E402
from weak3d.stages.presegment import PresegmentConfig, cluster_nonground, fit_ground, presegment  # noqa: E402
from weak3d.stages.superpixels import seeds_superpixels  # noqa: E402
from weak3d.stages.weak_labels import label_statistics, weak_labels  # noqa: E402


def stand_in_sweeps(xyz: np.ndarray, n: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shifted = [xyz + [0.0, -0.45 * k, 0.0] + rng.normal(0, 0.02, xyz.shape) for k in range(1, n + 1)]
    return np.concatenate(shifted).astype(np.float32)


def made_up_gt(ground: np.ndarray, segment: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gt = np.zeros(len(segment), dtype=np.uint8)
    gt[ground] = 11
    ids = np.unique(segment[(segment >= 0) & ~ground])
    cls = rng.choice([1, 4, 7, 10, 15, 16], size=len(ids))
    lut = np.zeros(int(segment.max()) + 2, dtype=np.uint8)
    lut[ids] = cls
    clustered = (segment >= 0) & ~ground
    gt[clustered] = lut[segment[clustered]]
    noisy = clustered & (rng.random(len(gt)) < 0.05)
    gt[noisy] = rng.choice([0, 15, 16], size=int(noisy.sum()))
    return gt


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time over `repeats` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "stage_throughput.json"))
    args = ap.parse_args()
    if not NUSC.is_dir():
        sys.exit(f"{NUSC}: real sample files not found (../shared/realdata/nuscenes)")
    cv2.setNumThreads(1)

    pts, visible = real_sweep()
    xyz = pts[:, :3]
    sweeps = stand_in_sweeps(xyz)
    images = real_images()
    cfg = PresegmentConfig()

    t_ground, ground_vis = timed(lambda: fit_ground(xyz[visible], sweeps, cfg), args.repeats)
    ground = np.zeros(len(xyz), dtype=bool)
    ground[visible] = ground_vis
    t_cluster, _ = timed(lambda: cluster_nonground(xyz, visible & ~ground), args.repeats)
    t_preseg, (ground, _, segment) = timed(lambda: presegment(xyz, sweeps, visible, cfg), args.repeats)
    t_image, _ = timed(lambda: seeds_superpixels(images[0]), args.repeats)
    t_frame_sp, _ = timed(lambda: [seeds_superpixels(im) for im in images], max(1, args.repeats - 2))

    gt = made_up_gt(ground, segment)
    t_weak, labels = timed(lambda: weak_labels(gt, ground, segment, "bench-token"), args.repeats)
    t_stats, stats = timed(lambda: label_statistics([labels], [gt], [visible]), args.repeats)

    def stage(seconds: float, **extra: object) -> dict:
        per_s = round(1.0 / seconds, 3)
        return {"seconds_per_frame": round(seconds, 4), "frames_per_s_per_core": per_s, **extra}

    result = {
        "input": {
            "points": int(len(xyz)),
            "visible_points": int(visible.sum()),
            "sweep_points_stand_in": int(len(sweeps)),
            "images_per_frame": len(images),
            "image_size_in": list(images[0].shape[:2]),
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": 1,
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
        "presegment": stage(
            t_preseg,
            ground_fit_s=round(t_ground, 4),
            hdbscan_s=round(t_cluster, 4),
            ground_points=int(ground.sum()),
            segments=int(len(np.unique(segment[segment >= 0]))),
        ),
        "superpixels": stage(t_frame_sp, seconds_per_image=round(t_image, 4)),
        "weak_labels": stage(
            t_weak,
            label_statistics_s=round(t_stats, 4),
            sparse_points=int(np.count_nonzero(labels.sparse)),
            propagated_rate=round(stats["propagated_rate"], 4),
            candidate_rate=round(stats["candidate_rate"], 4),
        ),
    }
    result["all_three"] = stage(t_preseg + t_frame_sp + t_weak)
    write_json(args.out, result)
    for name in ("presegment", "superpixels", "weak_labels", "all_three"):
        r = result[name]
        sec, fps = r["seconds_per_frame"], r["frames_per_s_per_core"]
        print(f"{name:12s} {sec:8.3f} s/frame  {fps:7.2f} frames/s/core")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
