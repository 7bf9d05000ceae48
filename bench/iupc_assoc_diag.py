"""Why does iteration 0 learn slower with the association loss? Per-term losses and gradient norms.

Trains IUPC's pretrain step twice from one seed on the same batches, with and without the
association term, in float32 (CPU or `--device cuda`). At every step it records each loss term,
the gradient norm of each term group on the 3D network (net3d + fusion + projector3d) and on the
2D network, the embedding norms and the range of the association logits. The learning rate
follows the run's schedule (warm-up, then cosine over `--epochs` epochs of the training
keyframes); only the first `--steps` steps are taken.

    python bench/iupc_assoc_diag.py RUN_DIR [--steps 20] [--batch-size 2] [--out FILE]

RUN_DIR is a workflow directory whose data stages are done (results/{ds}/preprocessed,
superpixels, weak_labels; resources/{ds}/raw). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from weak3d.losses.association import association_losses  # noqa: E402
from weak3d.models.build import build_model  # noqa: E402
from weak3d.train.iupc_data import load_camera_keyframes, make_camera_batch  # noqa: E402
from weak3d.train.iupc_step import iupc_loss  # noqa: E402
from weak3d.train.loop import lr_factor  # noqa: E402


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def run(frames, args, association: bool) -> list[dict]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device(args.device)
    model = build_model("iupc", cr=args.cr, image_size=tuple(args.image_size)).to(device).train()
    params3d = [p for n, p in model.named_parameters() if not n.startswith("net2d.")]
    params2d = [p for n, p in model.named_parameters() if n.startswith("net2d.")]
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    iters_per_epoch = max(1, len(frames) // args.batch_size)
    total = args.epochs * iters_per_epoch
    order = np.random.default_rng(args.seed).permutation(len(frames))
    rows = []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.warmup, total)
        window = range(step * args.batch_size, (step + 1) * args.batch_size)
        picks = [frames[i] for i in np.take(order, window, mode="wrap")]
        batch = make_camera_batch(picks, args.voxel_size, tuple(args.image_size), rng=rng, augment=True)
        batch = batch.to(device)
        out = model(batch.batch.tensor, batch.cameras)
        total_loss, terms = iupc_loss(out, batch, "pretrain", association=True)
        # Re-derive the graph-connected terms to take each group's gradient apart.
        sparse = batch.batch.targets["sparse"].long()
        labelled = sparse != 0
        e3d, e2d = out.emb_3d[labelled], out.emb_2d[batch.assoc_target != 0]
        walker, visit = association_losses(e3d, sparse[labelled], e2d, 0.5)
        assoc = 0.5 * (walker + 0.5 * visit)
        seg_neg = total_loss - assoc
        sim = (e3d @ e2d.t() / 0.5).detach()
        row = {
            "step": step,
            "lr": opt.param_groups[0]["lr"],
            **{k: round(float(v), 4) for k, v in terms.items()},
            "grad3d_seg_neg": _grad_norm(seg_neg, params3d),
            "grad3d_assoc": _grad_norm(assoc, params3d),
            "grad2d_seg_neg": _grad_norm(seg_neg, params2d),
            "grad2d_assoc": _grad_norm(assoc, params2d),
            "emb3d_norm_mean": float(e3d.detach().norm(dim=1).mean()),
            "emb2d_norm_mean": float(e2d.detach().norm(dim=1).mean()),
            "sim_abs_max": float(sim.abs().max()) if sim.numel() else 0.0,
            "n_3d": int(e3d.shape[0]),
            "n_2d": int(e2d.shape[0]),
        }
        loss = total_loss if association else seg_neg
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows.append(row)
        print(
            json.dumps(
                {
                    "association": association,
                    **{
                        k: row[k]
                        for k in (
                            "step",
                            "lr",
                            "walker",
                            "visit",
                            "grad3d_seg_neg",
                            "grad3d_assoc",
                            "sim_abs_max",
                        )
                    },
                }
            ),
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--ds", default="nusc")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.24)
    parser.add_argument("--cr", type=float, default=0.64)
    parser.add_argument("--voxel-size", type=float, default=0.05)
    parser.add_argument("--image-size", type=int, nargs=2, default=(360, 640))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results/iupc_assoc_diag.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = args.run_dir / "results" / args.ds
    scenes = json.loads((results / "scenes.json").read_text())
    train_scenes = scenes["train"] if isinstance(scenes, dict) and "train" in scenes else None
    files = sorted((results / "superpixels").glob("*.h5"))
    if train_scenes is not None:
        files = [f for f in files if f.stem in set(train_scenes)]
    frames = load_camera_keyframes(
        [results / "preprocessed" / f.name for f in files],
        weak_dir=results / "weak_labels",
        superpixel_dir=results / "superpixels",
        image_root=args.run_dir / "resources" / args.ds / "raw",
    )
    report = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "train_keyframes": len(frames),
    }
    for association in (True, False):
        report["with_association" if association else "without_association"] = run(frames, args, association)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(
        "| step | walker | visit | |g3d| seg+neg | |g3d| assoc | |g2d| seg+neg | |g2d| assoc | max|S| | "
        "seg+neg loss with / without assoc |"
    )
    for a, b in zip(report["with_association"], report["without_association"], strict=True):
        seg_a = sum(v for k, v in a.items() if k.startswith(("sp_", "pp_", "neg_")))
        seg_b = sum(v for k, v in b.items() if k.startswith(("sp_", "pp_", "neg_")))
        print(
            f"| {a['step']} | {a['walker']:.2f} | {a['visit']:.2f} | {a['grad3d_seg_neg']:.3g} | "
            f"{a['grad3d_assoc']:.3g} | {a['grad2d_seg_neg']:.3g} | {a['grad2d_assoc']:.3g} | "
            f"{a['sim_abs_max']:.3g} | {seg_a:.2f} / {seg_b:.2f} |"
        )


if __name__ == "__main__":
    main()
