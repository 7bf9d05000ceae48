"""Rule weak_labels: clicks, propagated labels and candidate sets for one scene's keyframes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.config import config_from_dict
from weak3d.io import read_h5_groups, write_h5_groups
from weak3d.jobs import settings, start_job
from weak3d.stages.weak_labels import WeakLabelConfig, weak_labels

log = start_job(snakemake)
cfg = config_from_dict(WeakLabelConfig, settings(snakemake), "weak_labels")
scene = read_h5_groups(snakemake.input.scene, keys=["labels", "visible"])
segments = read_h5_groups(snakemake.input.presegment)
groups = {}
for token, sample in sorted(scene.items()):
    if not sample.get("has_labels", True):
        raise ValueError(
            f"{snakemake.input.scene}: sample {token} has no lidarseg labels to simulate clicks from"
        )
    seg = segments[token]
    labels = weak_labels(
        sample["labels"], seg["ground"], seg["segment"], token, cfg, sample["visible"].any(0)
    )
    groups[token] = labels.as_dict()
write_h5_groups(snakemake.output[0], groups)
log.info("%d keyframes labelled", len(groups))
