"""Checkpoint scenes: list the scenes and keyframes of the dataset and its train/val split, and write
each listed scene's slice of the tables (results/{ds}/tables/{scene}/), so that a per-scene job
loads a few MB instead of the whole table set (about a minute per job on real trainval)."""

import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.datasets.nuscenes import NuScenes, load_split
from weak3d.io import atomic_path, write_json
from weak3d.jobs import start_job

log = start_job(snakemake)
p = snakemake.params
nusc = NuScenes(p.root, p.version)
split = load_split(p.root, p.version, split_file=p.split_file or None)
by_name = {scene["name"]: scene for scene in nusc.scenes()}
missing = [name for names in split.values() for name in names if name not in by_name]
if missing:
    log.warning("%d split scenes are not in the tables and are skipped: %s", len(missing), missing[:5])
info = {"version": p.version, "samples": {}}
for part in ("train", "val"):
    names = [name for name in split[part] if name in by_name]
    if p.max_scenes:
        names = names[: p.max_scenes]
    if not names:
        raise ValueError(f"{p.root}/{p.version}: no scene of the '{part}' split is in the tables")
    info[part] = names
    for name in names:
        info["samples"][name] = nusc.sample_tokens(by_name[name]["token"])
with atomic_path(snakemake.output.tables, is_dir=True) as tables_dir:
    for name in info["samples"]:
        (tables_dir / name).mkdir()
        for table, records in nusc.scene_tables(name).items():
            # orjson: ~8x faster than json.dumps; this loop writes every record of the tables.
            (tables_dir / name / f"{table}.json").write_bytes(orjson.dumps(records))
write_json(snakemake.output.scenes, info)
log.info("%d train and %d val scenes", len(info["train"]), len(info["val"]))
