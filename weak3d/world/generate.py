"""generate_world: lay out the scenes, simulate LiDAR and cameras, write the nuScenes-format root.

Layout under ROOT (exactly the nuScenes v1.0 + lidarseg layout, plus weak3d side files):
    <version>/*.json                      the 14 tables
    samples/LIDAR_TOP/*.pcd.bin           key-frame sweeps, float32 x5 (x, y, z, intensity, ring)
    sweeps/LIDAR_TOP/*.pcd.bin            the sweeps in between (and before the first key frame)
    samples/CAM_*/*.jpg                   six 1600x900 key-frame images per sample
    lidarseg/<version>/<token>_lidarseg.bin   uint8 raw category index per key-frame point
    weak3d_classmaps/<camera sample_data token>.png   uint8 raw category index per pixel (0 = sky)
    weak3d_splits.json                    {"train": [scene names], "val": [scene names]}
    weak3d_world.json                     the WorldConfig that made this root

Scenes are independent (own RNG streams from (seed, scene index)), so they are generated in
parallel worker processes; the output does not depend on the number of workers.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from weak3d.io import atomic_path
from weak3d.world import tables as tb
from weak3d.world.camera import camera_rays, render
from weak3d.world.config import WorldConfig
from weak3d.world.layout import Scene, build_scene
from weak3d.world.lidar import LidarModel, simulate_sweep
from weak3d.world.raycast import Caster, things_at
from weak3d.world.rig import CAMERAS, LIDAR, ego_matrix, make_rig, pose, rot_z

CLASSMAP_DIR = "weak3d_classmaps"
SPLIT_FILE = "weak3d_splits.json"
WORLD_FILE = "weak3d_world.json"
BASE_TIMESTAMP = 1_533_000_000_000_000  # microseconds, mid-2018 like nuScenes


def _scene_to_global(rng: np.random.Generator) -> np.ndarray:
    """Scene frame -> global (map) frame: a heading and an offset of a few hundred metres."""
    return pose(
        rot_z(float(rng.uniform(-np.pi, np.pi))),
        [float(rng.uniform(300, 2500)), float(rng.uniform(300, 2500)), 0.0],
    )


def _visibility(n_points: int, size: tuple[float, float, float], dist: float, model: LidarModel) -> str:
    """Visibility level from LiDAR points against the count an unoccluded box would get (approximate)."""
    az_res = 2 * np.pi / model.azimuth_steps
    el_res = np.radians(model.elev_max - model.elev_min) / max(model.beams - 1, 1)
    extent = max(size[0], size[1]) * 0.8
    expected = max(1.0, (extent / max(dist, 1.0) / az_res) * (size[2] / max(dist, 1.0) / el_res))
    frac = n_points / expected
    return "1" if frac < 0.4 else "2" if frac < 0.6 else "3" if frac < 0.8 else "4"


def generate_scene(cfg: WorldConfig, idx: int, root: Path) -> dict[str, list[dict[str, Any]]]:
    """Write one scene's files under root and return its table records."""
    seed = cfg.seed
    name = f"scene-{idx:04d}"
    rng = np.random.default_rng([seed, idx, 0])
    period = cfg.lidar_period_us
    n_sweeps = cfg.lead_sweeps + (cfg.samples_per_scene - 1) * (cfg.sweeps_per_interval + 1) + 1
    key_index = [cfg.lead_sweeps + j * (cfg.sweeps_per_interval + 1) for j in range(cfg.samples_per_scene)]
    duration = (n_sweeps - 1) * period / 1e6
    scene: Scene = build_scene(rng, duration, (cfg.ego_speed_min, cfg.ego_speed_max))
    rig = make_rig(rng, cfg.image_width, cfg.image_height)
    G = _scene_to_global(rng)
    yaw_g = float(np.arctan2(G[1, 0], G[0, 0]))
    ts0 = BASE_TIMESTAMP + idx * 3_600_000_000 + int(rng.integers(0, 10_000_000))
    jitter = rng.integers(-300, 301, n_sweeps)
    sweep_ts = [ts0 + k * period + (int(jitter[k]) if 0 < k < n_sweeps - 1 else 0) for k in range(n_sweeps)]
    log = f"w3d{seed:04d}-{idx:04d}"
    model = LidarModel(
        cfg.lidar_beams, cfg.azimuth_steps, max_range=cfg.lidar_range, range_noise=cfg.range_noise
    )
    elev_jitter = rng.normal(0, 0.04, cfg.lidar_beams)
    grain = rng.standard_normal(cfg.image_width * cfg.image_height, dtype=np.float32) * np.float32(0.02)

    log_token = tb.token(seed, "log", idx)
    scene_token = tb.token(seed, "scene", idx)
    cs_tokens = {ch: tb.token(seed, "calibrated_sensor", idx, ch) for ch in rig}
    calibrated = []
    for ch, sensor in rig.items():
        rec = tb.pose_record(cs_tokens[ch], sensor.to_ego)
        rec["sensor_token"] = tb.sensor_token(seed, ch)
        rec["camera_intrinsic"] = sensor.intrinsic.tolist() if sensor.intrinsic is not None else []
        calibrated.append(rec)
    samples = [
        {"token": tb.token(seed, "sample", idx, j), "timestamp": sweep_ts[k], "scene_token": scene_token}
        for j, k in enumerate(key_index)
    ]
    tb.link_chain(samples)
    for rec in samples:  # nuScenes field order: token, timestamp, prev, next, scene_token
        rec["scene_token"] = rec.pop("scene_token")

    caster = Caster(scene.stuff)
    cam_rays = {ch: camera_rays(rig[ch].intrinsic, cfg.image_width, cfg.image_height) for ch in CAMERAS}
    sd_lidar: list[dict[str, Any]] = []
    sd_cams: dict[str, list[dict[str, Any]]] = {ch: [] for ch in CAMERAS}
    ego_poses, lidarseg, annotations = [], [], []
    ann_by_inst: dict[int, list[dict[str, Any]]] = {}

    def ego_global(ts: int) -> tuple[np.ndarray, np.ndarray]:
        pos, yaw, pitch, roll = scene.ego.pose((ts - ts0) / 1e6)
        E = ego_matrix(pos, yaw, pitch, roll)
        return E, G @ E

    def sample_data(tok: str, ch: str, ts: int, key: bool, sample_tok: str, filename: str, w: int, h: int):
        return {
            "token": tok,
            "sample_token": sample_tok,
            "ego_pose_token": tok,
            "calibrated_sensor_token": cs_tokens[ch],
            "timestamp": ts,
            "fileformat": "pcd" if ch == LIDAR else "jpg",
            "is_key_frame": key,
            "height": h,
            "width": w,
            "filename": filename,
        }

    for k, ts in enumerate(sweep_ts):
        key = k in key_index
        j_near = int(np.argmin([abs(ts - sweep_ts[ki]) for ki in key_index]))  # nearest sample
        t = (ts - ts0) / 1e6
        caster.set_things(things_at(scene, t))
        E, EG = ego_global(ts)
        sweep = simulate_sweep(
            model, caster, E @ rig[LIDAR].to_ego, np.random.default_rng([seed, idx, 1, k]), elev_jitter
        )
        folder = "samples" if key else "sweeps"
        filename = f"{folder}/{LIDAR}/{log}__{LIDAR}__{ts}.pcd.bin"
        sweep.points.tofile(root / filename)
        tok = tb.token(seed, "sample_data", idx, LIDAR, k)
        sd_lidar.append(sample_data(tok, LIDAR, ts, key, samples[j_near]["token"], filename, 0, 0))
        ego_poses.append(tb.pose_record(tok, EG, ts))
        if not key:
            continue
        j = key_index.index(k)
        seg = f"lidarseg/{cfg.version}/{tok}_lidarseg.bin"
        sweep.labels.tofile(root / seg)
        lidarseg.append({"token": tok, "sample_data_token": tok, "filename": seg})
        _annotate(
            cfg,
            scene,
            model,
            sweep.inst,
            t,
            G,
            yaw_g,
            E @ rig[LIDAR].to_ego,
            samples[j]["token"],
            idx,
            j,
            ann_by_inst,
        )
        for ch in CAMERAS:
            sensor = rig[ch]
            ts_c = ts + sensor.time_offset_us
            caster.set_things(things_at(scene, (ts_c - ts0) / 1e6))
            Ec, EGc = ego_global(ts_c)
            noise = np.roll(grain, int(rng.integers(grain.size)))
            img, cls = render(caster, cam_rays[ch], Ec @ sensor.to_ego, scene.sun, noise)
            tok_c = tb.token(seed, "sample_data", idx, ch, j)
            fname = f"samples/{ch}/{log}__{ch}__{ts_c}.jpg"
            ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            ok2, buf2 = cv2.imencode(".png", cls, [cv2.IMWRITE_PNG_COMPRESSION, 3])
            if not (ok and ok2):
                raise RuntimeError(f"{name}: could not encode image {fname}")
            (root / fname).write_bytes(buf.tobytes())
            (root / CLASSMAP_DIR / f"{tok_c}.png").write_bytes(buf2.tobytes())
            sd_cams[ch].append(
                sample_data(
                    tok_c, ch, ts_c, True, samples[j]["token"], fname, cfg.image_width, cfg.image_height
                )
            )
            ego_poses.append(tb.pose_record(tok_c, EGc, ts_c))

    tb.link_chain(sd_lidar)
    for ch in CAMERAS:
        tb.link_chain(sd_cams[ch])
    instances = []
    for inst in sorted(ann_by_inst):
        anns = ann_by_inst[inst]
        tb.link_chain(anns)
        annotations += anns
        th = scene.things[inst]
        instances.append(
            {
                "token": tb.token(seed, "instance", idx, inst),
                "category_token": tb.category_token(seed, th.raw),
                "nbr_annotations": len(anns),
                "first_annotation_token": anns[0]["token"],
                "last_annotation_token": anns[-1]["token"],
            }
        )
    location = "synthetic-boston" if "right-hand" in scene.description else "synthetic-singapore"
    return {
        "log": [
            {
                "token": log_token,
                "logfile": log,
                "vehicle": "w3d-ego",
                "date_captured": "2018-08-01",
                "location": location,
            }
        ],
        "scene": [
            {
                "token": scene_token,
                "log_token": log_token,
                "nbr_samples": len(samples),
                "first_sample_token": samples[0]["token"],
                "last_sample_token": samples[-1]["token"],
                "name": name,
                "description": scene.description,
            }
        ],
        "sample": samples,
        "sample_data": sd_lidar + [r for ch in CAMERAS for r in sd_cams[ch]],
        "ego_pose": ego_poses,
        "calibrated_sensor": calibrated,
        "lidarseg": lidarseg,
        "instance": instances,
        "sample_annotation": annotations,
    }


