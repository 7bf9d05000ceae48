"""Per-core throughput of the four data stages on real bytes, and their projected trainval wall time.

Input: the real nuScenes keyframe (34,688 points), its 6 camera JPEGs and its calibration in
../shared/realdata, read in place (only the JPEGs get temporary copies outside the repo, for the
preprocess run). That sample has no lidarseg labels and no sweeps
next to it, so
- preprocess runs the real code path (NuScenes reader, preprocess_sample, HDF5 write) on a one-sample
  table set in a temporary folder whose data files are symlinks to the real files (the camera JPEGs
  are temporary copies, since the reader resolves their paths): the 5 previous sweeps are the
  keyframe file again under 5 names, with ego poses 0.45 m apart (about 9 m/s at 20 Hz), and the
  lidarseg file is made up;
- presegment fits on the same kind of stand-ins: the keyframe shifted by 0.45 m per sweep plus 2 cm
  noise (~173k fitting points, as in the release);
- GT for the weak-label stage is made up: ground -> driveable_surface, each cluster -> one class
  drawn at random with 5 % of its points relabelled, so every rule path is taken.
Everything runs on one thread (BLAS, OpenMP, OpenCV, open3d, numba), so seconds are per core. The
machine may be shared: each stage is timed by wall clock and by process CPU time, fastest of
--repeats runs; the projection uses CPU time, which other processes inflate least.

The projection to nuScenes v1.0-trainval (850 scenes, 34,149 keyframes; train 700 scenes / 28,130
keyframes) sums core-seconds per stage over the keyframes each stage sees in the DAG (preprocess:
all scenes; presegment, superpixels, weak labels: train scenes, as workflow/rules wire them) and
divides by 16 cores, assuming perfect scaling over the per-scene jobs (850 and 700 jobs of ~40
keyframes for 16 cores). Reads of the real files come from the page cache and the HDF5 write goes to
a local temporary folder, so storage bandwidth is not in the per-frame numbers; the bytes each stage
moves over trainval are reported next to them, as is the per-job fixed cost (Python start, imports,
presegment's numba cache load, the reader's table load).

    python bench/stage_throughput.py [--repeats 5] [--out bench/results/stage_throughput.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/open3d/numba load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import open3d as o3d  # noqa: E402
import orjson  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.cluster import HDBSCAN  # noqa: E402

from tests.stages.realdata import NUSC, real_sweep  # noqa: E402
from weak3d.classes import RAW_CLASSES  # noqa: E402
from weak3d.datasets.geometry import pose_matrix  # noqa: E402
from weak3d.datasets.nuscenes import CAMERAS, NuScenes  # noqa: E402
from weak3d.io import write_h5_groups, write_json  # noqa: E402
from weak3d.stages.hdbscan_select import select_clusters  # noqa: E402
from weak3d.stages.preprocess import preprocess_sample  # noqa: E402
from weak3d.stages.presegment import PresegmentConfig, cluster_nonground, fit_ground, presegment  # noqa: E402
from weak3d.stages.superpixels import (  # noqa: E402
    SuperpixelConfig,
    read_camera_image,
    resize_like_pil,
    seeds_input,
    seeds_labels,
    seeds_superpixels,
)
from weak3d.stages.weak_labels import label_statistics, weak_labels  # noqa: E402

VERSION = "v1.0-bench"
SWEEP_STEP_M = 0.45
# nuScenes v1.0-trainval: scenes and keyframes, all and train split (the devkit's split).
TRAINVAL = {"scenes": 850, "keyframes": 34149, "train_scenes": 700, "train_keyframes": 28130}
# Records the reader loads per job on real trainval (sample_data and ego_pose: every sensor at full
# rate, 2,631,083 each; the devkit prints these counts when it loads v1.0-trainval).
TRAINVAL_TABLE_RECORDS = 2 * 2631083
CORES = 16


def stand_in_sweeps(xyz: np.ndarray, n: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shifted = [xyz + [0.0, -SWEEP_STEP_M * k, 0.0] + rng.normal(0, 0.02, xyz.shape) for k in range(1, n + 1)]
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


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Fastest wall and fastest CPU seconds over `repeats` calls, and the last result.

    The fastest run is the least disturbed by other processes on a shared machine.
    """
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return float(np.min(walls)), float(np.min(cpus)), out


