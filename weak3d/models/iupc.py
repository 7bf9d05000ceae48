"""IUPC's fused 2D/3D network (the seed's `spvcnn_swiftnet18_nusc_assop2p`), per the notes §4.

3D branch: SPVCNN (cr 0.64 gives widths [20, 20, 40, 81, 163, 163, 81, 61, 61]). 2D branch:
SwiftNet-ResNet-18 (`weak3d.models.image`). After each of the 4 SPVCNN down stages, SPVCNN's
`stage_hook` takes the stage's voxels to the points (trilinear voxel_to_point), fuses them with the
image features of the matching 2D stage (layer1/2/3/SPP) read at the points, and averages the
result back onto the voxels (point_to_voxel). The image features are **detached** there, as in the
seed: the 3D losses never train the 2D encoder through fusion; only the 2D heads' own losses and
the association do.

Input: one point per voxel (the batch builder keeps one point per 5 cm voxel, labelled points
first); the point coordinates are the integer voxel coordinates, as the seed's
`PointTensor(x.F, x.C.float())`. The images are needed at inference too.

Output (`IUPCOutput`), one row per input voxel:
    x_vox [N, classes]  3D logits;       x_pix [N, classes]  2D logits read at the points;
    emb_3d [N, 256]     projector3d;     emb_2d [N, 256]     projector2d read at the points;
    features [N, 61]    z3, the 3D features the E-step builds class prototypes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import kernels
from kernels.functional import point_to_voxel, voxel_to_point
from weak3d.models.fusion import AttentionFusion, CameraInputs, PointSampler
from weak3d.models.image import FUSION_CHANNELS, SwiftNetRes18
from weak3d.models.spvcnn import SPVCNN


@dataclass
class IUPCOutput:
    x_vox: torch.Tensor
    x_pix: torch.Tensor
    emb_3d: torch.Tensor
    emb_2d: torch.Tensor
    features: torch.Tensor


class IUPCNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 4,
        num_classes: int = 17,
        cr: float = 0.64,
        proj_channels: int = 256,
        image_weights: str | Path | None = None,
        image_size: tuple[int, int] = (360, 640),
    ) -> None:
        super().__init__()
        # The image size the 2D branch is fed at (H, W); a buffer, so a checkpoint remembers it.
        self.register_buffer("image_size", torch.tensor(image_size, dtype=torch.int64))
        self.net3d = SPVCNN(in_channels=in_channels, num_classes=num_classes, cr=cr)
        self.net2d = SwiftNetRes18(
            num_classes=num_classes, proj_channels=proj_channels, pretrained=image_weights
        )
        cs = self.net3d.widths
        self.fusion = nn.ModuleList(
            AttentionFusion(ic, pc)
            for ic, pc in zip(FUSION_CHANNELS, (cs[1], cs[2], cs[3], cs[4]), strict=True)
        )
        self.projector3d = nn.Sequential(
            nn.Linear(cs[8], proj_channels),
            nn.BatchNorm1d(proj_channels),
            nn.ReLU(),
            nn.Linear(proj_channels, proj_channels),
        )

    @property
    def input_size(self) -> tuple[int, int]:
        height, width = self.image_size.tolist()
        return int(height), int(width)

    def forward(self, voxels: kernels.SparseTensor, cameras: CameraInputs) -> IUPCOutput:
        image = self.net2d(cameras.images)
        sampler = PointSampler(cameras.image_index, cameras.grid, cameras.images.shape[0])
        # Fusion features are read once per stage and detached (the seed's img_feat.detach()).
        fused_inputs = {s: sampler(image[f"stage{s}"].detach()) for s in range(1, 5)}

        def fuse(
            stage: int, stage_voxels: kernels.SparseTensor, z0: kernels.PointTensor
        ) -> kernels.SparseTensor:
            points = voxel_to_point(stage_voxels, z0)
            img = fused_inputs[stage].to(points.feats.dtype)
            return point_to_voxel(
                stage_voxels, points.replace_feats(self.fusion[stage - 1](points.feats, img))
            )

        points = kernels.PointTensor(voxels.feats, voxels.coords.float())
        x_vox, feats = self.net3d(points, return_features=True, stage_hook=fuse)
        z3 = feats["point_features"]
        return IUPCOutput(
            x_vox=x_vox,
            x_pix=sampler(image["logits"]),
            emb_3d=self.projector3d(z3),
            emb_2d=sampler(image["embedding"]),
            features=z3,
        )
