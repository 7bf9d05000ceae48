"""How long Snakemake takes to build the whole DAG for a nuScenes-trainval-sized dataset (issue #7).

Writes a v1.0-trainval-sized table set (850 scenes, 34,149 samples; 700 train / 150 val scenes as in
the devkit split) into a temporary root, with no data files: the scenes checkpoint and a dry run only
read tables. The tables hold what the reader loads and cross-checks (weak3d/datasets/nuscenes.py):
every required table, consistent tokens, sample chains per scene, and one LIDAR_TOP key-frame
sample_data (with ego pose and calibration) per sample. Camera and sweep sample_data are left out:
nothing before the per-scene jobs reads them, and the reader checks only references that exist.

Then it runs the scenes checkpoint for real and times `snakemake -n` of the default target (every
.miou and the summary) with `source: local`:
- `parse`: a dry run of results/{ds}/scenes.json alone (Python start, Snakefile parse, config
  validation, a one-job DAG), the fixed cost of any invocation;
- `dag`: the dry run of everything, ~3,200 jobs; `dag - parse` is the DAG build proper.
Each is repeated and the fastest run is kept (the machine is shared; the minimum is the least noisy).

    python bench/dag_scale.py [--repeats 3] [--out bench/results/dag_scale.json] [--profile]

A last dry run goes through profiles/slurm and counts the group jobs the per-scene stages become.

--profile also writes a cProfile of one full dry run (in-process) to bench/results/dag_scale.prof
and prints its top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from weak3d.classes import RAW_CLASSES  # noqa: E402

DS = "trainval"
VERSION = "v1.0-trainval"
N_SCENES = 850
N_SAMPLES = 34149  # v1.0-trainval
N_TRAIN = 700
N_LOGS = 68  # trainval has 68 logs; scenes are spread over them


def token(kind: str, i: int) -> str:
    """A deterministic 32-hex token like nuScenes' (unique within its table)."""
    return hashlib.md5(f"{kind}-{i}".encode()).hexdigest()


def write_tables(root: Path) -> dict[str, int]:
    """The table set under root/VERSION plus root/split.json; returns record counts per table."""
    tables_dir = root / VERSION
    tables_dir.mkdir(parents=True)
    sensor = {"token": token("sensor", 0), "channel": "LIDAR_TOP", "modality": "lidar"}
    logs = [
        {
            "token": token("log", i),
            "logfile": f"n008-2018-08-01-15-16-36-{i:04d}",
            "vehicle": "n008",
            "date_captured": "2018-08-01",
            "location": "boston-seaport",
        }
        for i in range(N_LOGS)
    ]
    # Samples per scene: 34,149 over 850 scenes is 40 each plus one more for the first 149.
    per_scene = [N_SAMPLES // N_SCENES + (1 if i < N_SAMPLES % N_SCENES else 0) for i in range(N_SCENES)]
    scenes, samples, sample_data, ego_poses, calibrations = [], [], [], [], []
    index = 0
    timestamp = 1533151603547590
    for s, count in enumerate(per_scene):
        scene_token = token("scene", s)
        calibration = {
            "token": token("calibrated_sensor", s),
            "sensor_token": sensor["token"],
            "translation": [0.943713, 0.0, 1.84023],
            "rotation": [0.70779551, -0.00649224, 0.01064621, -0.70630731],
            "camera_intrinsic": [],
        }
        calibrations.append(calibration)
        tokens = [token("sample", index + k) for k in range(count)]
        log_name = logs[s % N_LOGS]["logfile"]
        for k, sample_token in enumerate(tokens):
            timestamp += 500_000  # key frames at 2 Hz
            sd_token = token("sample_data", index + k)
            samples.append(
                {
                    "token": sample_token,
                    "timestamp": timestamp,
                    "prev": tokens[k - 1] if k else "",
                    "next": tokens[k + 1] if k + 1 < count else "",
                    "scene_token": scene_token,
                }
            )
            ego_poses.append(
                {
                    "token": sd_token,  # nuScenes shares the token of a sample_data and its ego pose
                    "timestamp": timestamp,
                    "rotation": [1.0, 0.0, 0.0, 0.0],
                    "translation": [410.0 + 4.5 * k, 1180.0, 0.0],
                }
            )
            sample_data.append(
                {
                    "token": sd_token,
                    "sample_token": sample_token,
                    "ego_pose_token": sd_token,
                    "calibrated_sensor_token": calibration["token"],
                    "timestamp": timestamp,
                    "fileformat": "pcd",
                    "is_key_frame": True,
                    "height": 0,
                    "width": 0,
                    "filename": f"samples/LIDAR_TOP/{log_name}__LIDAR_TOP__{timestamp}.pcd.bin",
                    "prev": token("sample_data", index + k - 1) if k else "",
                    "next": token("sample_data", index + k + 1) if k + 1 < count else "",
                }
            )
        scenes.append(
            {
                "token": scene_token,
                "log_token": logs[s % N_LOGS]["token"],
                "nbr_samples": count,
                "first_sample_token": tokens[0],
                "last_sample_token": tokens[-1],
                "name": f"scene-{s + 1:04d}",
                "description": "synthetic table set for bench/dag_scale.py",
            }
        )
        index += count
    categories = [
        {"token": token("category", i), "name": name, "description": "", "index": i}
        for i, name in enumerate(RAW_CLASSES)
    ]
    tables = {
        "scene": scenes,
        "sample": samples,
        "sample_data": sample_data,
        "ego_pose": ego_poses,
        "calibrated_sensor": calibrations,
        "sensor": [sensor],
        "log": logs,
        "category": categories,
    }
    for name, records in tables.items():
        (tables_dir / f"{name}.json").write_text(json.dumps(records))
    names = [scene["name"] for scene in scenes]
    split = {"train": names[:N_TRAIN], "val": names[N_TRAIN:]}
    (root / "split.json").write_text(json.dumps(split))
    return {name: len(records) for name, records in tables.items()}


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--workflow-profile", "none", "--cores", "2", *args,
    ]  # fmt: skip


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds and combined output of one command (which must succeed)."""
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return seconds, run.stdout + run.stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: jobs per rule, and 'total'."""
    counts: dict[str, int] = {}
    table = dry_run_output.split("Job stats:")[-1]
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


