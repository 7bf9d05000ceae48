"""Rule presegment: ground (per-cell RANSAC) and HDBSCAN segments for one scene's keyframes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from tqdm import tqdm

from weak3d.config import config_from_dict
from weak3d.io import read_h5_groups, write_h5_groups
from weak3d.jobs import settings, start_job
from weak3d.stages.presegment import PresegmentConfig, presegment

log = start_job(snakemake)
cfg = config_from_dict(PresegmentConfig, settings(snakemake), "presegment")
scene = read_h5_groups(snakemake.input.scene, keys=["points", "visible", "sweeps"])
groups = {}
for token, sample in tqdm(sorted(scene.items()), desc="presegment", file=sys.stderr):
    ground, cell, segment = presegment(
        sample["points"][:, :3], sample["sweeps"], sample["visible"].any(0), cfg
    )
    groups[token] = {"ground": ground, "cell": cell, "segment": segment}
write_h5_groups(snakemake.output[0], groups)
log.info("%d keyframes pre-segmented", len(groups))
