"""Rules pretrain, mstep and full: train a 3D network from scratch and keep the best-on-val weights."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
import torch

from weak3d.io import atomic_path, read_json, write_json
from weak3d.jobs import settings, start_job
from weak3d.train.data import load_keyframes
from weak3d.train.loop import TrainConfig, resolve_device, train

log = start_job(snakemake)
torch.set_num_threads(snakemake.threads)
cfg = TrainConfig.from_dict(settings(snakemake))
mode = snakemake.params.mode
split = read_json(snakemake.input.split)
scene_dir = Path(snakemake.input.scenes[0]).parent
weak_dir = Path(snakemake.input.labels[0]).parent
pseudo_dir = snakemake.input.get("pseudo")
train_frames = load_keyframes(
    [scene_dir / f"{s}.h5" for s in split["train"]], weak_dir=weak_dir, pseudo_dir=pseudo_dir
)
val_frames = load_keyframes([scene_dir / f"{s}.h5" for s in split["val"]])
device = resolve_device(snakemake.params.device)
log.info("%s: %d train / %d val keyframes on %s", mode, len(train_frames), len(val_frames), device)
# Per-epoch state beside the output, so a killed job resumes where it stopped when rerun.
resume = Path(snakemake.output.model).with_suffix(".resume.pt")
best, history = train(cfg, mode, train_frames, val_frames, device, resume_path=resume)
with atomic_path(snakemake.output.model) as tmp:
    torch.save(best, tmp)
write_json(snakemake.output.log, {"mode": mode, "best_epoch": best["epoch"], "history": history})
resume.unlink(missing_ok=True)
