"""One training step and one prediction of IUPC's fused network (used by weak3d.train.loop).

Losses per the IUPC notes §5: CE + Lovasz on sparse, propagated (and pseudo in the M-steps)
labels for both branches (x_vox and x_pix), the candidate-set loss for both, and the association
(walker + 0.5 visit, weight 0.5) between projector3d embeddings of the sparse points and
projector2d embeddings of the association-target points, temperature 0.5 in the pretrain and 1 in
the M-steps. `association=False` drops the last term (the ablation). Mode "full" is the seed's
fully supervised baseline: CE + Lovasz on all labels for both branches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from weak3d.losses import IUPCLossConfig, ce_lovasz, iupc_total_loss
from weak3d.models.iupc import IUPCNet, IUPCOutput
from weak3d.train import distributed
from weak3d.train.data import Keyframe
from weak3d.train.iupc_data import CameraBatch, CameraKeyframe, make_camera_batch


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def is_iupc(model: torch.nn.Module) -> bool:
    return isinstance(unwrap(model), IUPCNet)


def iupc_loss(
    out: IUPCOutput, batch: CameraBatch, mode: str, association: bool = True
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss of one mode and its detached terms (logged by name)."""
    t = batch.batch.targets
    x_vox, x_pix = out.x_vox.float(), out.x_pix.float()
    if mode == "full":
        terms = {"full_vox": ce_lovasz(x_vox, t["labels"]), "full_pix": ce_lovasz(x_pix, t["labels"])}
        return sum(terms.values()), {k: v.detach() for k, v in terms.items()}  # type: ignore[return-value]
    is_mstep = mode == "mstep"
    assoc = {}
    if association:
        assoc = {
            "emb_3d": out.emb_3d.float(),
            "emb_2d": out.emb_2d.float(),
            "assoc_target": batch.assoc_target,
        }
    return iupc_total_loss(
        x_vox,
        t["sparse"],
        t["propagated"],
        t["candidates"],
        logits_2d=x_pix,
        pseudo=t["pseudo"] if is_mstep else None,
        config=IUPCLossConfig.mstep() if is_mstep else IUPCLossConfig.pretrain(),
        **assoc,
    )


def iupc_step_loss(
    net: torch.nn.Module,
    frames: list[Keyframe],
    mode: str,
    voxel_size: float,
    rng: np.random.Generator,
    device: torch.device,
    use_amp: bool,
    association: bool = True,
) -> torch.Tensor:
    """Build this process's share of an augmented batch, run `net` (the DDP wrapper when there are
    several processes) under autocast if asked, and return the loss of the whole global batch."""
    image_size = unwrap(net).input_size

    def build(part: list[Keyframe], generator: np.random.Generator) -> CameraBatch:
        return make_camera_batch(part, voxel_size, image_size, rng=generator, augment=True)  # type: ignore[arg-type]

    shard = distributed.shard_batch(frames, voxel_size, rng, build)
    batch: CameraBatch = shard.batch.to(device)
    with torch.autocast(device.type, enabled=use_amp), shard.context(net):
        out = net(batch.batch.tensor, batch.cameras)
    # Every term is a whole-batch quantity (means over labelled points, Lovasz sorts, the
    # association between all clicked and all superpixel points), so gather the rows first.
    x_vox, whole = shard.gather(out.x_vox.float(), batch.batch)
    x_pix, emb_3d, emb_2d, assoc_target = shard.gather_rows(
        out.x_pix.float(), out.emb_3d.float(), out.emb_2d.float(), batch.assoc_target
    )
    out = IUPCOutput(x_vox, x_pix, emb_3d, emb_2d, features=out.features)
    loss, _ = iupc_loss(out, replace(batch, batch=whole, assoc_target=assoc_target), mode, association)
    return loss


@torch.no_grad()
def predict_camera_frame(
    model: torch.nn.Module, frame: Keyframe, voxel_size: float, device: torch.device, fov_only: bool = True
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """`predict_frame` for the fused network: 3D-branch probabilities and z3 features per point.

    No augmentation, so the features belong to the voxels the E-step labels (the seed's E-step 1
    mixed rotated voxels with un-rotated features; we do not copy that).
    """
    if not isinstance(frame, CameraKeyframe):
        raise TypeError(f"keyframe {frame.token}: the iupc model needs camera keyframes")
    net = unwrap(model)
    net.eval()
    batch = make_camera_batch([frame], voxel_size, net.input_size, fov_only=fov_only).to(device)
    out = net(batch.batch.tensor, batch.cameras)
    voxel = torch.from_numpy(batch.batch.point_to_voxel[0]).to(device)
    probs = torch.softmax(out.x_vox.float(), dim=1)[voxel]
    return batch.batch.point_index[0], probs.cpu(), out.features.float()[voxel].cpu()