# ---- preprocess on a one-sample table set around the real files ---------------------------------


def _link(root: Path, rel: str, target: Path, copy: bool = False) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if copy:  # the reader resolves camera paths, so a link would lead out of the root
        shutil.copyfile(target, path)
    else:
        path.symlink_to(target)
    return rel


def real_sample_root(tmp: Path, n_sweeps: int = 5, extra_records: int = 0) -> tuple[Path, str]:
    """A nuScenes table set (VERSION) with the real keyframe, 6 cameras and `n_sweeps` sweeps.

    `extra_records` adds that many more LIDAR_TOP sweep records (and their ego poses) chained before
    the real ones, only to time the reader's table load at scale.
    """
    calib = json.loads((NUSC / "calibration_scene-0061_sample0.json").read_text())
    root = tmp / "nusc"
    tables: dict[str, list[dict[str, Any]]] = {k: [] for k in ("sensor", "calibrated_sensor", "ego_pose")}
    sample_token = "sample0"
    sample_data: list[dict[str, Any]] = []

    def pose(rec: dict[str, Any], tok: str, ts: int) -> str:
        tables["ego_pose"].append(
            {
                "token": tok,
                "timestamp": ts,
                "translation": rec["translation"],
                "rotation": rec["rotation_wxyz"],
            }
        )
        return tok

    def sensor(channel: str, cs: dict[str, Any]) -> str:
        s_tok, c_tok = f"sensor-{channel}", f"cs-{channel}"
        tables["sensor"].append({"token": s_tok, "channel": channel, "modality": "lidar"})
        tables["calibrated_sensor"].append(
            {
                "token": c_tok,
                "sensor_token": s_tok,
                "translation": cs["translation"],
                "rotation": cs["rotation_wxyz"],
                "camera_intrinsic": cs.get("camera_intrinsic", []),
            }
        )
        return c_tok

    lidar = calib["lidar"]
    lidar_cs = sensor("LIDAR_TOP", lidar["nuscenes_calibrated_sensor"])
    lidar_file = NUSC / lidar["file"]
    key_ts = int(lidar["timestamp_us"])
    key_pose = pose_matrix(
        lidar["nuscenes_ego_pose"]["translation"], lidar["nuscenes_ego_pose"]["rotation_wxyz"]
    )
    forward = key_pose[:3, 0]  # the ego's x axis in the global frame
    # Sweep chain, oldest first: extra records (no file is read for them), then the real stand-ins.
    n_chain = extra_records + n_sweeps
    chain = [f"sweep{k}" for k in range(n_chain)] + [lidar["sample_data_token"]]
    for k, tok in enumerate(chain):
        back = n_chain - k  # sweeps before the keyframe
        ts = key_ts - 50_000 * back
        rec = {
            "translation": list(
                np.asarray(lidar["nuscenes_ego_pose"]["translation"]) - SWEEP_STEP_M * back * forward
            ),
            "rotation_wxyz": lidar["nuscenes_ego_pose"]["rotation_wxyz"],
        }
        is_key = back == 0
        rel = f"samples/LIDAR_TOP/{lidar_file.name}" if is_key else f"sweeps/LIDAR_TOP/sweep{k}.pcd.bin"
        if is_key or back <= n_sweeps:
            _link(root, rel, lidar_file)
        sample_data.append(
            {
                "token": tok,
                "sample_token": sample_token,
                "ego_pose_token": pose(rec, f"pose-{tok}", ts),
                "calibrated_sensor_token": lidar_cs,
                "timestamp": ts,
                "fileformat": "pcd",
                "is_key_frame": is_key,
                "width": 0,
                "height": 0,
                "filename": rel,
                "prev": chain[k - 1] if k else "",
                "next": chain[k + 1] if k + 1 < len(chain) else "",
            }
        )
    for name in CAMERAS:
        cam = calib["cameras"][name]
        cam_pose = cam["nuscenes_ego_pose_at_camera_timestamp"]
        sample_data.append(
            {
                "token": cam["sample_data_token"],
                "sample_token": sample_token,
                "ego_pose_token": pose(cam_pose, f"pose-{name}", int(cam_pose["timestamp_us"])),
                "calibrated_sensor_token": sensor(name, cam["nuscenes_calibrated_sensor"]),
                "timestamp": int(cam["timestamp_us"]),
                "fileformat": "jpg",
                "is_key_frame": True,
                "width": cam["width"],
                "height": cam["height"],
                "filename": _link(
                    root, f"samples/{name}/{cam['image_file']}", NUSC / cam["image_file"], copy=True
                ),
                "prev": "",
                "next": "",
            }
        )
    n_points = int(lidar["num_points"])
    labels_rel = f"lidarseg/{VERSION}/{lidar['sample_data_token']}_lidarseg.bin"
    (root / labels_rel).parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rng.integers(0, len(RAW_CLASSES), n_points, dtype=np.uint8).tofile(root / labels_rel)
    tables.update(
        log=[{"token": "log0", "logfile": "bench", "vehicle": "n015", "location": "singapore-onenorth"}],
        scene=[
            {
                "token": "scene0",
                "name": "scene-0061",
                "log_token": "log0",
                "nbr_samples": 1,
                "first_sample_token": sample_token,
                "last_sample_token": sample_token,
            }
        ],
        sample=[
            {"token": sample_token, "timestamp": key_ts, "scene_token": "scene0", "prev": "", "next": ""}
        ],
        sample_data=sample_data,
        category=[{"token": f"cat{i}", "name": name, "index": i} for i, name in enumerate(RAW_CLASSES)],
        lidarseg=[{"token": "seg0", "sample_data_token": lidar["sample_data_token"], "filename": labels_rel}],
    )
    (root / VERSION).mkdir(parents=True)
    for name, records in tables.items():
        (root / VERSION / f"{name}.json").write_text(json.dumps(records))
    return root, sample_token


