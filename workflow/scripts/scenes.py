"""Checkpoint scenes: list the scenes and keyframes of the dataset and its train/val split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.datasets.nuscenes import NuScenes, load_split
from weak3d.io import write_json
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
write_json(snakemake.output[0], info)
log.info("%d train and %d val scenes", len(info["train"]), len(info["val"]))
