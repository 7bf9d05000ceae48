"""Rule raw_dataset: synthesize the embedded world, or download and extract the configured archives."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
from weak3d.jobs import start_job

log = start_job(snakemake)
out = snakemake.output[0]
if snakemake.params.source == "synthetic":
    from weak3d.world import WorldConfig, generate_world

    world = {**json.loads(snakemake.params.world), "version": snakemake.params.version}
    generate_world(out, WorldConfig.from_dict(world))
elif snakemake.params.source == "download":
    from weak3d.download import download_dataset

    download_dataset(out, json.loads(snakemake.params.download), cache_dir=Path(out).parent / "downloads")
else:
    raise ValueError(f"raw_dataset: source '{snakemake.params.source}' is not produced by this rule")
log.info("raw dataset ready at %s", out)
