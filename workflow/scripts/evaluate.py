"""Rule evaluate: mIoU of one run on the validation split -> results/{ds}/{run}.miou (JSON)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
import torch

from weak3d.io import write_json
from weak3d.jobs import settings, start_job
from weak3d.train.evaluate import evaluate_checkpoint
from weak3d.train.iupc_data import load_camera_keyframes
from weak3d.train.loop import resolve_device

log = start_job(snakemake)
torch.set_num_threads(snakemake.threads)
# Camera keyframes serve every model; the fused iupc network reads their images.
frames = load_camera_keyframes(snakemake.input.scenes, image_root=snakemake.params.root)
device = resolve_device(snakemake.params.device)
result = evaluate_checkpoint(snakemake.input.model, frames, device, **settings(snakemake))
write_json(snakemake.output[0], result)
log.info("%s: mIoU %.2f on %d FOV points", snakemake.wildcards.run, result["miou"], result["n_points"])