def bench_preprocess(repeats: int, tmp: Path) -> dict[str, Any]:
    root, token = real_sample_root(tmp)
    nusc = NuScenes(root, VERSION)
    out = tmp / "preprocessed.h5"
    t_read, c_read, group = timed(lambda: preprocess_sample(nusc, token), repeats)
    t_write, c_write, _ = timed(lambda: write_h5_groups(out, {token: group}), repeats)
    # Table load: a table set with 200k more sweep records, scaled to trainval's record count; and
    # writing it back as JSON (what the scenes checkpoint does to write per-scene slices, with orjson).
    big_root, _ = real_sample_root(tmp / "big", extra_records=200_000)
    _, c_load, big = timed(lambda: NuScenes(big_root, VERSION), 2)
    n_records = len(big.tables["sample_data"]) + len(big.tables["ego_pose"])
    records = list(big.tables["sample_data"].values()) + list(big.tables["ego_pose"].values())
    _, c_dump, _ = timed(lambda: orjson.dumps(records), 2)
    load_us, dump_us = c_load / n_records * 1e6, c_dump / n_records * 1e6
    per_scene = TRAINVAL_TABLE_RECORDS / TRAINVAL["scenes"]
    return {
        "read_project_sweeps_s": round(t_read, 4),
        "read_project_sweeps_cpu_s": round(c_read, 4),
        "h5_write_s": round(t_write, 4),
        "h5_write_cpu_s": round(c_write, 4),
        "wall_s": t_read + t_write,
        "cpu_s": c_read + c_write,
        "sweep_points": int(len(group["sweeps"])),
        "h5_bytes_per_keyframe": int(out.stat().st_size),
        "table_load": {
            "records_timed": n_records,
            "load_cpu_us_per_record": round(load_us, 3),
            "dump_cpu_us_per_record": round(dump_us, 3),
            "trainval_records": TRAINVAL_TABLE_RECORDS,
            # Before the per-scene slices every preprocess job loaded all tables.
            "whole_tables_cpu_s_per_job": round(load_us * TRAINVAL_TABLE_RECORDS / 1e6, 1),
            "slice_cpu_s_per_job": round(load_us * per_scene / 1e6, 3),
            # Once, in the scenes checkpoint: load everything, write 850 slices (serial).
            "scenes_checkpoint_cpu_s": round((load_us + dump_us) * TRAINVAL_TABLE_RECORDS / 1e6, 1),
        },
    }


