"""Rules pretrain, mstep and full: train a 3D network from scratch and keep the best-on-val weights.

A job with several GPUs (resources gpu > 1, e.g. `--set-resources pretrain:gpu=2`) runs this script
again under torchrun, one process per GPU (DistributedDataParallel, see weak3d/train/distributed.py):
the first process waits for them, rank 0 writes the outputs.
"""

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1]))
import torch

from weak3d.io import atomic_path, read_json, write_json
from weak3d.jobs import settings, start_job
from weak3d.train import distributed
from weak3d.train.data import load_keyframes
from weak3d.train.iupc_data import load_camera_keyframes
from weak3d.train.loop import TrainConfig, resolve_device, train

gpus = int(getattr(snakemake.resources, "gpu", 0) or 0)
if gpus > 1 and not distributed.launched():
    log = start_job(snakemake)
    if torch.cuda.device_count() < gpus:
        raise RuntimeError(f"the job has gpu={gpus} but sees {torch.cuda.device_count()} CUDA devices")
    log.info("%d GPUs: running this script in %d processes under torchrun", gpus, gpus)
    threads = max(1, snakemake.threads // gpus)
    sys.exit(distributed.launch(os.path.abspath(sys.argv[0]), gpus, threads, log_file=sys.stderr))
if distributed.launched():
    # A torchrun worker: the launcher sends every worker's output to the job's log already (opening
    # it again would truncate it); only rank 0 logs progress, so the log reads as one process's.
    level = logging.INFO if os.environ.get("RANK") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", force=True)
    log = logging.getLogger(f"weak3d.{snakemake.rule}")
else:
    log = start_job(snakemake)
torch.set_num_threads(max(1, snakemake.threads // max(1, gpus)))
cfg = TrainConfig.from_dict(settings(snakemake))
mode = snakemake.params.mode
split = read_json(snakemake.input.split)
scene_dir = Path(snakemake.input.scenes[0]).parent
weak_dir = Path(snakemake.input.labels[0]).parent
pseudo_dir = snakemake.input.get("pseudo")
train_files = [scene_dir / f"{s}.h5" for s in split["train"]]
val_files = [scene_dir / f"{s}.h5" for s in split["val"]]
if cfg.model == "iupc":
    # The fused network reads the camera images (from the raw root) and the train superpixels.
    sp_dir = Path(snakemake.input.superpixels[0]).parent
    root = snakemake.params.root
    train_frames = load_camera_keyframes(train_files, weak_dir, pseudo_dir, sp_dir, image_root=root)
    val_frames = load_camera_keyframes(val_files, image_root=root)
else:
    train_frames = load_keyframes(train_files, weak_dir=weak_dir, pseudo_dir=pseudo_dir)
    val_frames = load_keyframes(val_files)
device = distributed.init_from_env(resolve_device(snakemake.params.device))  # cuda:LOCAL_RANK under torchrun
log.info("%s: %d train / %d val keyframes on %s", mode, len(train_frames), len(val_frames), device)
# Per-epoch state beside the output, so a killed job resumes where it stopped when rerun.
resume = Path(snakemake.output.model).with_suffix(".resume.pt")
best, history = train(cfg, mode, train_frames, val_frames, device, resume_path=resume)
if distributed.is_main():
    with atomic_path(snakemake.output.model) as tmp:
        torch.save(best, tmp)
    write_json(snakemake.output.log, {"mode": mode, "best_epoch": best["epoch"], "history": history})
    resume.unlink(missing_ok=True)
distributed.finish()
