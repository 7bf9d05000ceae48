"""Rule label_stats: the seed's label statistics table over all training keyframes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.io import read_h5_groups, write_json
from weak3d.jobs import start_job
from weak3d.stages.weak_labels import label_statistics

log = start_job(snakemake)
results, gt, visible = [], [], []
for scene_file, label_file in zip(snakemake.input.scenes, snakemake.input.labels, strict=True):
    scene = read_h5_groups(scene_file, keys=["labels", "visible"])
    labels = read_h5_groups(label_file)
    for token in sorted(scene):
        results.append(labels[token])
        gt.append(scene[token]["labels"])
        visible.append(scene[token]["visible"].any(0))
stats = label_statistics(results, gt, visible)
write_json(snakemake.output[0], stats)
log.info(
    "sparse %.4f, propagated %.4f, candidates %.4f",
    stats["sparse_rate"],
    stats["propagated_rate"],
    stats["candidate_rate"],
)