def _annotate(
    cfg: WorldConfig,
    scene: Scene,
    model: LidarModel,
    inst: np.ndarray,
    t: float,
    G: np.ndarray,
    yaw_g: float,
    lidar_to_scene: np.ndarray,
    sample_token: str,
    idx: int,
    j: int,
    out: dict[int, list[dict[str, Any]]],
) -> None:
    """sample_annotation records for every object with at least one LiDAR point in this key frame."""
    counts = np.bincount(inst[inst >= 0], minlength=len(scene.things))
    sensor = lidar_to_scene[:3, 3]
    for th in scene.things:
        n = int(counts[th.inst])
        if n == 0:
            continue
        x, y = th.xy(t)
        z = float(scene.ground.height_at(x, y)) + th.size[2] / 2
        center = G @ np.array([x, y, z, 1.0])
        L, W, H = th.size
        rec = {
            "token": tb.token(cfg.seed, "sample_annotation", idx, th.inst, j),
            "sample_token": sample_token,
            "instance_token": tb.token(cfg.seed, "instance", idx, th.inst),
            "visibility_token": _visibility(n, th.size, float(np.hypot(x - sensor[0], y - sensor[1])), model),
            "attribute_tokens": [tb.attribute_token(cfg.seed, th.attribute)] if th.attribute else [],
            "translation": [float(v) for v in center[:3]],
            "size": [float(W), float(L), float(H)],
            "rotation": tb.quaternion_wxyz(rot_z(th.yaw + yaw_g)),
            "num_lidar_pts": n,
            "num_radar_pts": 0,
        }
        out.setdefault(th.inst, []).append(rec)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _scene_job(args: tuple[dict[str, Any], int, str]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    cfg_dict, idx, root = args
    return idx, generate_scene(WorldConfig(**cfg_dict), idx, Path(root))


@contextlib.contextmanager
def _spawn_without_caller_main() -> Iterator[None]:
    """Keep spawned workers from re-running the caller's script.

    spawn re-imports a `__main__` that was run from a file path in every worker; for a Snakemake
    `script:` (or any plain script) that would run the whole job again inside each worker. The
    workers only need `_scene_job`, which lives in this importable module.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    hide = path is not None and getattr(main, "__spec__", None) is None
    if hide:
        del main.__file__
    try:
        yield
    finally:
        if hide:
            main.__file__ = path


def generate_world(
    root: str | os.PathLike, cfg: WorldConfig | None = None, workers: int | None = None, progress: bool = True
) -> Path:
    """Generate the whole world into `root` atomically; returns root.

    workers: processes (default: CPU count, at most n_scenes); open3d's ray casting is
    single-threaded here, so processes are what uses the cores.
    """
    cfg = cfg or WorldConfig()
    cfg.validate()
    root = Path(root)
    workers = max(1, min(workers or os.cpu_count() or 1, cfg.n_scenes))
    with atomic_path(root, is_dir=True) as tmp:
        for sub in [
            f"samples/{LIDAR}",
            f"sweeps/{LIDAR}",
            f"lidarseg/{cfg.version}",
            CLASSMAP_DIR,
            *(f"samples/{ch}" for ch in CAMERAS),
        ]:
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        jobs = [(cfg.to_dict(), i, str(tmp)) for i in range(cfg.n_scenes)]
        bar = tqdm(total=cfg.n_scenes, desc="world scenes", unit="scene", disable=not progress)
        if workers == 1:
            results = []
            for job in jobs:
                results.append(_scene_job(job)[1])
                bar.update()
        else:
            # spawn, not fork: open3d/TBB thread pools do not survive a fork. One BLAS/OpenMP thread
            # per worker: the workers already use every core.
            saved = {k: os.environ.get(k) for k in _THREAD_VARS}
            os.environ.update({k: "1" for k in _THREAD_VARS})
            try:
                with _spawn_without_caller_main(), mp.get_context("spawn").Pool(workers) as pool:
                    by_index = {}
                    for i, res in pool.imap_unordered(_scene_job, jobs):
                        by_index[i] = res
                        bar.update()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            results = [by_index[i] for i in range(cfg.n_scenes)]
        bar.close()

        tables = tb.fixed_tables(cfg.seed)
        for name in tb.TABLES:
            tables.setdefault(name, [])
        for res in results:
            for name, records in res.items():
                tables[name] += records
        tables["map"] = [
            {
                "token": tb.token(cfg.seed, "map"),
                "log_tokens": [r["token"] for r in tables["log"]],
                "category": "semantic_prior",
                "filename": "",
            }
        ]
        tb.write_tables(tmp / cfg.version, tables)

        names = [f"scene-{i:04d}" for i in range(cfg.n_scenes)]
        val_idx = set(
            np.random.default_rng([cfg.seed, 999])
            .choice(cfg.n_scenes, cfg.n_val_scenes, replace=False)
            .tolist()
        )
        split = {
            "train": [n for i, n in enumerate(names) if i not in val_idx],
            "val": [n for i, n in enumerate(names) if i in val_idx],
        }
        (tmp / SPLIT_FILE).write_text(json.dumps(split, indent=2) + "\n")
        (tmp / WORLD_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return root