# ---- superpixels ---------------------------------------------------------------------------------


def decode(path: Path, draft: bool = False) -> np.ndarray:
    with Image.open(path) as img:
        if draft:  # JPEG DCT scaling: decode 1600x900 at 800x450 directly
            img.draft("RGB", (img.width // 2, img.height // 2))
        return np.asarray(img.convert("RGB"))


def boundary_recall(ref: np.ndarray, labels: np.ndarray, tol: int = 2) -> float:
    """Share of `ref`'s boundary pixels within `tol` pixels of a boundary of `labels`."""

    def edges(lab: np.ndarray) -> np.ndarray:
        e = np.zeros(lab.shape, dtype=bool)
        e[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        e[:-1, :] |= lab[:-1, :] != lab[1:, :]
        return e

    near = cv2.dilate(edges(labels).astype(np.uint8), np.ones((2 * tol + 1, 2 * tol + 1), np.uint8)) > 0
    ref_edges = edges(ref)
    return float(near[ref_edges].mean())


def achievable_accuracy(ref: np.ndarray, labels: np.ndarray) -> float:
    """Share of pixels whose `labels` segment's majority `ref` segment is their own (ASA)."""
    pair = labels.astype(np.int64) * (int(ref.max()) + 1) + ref
    counts = np.bincount(pair.ravel())
    best = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    np.maximum.at(best, np.arange(len(counts)) // (int(ref.max()) + 1), counts)
    return float(best.sum() / ref.size)


def bench_superpixels(repeats: int) -> dict[str, Any]:
    paths = sorted(NUSC.glob("*__CAM_*.jpg"))
    images = [decode(p) for p in paths]
    size = SuperpixelConfig().size
    small = [resize_like_pil(im, size) for im in images]
    hsv = [seeds_input(s.copy()) for s in small]
    cfg = SuperpixelConfig()
    seeds_superpixels(images[0], cfg)  # numba: load (or compile) the cached machine code first

    def opencv_seeds(x: np.ndarray) -> np.ndarray:
        return seeds_labels(x, replace(cfg, backend="opencv"))

    def numba_seeds(x: np.ndarray) -> np.ndarray:
        return seeds_labels(x, replace(cfg, backend="numba"))

    parts = {
        "decode": timed(lambda: [decode(p) for p in paths], repeats),
        "resize": timed(lambda: [resize_like_pil(im, size) for im in images], repeats),
        # What the superpixels job does now: decode and resize on PIL's buffer (same pixels).
        "decode_resize": timed(lambda: [read_camera_image(p, size) for p in paths], repeats),
        "hsv": timed(lambda: [seeds_input(s.copy()) for s in small], repeats),
        "seeds_numba": timed(lambda: [numba_seeds(x) for x in hsv], repeats),
        "seeds_opencv": timed(lambda: [opencv_seeds(x) for x in hsv], max(1, repeats // 2)),
        "decode_draft": timed(lambda: [decode(p, draft=True) for p in paths], repeats),
    }
    labels_numba = parts["seeds_numba"][2]
    labels_opencv = parts["seeds_opencv"][2]
    identical = all(np.array_equal(a, b) for a, b in zip(labels_numba, labels_opencv, strict=True))
    # Reduced-scale JPEG decode: how far its 360x640 input and superpixels are from the exact path.
    draft_small = [resize_like_pil(im, size) for im in parts["decode_draft"][2]]
    draft_labels = [numba_seeds(seeds_input(s.copy())) for s in draft_small]
    pixel_diff = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(small, draft_small, strict=True)]
    draft = {
        "decode_s_per_frame": round(parts["decode_draft"][0], 4),
        "input_mean_abs_diff": round(float(np.mean([d.mean() for d in pixel_diff])), 3),
        "input_max_abs_diff": int(max(d.max() for d in pixel_diff)),
        "labels_identical": all(
            np.array_equal(a, b) for a, b in zip(labels_numba, draft_labels, strict=True)
        ),
        "boundary_recall_2px": round(
            float(np.mean([boundary_recall(a, b) for a, b in zip(labels_numba, draft_labels, strict=True)])),
            4,
        ),
        "achievable_accuracy": round(
            float(
                np.mean([achievable_accuracy(a, b) for a, b in zip(labels_numba, draft_labels, strict=True)])
            ),
            4,
        ),
    }
    per = {k: {"wall_s": round(v[0], 4), "cpu_s": round(v[1], 4)} for k, v in parts.items()}
    keys = ("decode_resize", "hsv", "seeds_numba")
    before_keys = ("decode", "resize", "hsv", "seeds_opencv")
    return {
        "parts_per_frame": per,
        "wall_s": sum(parts[k][0] for k in keys),
        "cpu_s": sum(parts[k][1] for k in keys),
        "opencv_wall_s": sum(parts[k][0] for k in before_keys),
        "opencv_cpu_s": sum(parts[k][1] for k in before_keys),
        "numba_labels_identical_to_opencv": identical,
        "decode_resize_identical": all(
            np.array_equal(a, b) for a, b in zip(small, parts["decode_resize"][2], strict=True)
        ),
        "draft_decode": draft,
    }


# ---- per-job fixed cost ------------------------------------------------------------------------------


# What each stage's script imports (workflow/scripts/*.py), after Snakemake's script preamble.
STAGE_IMPORTS = {
    "preprocess": "weak3d.datasets.nuscenes, weak3d.stages.preprocess",
    "presegment": "weak3d.stages.presegment",
    "superpixels": "weak3d.stages.superpixels, PIL.Image",
    "weak_labels": "weak3d.stages.weak_labels",
}
# A first call on a tiny input, where that loads numba's cached machine code (once per job). Not for
# superpixels: its call would also do a frame's work (its numba load is not in the fixed cost).
STAGE_FIRST_CALL = {
    "presegment": "import numpy as np; x = np.random.default_rng(0).normal(size=(3000, 3)); "
    "weak3d.stages.presegment.presegment(x, x, np.ones(3000, bool))",
}


def job_startup_s(stage: str) -> float:
    """Python start, the imports and the numba load of one job of `stage` (fastest of 3 runs)."""
    code = f"import snakemake.script, weak3d.io, weak3d.jobs, tqdm, h5py, {STAGE_IMPORTS[stage]}"
    if stage in STAGE_FIRST_CALL:
        code += "; " + STAGE_FIRST_CALL[stage]
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        best = min(best, time.perf_counter() - t)
    return float(best)


# ---- main ----------------------------------------------------------------------------------------------


def stage(wall: float, cpu: float, **extra: Any) -> dict[str, Any]:
    return {
        "seconds_per_frame": round(cpu, 4),
        "wall_seconds_per_frame": round(wall, 4),
        "frames_per_s_per_core": round(1.0 / cpu, 3),
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "stage_throughput.json"))
    args = ap.parse_args()
    if not NUSC.is_dir():
        sys.exit(f"{NUSC}: real sample files not found (../shared/realdata/nuscenes)")
    cv2.setNumThreads(1)
    o3d.utility.set_max_threads(1)

    with tempfile.TemporaryDirectory(prefix="weak3d-bench-") as tmp:
        pre = bench_preprocess(args.repeats, Path(tmp))

    pts, visible = real_sweep()
    xyz = pts[:, :3]
    sweeps = stand_in_sweeps(xyz)
    cfg = PresegmentConfig()
    t_ground, c_ground, ground_vis = timed(lambda: fit_ground(xyz[visible], sweeps, cfg), args.repeats)
    ground = np.zeros(len(xyz), dtype=bool)
    ground[visible] = ground_vis
    t_cluster, c_cluster, _ = timed(lambda: cluster_nonground(xyz, visible & ~ground), args.repeats)
    t_preseg, c_preseg, (ground, _, segment) = timed(
        lambda: presegment(xyz, sweeps, visible, cfg), args.repeats
    )
    ransac = bench_ransac(xyz[visible], sweeps, args.repeats)
    # Before: scikit-learn's HDBSCAN.fit builds the tree (its Prim in Cython), then the selection.
    nonground = xyz[visible & ~ground].astype(np.float64)

    def sklearn_cluster() -> np.ndarray:
        h = HDBSCAN(min_cluster_size=cfg.min_cluster_size, copy=False).fit(nonground)
        return select_clusters(h._single_linkage_tree_, len(nonground), cfg.min_cluster_size, 0.5)

    _, c_cluster_before, _ = timed(sklearn_cluster, args.repeats)

    sp = bench_superpixels(args.repeats)

    gt = made_up_gt(ground, segment)
    t_weak, c_weak, labels = timed(lambda: weak_labels(gt, ground, segment, "bench-token"), args.repeats)
    _, c_stats, stats = timed(lambda: label_statistics([labels], [gt], [visible]), args.repeats)

    result: dict[str, Any] = {
        "input": {
            "points": int(len(xyz)),
            "visible_points": int(visible.sum()),
            "sweep_points_stand_in": int(len(sweeps)),
            "images_per_frame": 6,
            "image_size_in": [900, 1600],
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_on_machine": os.cpu_count(),
            "threads": 1,
            "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2),
        },
        "repeats": args.repeats,
        "preprocess": stage(pre.pop("wall_s"), pre.pop("cpu_s"), **pre),
        "presegment": stage(
            t_preseg,
            c_preseg,
            ground_fit_cpu_s=round(c_ground, 4),
            hdbscan_cpu_s=round(c_cluster, 4),
            hdbscan_sklearn_cpu_s=round(c_cluster_before, 4),
            numba_ransac=ransac,
            ground_points=int(ground.sum()),
            segments=int(len(np.unique(segment[segment >= 0]))),
        ),
        "superpixels": stage(sp.pop("wall_s"), sp.pop("cpu_s"), **sp),
        "weak_labels": stage(
            t_weak,
            c_weak,
            label_statistics_cpu_s=round(c_stats, 4),
            sparse_points=int(np.count_nonzero(labels.sparse)),
            propagated_rate=round(stats["propagated_rate"], 4),
            candidate_rate=round(stats["candidate_rate"], 4),
        ),
    }
    startup = {name: job_startup_s(name) for name in STAGE_IMPORTS}
    after = {
        k: result[k]["seconds_per_frame"] for k in ("preprocess", "presegment", "superpixels", "weak_labels")
    }
    tl = result["preprocess"]["table_load"]
    # The presegment default is the numba RANSAC now; open3d's is the opt-in release RANSAC.
    open3d_ransac = {**after, "presegment": c_preseg - c_ground + ransac["open3d_cpu_s"]}
    before = {
        **after,
        "presegment": open3d_ransac["presegment"] - c_cluster + c_cluster_before,
        "superpixels": result["superpixels"]["opencv_cpu_s"],
    }
    result["projection"] = {
        "cores": CORES,
        "trainval": TRAINVAL,
        "job_startup_s": {k: round(v, 2) for k, v in startup.items()},
        "goal_min": 15,
        # OpenCV SEEDS, open3d RANSAC, scikit-learn HDBSCAN, every preprocess job loading the whole
        # table set (the fixed costs are today's).
        "before": projection(before, startup, tl["whole_tables_cpu_s_per_job"], 0.0),
        # The defaults now: numba SEEDS, RANSAC and HDBSCAN tree (same outputs as OpenCV and
        # scikit-learn; other RANSAC draws than open3d's), per-scene table slices.
        "after": projection(after, startup, tl["slice_cpu_s_per_job"], tl["scenes_checkpoint_cpu_s"]),
        # With the opt-in open3d RANSAC (presegment.ransac: open3d; it also imports open3d, not in
        # the fixed cost here).
        "after_open3d_ransac": projection(
            open3d_ransac, startup, tl["slice_cpu_s_per_job"], tl["scenes_checkpoint_cpu_s"]
        ),
    }
    result["projection"]["io_gb"] = io_volume(result)
    write_json(args.out, result)
    print_table(result)
    print(f"written {args.out}")


def projection(
    per_frame: dict[str, float], startup_s: dict[str, float], tables_s_per_job: float, serial_s: float
) -> dict[str, Any]:
    """Core-seconds per stage over trainval and the wall time on CORES cores.

    Per-scene jobs scale perfectly over the cores; `serial_s` (the scenes checkpoint) runs alone first.
    """
    kf, train = TRAINVAL["keyframes"], TRAINVAL["train_keyframes"]
    scenes, train_scenes = TRAINVAL["scenes"], TRAINVAL["train_scenes"]
    stages = {
        # (keyframes the stage sees in the DAG, jobs, fixed seconds per job)
        "preprocess": (kf, scenes, startup_s["preprocess"] + tables_s_per_job),
        "presegment": (train, train_scenes, startup_s["presegment"]),
        "superpixels": (train, train_scenes, startup_s["superpixels"]),
        "weak_labels": (train, train_scenes, startup_s["weak_labels"]),
    }
    out: dict[str, Any] = {"scenes_checkpoint_min": round(serial_s / 60, 1)}
    total = total_all = 0.0
    for name, (frames, jobs, fixed) in stages.items():
        per = per_frame[name]
        core_s = frames * per + jobs * fixed
        total += core_s
        total_all += kf * per + scenes * fixed  # every stage on every scene
        out[name] = {
            "seconds_per_frame": round(per, 4),
            "frames_per_s_per_core": round(1 / per, 3),
            "keyframes": frames,
            "jobs": jobs,
            "fixed_s_per_job": round(fixed, 2),
            "core_hours": round(core_s / 3600, 2),
            "wall_min_on_16_cores": round(core_s / CORES / 60, 1),
        }
    out["total_core_hours"] = round(total / 3600, 2)
    out["total_wall_min_on_16_cores"] = round((total / CORES + serial_s) / 60, 1)
    # If every stage ran on all 34,149 keyframes (e.g. superpixels for val too).
    out["all_stages_all_keyframes_wall_min_on_16_cores"] = round((total_all / CORES + serial_s) / 60, 1)
    out["meets_15_min_goal"] = out["total_wall_min_on_16_cores"] < 15
    return out


def io_volume(r: dict[str, Any]) -> dict[str, float]:
    """GB each stage moves over trainval (not in the per-frame times: reads came from the cache)."""
    kf, train = TRAINVAL["keyframes"], TRAINVAL["train_keyframes"]
    h5 = r["preprocess"]["h5_bytes_per_keyframe"]
    lidar = 20 * r["input"]["points"]  # float32 x 5 per point
    return {
        "preprocess_lidar_read": round(kf * 6 * lidar / 1e9, 1),  # keyframe + 5 sweeps
        "preprocess_h5_write": round(kf * h5 / 1e9, 1),
        "presegment_h5_read": round(train * h5 / 1e9, 1),
        "superpixels_jpeg_read": round(train * 6 * 145e3 / 1e9, 1),
    }


def bench_ransac(keyframe: np.ndarray, sweeps: np.ndarray, repeats: int) -> dict[str, Any]:
    """Ground-fit time of the numba RANSAC (the default) and of open3d's (opt-in), and how their
    ground masks differ.

    Disagreement = share of keyframe points labelled differently, averaged over pairs of seeds
    0-3: open3d vs open3d (seed-to-seed), numba vs numba, and open3d vs numba.
    """
    numba_cfg = PresegmentConfig(ransac="numba")
    open3d_cfg = PresegmentConfig(ransac="open3d")
    fit_ground(keyframe[:2000], sweeps[:2000], numba_cfg)  # load the compiled code
    _, cpu, _ = timed(lambda: fit_ground(keyframe, sweeps, numba_cfg), repeats)
    _, cpu_open3d, _ = timed(lambda: fit_ground(keyframe, sweeps, open3d_cfg), repeats)
    seeds = range(4)
    o = [fit_ground(keyframe, sweeps, PresegmentConfig(seed=k, ransac="open3d")) for k in seeds]
    n = [fit_ground(keyframe, sweeps, PresegmentConfig(seed=k, ransac="numba")) for k in seeds]

    def apart(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        pairs = [(x != y).mean() for i, x in enumerate(a) for j, y in enumerate(b) if a is not b or i < j]
        return round(float(np.mean(pairs)) * 100, 3)

    return {
        "cpu_s": round(cpu, 4),
        "open3d_cpu_s": round(cpu_open3d, 4),
        "disagreement_pct_open3d_vs_open3d": apart(o, o),
        "disagreement_pct_numba_vs_numba": apart(n, n),
        "disagreement_pct_open3d_vs_numba": apart(o, n),
        "ground_points_open3d": [int(x.sum()) for x in o],
        "ground_points_numba": [int(x.sum()) for x in n],
    }


def print_table(r: dict[str, Any]) -> None:
    p = r["projection"]
    b, a, f = p["before"], p["after"], p["after_open3d_ransac"]
    print(
        f"{'stage':12s} {'before s/fr':>11s} {'after s/fr':>10s} {'frames/s/core':>13s} "
        f"{'keyframes':>9s} {'min, 16 cores':>13s}"
    )
    for name in ("preprocess", "presegment", "superpixels", "weak_labels"):
        print(
            f"{name:12s} {b[name]['seconds_per_frame']:11.3f} {a[name]['seconds_per_frame']:10.3f} "
            f"{a[name]['frames_per_s_per_core']:13.2f} {a[name]['keyframes']:9d} "
            f"{a[name]['wall_min_on_16_cores']:13.1f}"
        )
    print(f"{'scenes ckpt':12s} {'':11s} {'':10s} {'':13s} {'1 job':>9s} {a['scenes_checkpoint_min']:13.1f}")
    for label, q in (("before", b), ("after", a), ("after, open3d RANSAC", f)):
        print(
            f"trainval on 16 cores, {label}: {q['total_wall_min_on_16_cores']} min "
            f"({q['all_stages_all_keyframes_wall_min_on_16_cores']} min if every stage saw all keyframes); "
            f"goal < {p['goal_min']} min"
        )
    print(
        f"numba SEEDS labels identical to OpenCV's: {r['superpixels']['numba_labels_identical_to_opencv']}; "
        f"numba RANSAC ground disagreement vs open3d "
        f"{r['presegment']['numba_ransac']['disagreement_pct_open3d_vs_numba']} % "
        f"(open3d seed to seed {r['presegment']['numba_ransac']['disagreement_pct_open3d_vs_open3d']} %)"
    )


if __name__ == "__main__":
    main()
