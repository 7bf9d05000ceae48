"""Rule summary: results/{ds}/summary.md with the label-statistics and mIoU tables."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.jobs import start_job
from weak3d.summary import write_summary

log = start_job(snakemake)
write_summary(
    snakemake.output[0],
    snakemake.input.stats,
    snakemake.input.miou,
    snakemake.input.pseudo,
    snakemake.input.logs,
    snakemake.wildcards.ds,
    snakemake.input.ablation,
)
log.info("summary written")
