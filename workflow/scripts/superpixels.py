"""Rule superpixels: SEEDS label maps of every camera image of one scene's keyframes."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
import cv2
import numpy as np
from tqdm import tqdm

from weak3d.config import config_from_dict
from weak3d.io import read_h5_groups, write_h5_groups
from weak3d.jobs import settings, start_job
from weak3d.stages.superpixels import SuperpixelConfig, seeds_superpixels_file

log = start_job(snakemake)
# OpenCV would otherwise start a thread per core for the colour conversions of each small image.
cv2.setNumThreads(max(1, int(snakemake.threads)))
cfg = config_from_dict(SuperpixelConfig, settings(snakemake), "superpixels")
root = Path(snakemake.params.root)
scene = read_h5_groups(snakemake.input.scene, keys=[])
groups = {}
for token, sample in tqdm(sorted(scene.items()), desc="superpixels", file=sys.stderr):
    maps = []
    for cam in json.loads(sample["cameras"]):
        path = root / cam["image"]
        try:
            # Decoded once and resized on PIL's buffer: the same pixels as the array path.
            labels = seeds_superpixels_file(path, cfg)
        except OSError as err:
            raise RuntimeError(f"{path}: cannot read camera image {cam['token']} ({err})") from err
        maps.append(labels)
    # Label ids stay below 2**16 (about 1024 per image), so uint16 halves the files.
    groups[token] = {"superpixels": np.stack(maps).astype(np.uint16)}
write_h5_groups(snakemake.output[0], groups)
log.info("%d keyframes x %d cameras", len(groups), len(maps))
