"""CPU time of one IUPC training step on one keyframe of a finished run (preprocess + superpixels
+ weak labels), at the embedded-gpu preset's settings unless told otherwise.

    python bench/iupc_cpu_step.py RUN_DIR [--ds nusc] [--image-size 360 640] [--voxel-size 0.05]
                                          [--cr 0.64] [--repeats 3] [--threads 2]

RUN_DIR is a workflow directory holding results/{ds}/ and the raw root resources/{ds}/raw.
Per step, the median over `--repeats` after one warm-up of: building the camera batch (images
cached after the warm-up, as in training from the second epoch on), forward + IUPC pretrain loss
+ backward + SGD step, and, for scale, the 2D branch alone and MinkUNet cr 0.5 at the default
config's 0.1 m voxels. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weak3d.models.build import build_model  # noqa: E402
from weak3d.train.data import make_batch  # noqa: E402
from weak3d.train.iupc_data import load_camera_keyframes, make_camera_batch  # noqa: E402
from weak3d.train.iupc_step import iupc_loss  # noqa: E402
from weak3d.train.loop import training_loss  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--ds", default="nusc")
    parser.add_argument("--image-size", type=int, nargs=2, default=(360, 640))
    parser.add_argument("--voxel-size", type=float, default=0.05)
    parser.add_argument("--cr", type=float, default=0.64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = args.run_dir / "results" / args.ds
    scene = sorted((results / "superpixels").glob("*.h5"))[0]
    frame = load_camera_keyframes(
        [results / "preprocessed" / scene.name],
        weak_dir=results / "weak_labels",
        superpixel_dir=results / "superpixels",
        image_root=args.run_dir / "resources" / args.ds / "raw",
    )[0]
    size = tuple(args.image_size)
    rng = np.random.default_rng(0)
    model = build_model("iupc", cr=args.cr, image_size=size).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def build():
        return make_camera_batch([frame], args.voxel_size, size, rng=rng, augment=True)

    batch = build()

    def step() -> None:
        out = model(batch.batch.tensor, batch.cameras)
        loss, _ = iupc_loss(out, batch, "pretrain")
        opt.zero_grad()
        loss.backward()
        opt.step()

    def image_branch() -> None:
        out = model.net2d(batch.cameras.images)
        (out["logits"].mean() + out["embedding"].mean()).backward()

    mink = build_model("minkunet", cr=0.5).train()
    mink_batch = make_batch([frame], 0.1, rng=rng, augment=True)

    def mink_step() -> None:
        loss = training_loss(mink(mink_batch.tensor), mink_batch, "pretrain")
        loss.backward()

    report = {
        "keyframe": frame.token,
        "fov_points": int(frame.fov.sum()),
        "voxels": int(batch.batch.tensor.coords.shape[0]),
        "image_size": list(size),
        "voxel_size": args.voxel_size,
        "cr": args.cr,
        "threads": args.threads,
        "batch_build_s": round(_median_time(build, args.repeats), 3),
        "iupc_train_step_s": round(_median_time(step, args.repeats), 3),
        "image_branch_fwd_bwd_s": round(_median_time(image_branch, args.repeats), 3),
        "minkunet_cr0.5_0.1m_step_s": round(_median_time(mink_step, args.repeats), 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