def profile_dry_run(workdir: Path, out: Path) -> None:
    """cProfile of one full dry run inside this process; prints the top 25 by cumulative time."""
    import cProfile
    import pstats

    from snakemake.cli import main as snakemake_main

    profiler = cProfile.Profile()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        # The dry run lists every job; only the profile is wanted here.
        with open(os.devnull, "w") as devnull, redirect_stdout(devnull), redirect_stderr(devnull):
            profiler.enable()
            try:
                snakemake_main(snakemake_command(workdir, "-n", "all")[3:])
            except SystemExit:
                pass
            profiler.disable()
    finally:
        os.chdir(cwd)
    profiler.dump_stats(out)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dag_scale.json")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dag_scale_") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "nuscenes"
        start = time.perf_counter()
        counts = write_tables(root)
        write_s = time.perf_counter() - start
        workdir = tmp_path / "work"
        (workdir / "config").mkdir(parents=True)
        config = {
            "datasets": {
                DS: {
                    "source": "local",
                    "root": str(root),
                    "version": VERSION,
                    "split_file": str(root / "split.json"),
                }
            },
            "device": "cuda",
        }
        (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))

        scenes_s, _ = timed(snakemake_command(workdir, f"results/{DS}/scenes.json"))
        info = json.loads((workdir / "results" / DS / "scenes.json").read_text())
        assert len(info["train"]) == N_TRAIN and len(info["val"]) == N_SCENES - N_TRAIN
        assert sum(len(tokens) for tokens in info["samples"].values()) == N_SAMPLES

        parse, dag = [], []
        output = ""
        for _ in range(args.repeats):
            parse.append(timed(snakemake_command(workdir, "-n", f"results/{DS}/scenes.json"))[0])
            seconds, output = timed(snakemake_command(workdir, "-n", "all"))
            dag.append(seconds)
        jobs = job_counts(output)
        # The same dry run through the SLURM profile: how many sbatch submissions the per-scene
        # stages become once grouped (a dry run needs no SLURM).
        slurm_s, slurm_output = timed(
            [
                sys.executable,
                "-m",
                "snakemake",
                "-n",
                "--profile",
                "profiles/slurm",
                "--snakefile",
                str(ROOT / "Snakefile"),
                "--directory",
                str(workdir),
                "all",
            ]  # fmt: skip
        )
        group_jobs = len(re.findall(r"^\[.*\] Group job scenes", slurm_output, flags=re.M))
        if args.profile:
            profile_dry_run(workdir, args.out.with_suffix(".prof"))

    result = {
        "tables": counts,
        "split": {"train": N_TRAIN, "val": N_SCENES - N_TRAIN},
        "scenes_json_bytes": len(json.dumps(info)),
        "jobs": jobs,
        "seconds": {
            "write_tables": round(write_s, 2),
            "scenes_checkpoint_run": round(scenes_s, 2),
            "dry_run_scenes_only": [round(s, 2) for s in parse],
            "dry_run_all": [round(s, 2) for s in dag],
            "dag_build": round(min(dag) - min(parse), 2),
            "dry_run_all_slurm_profile": round(slurm_s, 2),
        },
        "slurm_group_jobs": group_jobs,
        "limit_s": 30,
        "within_limit": min(dag) <= 30,
        "command": "snakemake -n --cores 2 all (source: local, v1.0-trainval-sized tables)",
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'step':<34}{'seconds':>10}")
    print(f"{'write tables':<34}{write_s:>10.2f}")
    print(f"{'scenes checkpoint (real run)':<34}{scenes_s:>10.2f}")
    print(f"{'dry run, scenes.json only (min)':<34}{min(parse):>10.2f}")
    print(f"{'dry run, all (min)':<34}{min(dag):>10.2f}")
    print(f"{'DAG build (difference)':<34}{min(dag) - min(parse):>10.2f}")
    print(f"jobs: {jobs.get('total')} ({', '.join(f'{k} {v}' for k, v in jobs.items() if k != 'total')})")
    print(f"{'dry run, all, profiles/slurm':<34}{slurm_s:>10.2f}")
    per_scene = sum(jobs.get(rule, 0) for rule in ("preprocess", "presegment", "superpixels", "weak_labels"))
    print(f"per-scene jobs {per_scene} -> {group_jobs} group submissions under profiles/slurm")
    print(f"limit 30 s: {'met' if result['within_limit'] else 'EXCEEDED'}; wrote {args.out}")


if __name__ == "__main__":
    main()
