"""Rule preprocess: one scene's keyframes -> results/{ds}/preprocessed/{scene}.h5."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from tqdm import tqdm

from weak3d.datasets.nuscenes import NuScenes
from weak3d.io import read_json, write_h5_groups
from weak3d.jobs import settings, start_job
from weak3d.stages.preprocess import preprocess_sample

log = start_job(snakemake)
cfg = settings(snakemake)
# The scene's slice of the tables (written by the scenes checkpoint), not the whole table set.
scene_tables = Path(snakemake.input.tables) / snakemake.wildcards.scene
nusc = NuScenes(snakemake.params.root, snakemake.params.version, table_dir=scene_tables)
tokens = read_json(snakemake.input.scenes)["samples"][snakemake.wildcards.scene]
groups = {
    token: preprocess_sample(nusc, token, n_sweeps=cfg.get("n_sweeps", 5))
    for token in tqdm(tokens, desc=f"preprocess {snakemake.wildcards.scene}", file=sys.stderr)
}
write_h5_groups(snakemake.output[0], groups)
log.info("%d keyframes written", len(groups))
