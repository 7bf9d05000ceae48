"""Rule estep: pseudo-labels for every training keyframe from the previous iteration's best model."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
import torch
from tqdm import tqdm

from weak3d.io import atomic_path, read_json, write_h5_groups, write_json
from weak3d.jobs import settings, start_job
from weak3d.train.evaluate import load_checkpoint
from weak3d.train.iupc_data import load_camera_keyframes
from weak3d.train.loop import resolve_device
from weak3d.train.pseudo import EstepConfig, pseudo_labels, quality

log = start_job(snakemake)
torch.set_num_threads(snakemake.threads)
cfg = EstepConfig.from_dict(settings(snakemake))
iteration = snakemake.params.iteration
split = read_json(snakemake.input.split)
scene_dir = Path(snakemake.input.scenes[0]).parent
weak_dir = Path(snakemake.input.labels[0]).parent
previous = snakemake.input.previous[0] if snakemake.input.previous else None
device = resolve_device(snakemake.params.device)
model, ckpt = load_checkpoint(snakemake.input.model, device)
voxel_size = ckpt["config"]["voxel_size"]

pseudo = {}
with atomic_path(snakemake.output[0], is_dir=True) as out:
    all_frames = []
    for scene in tqdm(split["train"], desc=f"E-step {iteration}", file=sys.stderr):
        # Camera keyframes serve every model; the fused iupc network reads their images.
        frames = load_camera_keyframes(
            [scene_dir / f"{scene}.h5"], weak_dir, previous, image_root=snakemake.params.root
        )
        groups = {}
        for frame in frames:
            pseudo[frame.token] = pseudo_labels(model, frame, iteration, voxel_size, cfg, device)
            groups[frame.token] = {"pseudo": pseudo[frame.token]}
        write_h5_groups(out / f"{scene}.h5", groups)
        all_frames += frames
    stats = quality(all_frames, pseudo, iteration)
    write_json(out / "quality.json", stats)
log.info(
    "E-step %d: precision %s, coverage %s", iteration, stats.get("precision"), stats.get("coverage_region")
)
