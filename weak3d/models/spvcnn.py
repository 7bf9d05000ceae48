"""SPVCNN (spvnas layout): MinkUNet voxel branch plus a point branch, on `kernels` tensors.

Input: `kernels.PointTensor` with features `[N, in_channels]` and float coordinates `[N, 4]` =
`(batch, x, y, z)` in voxel units (point xyz / voxel size; IUPC feeds integer voxel coordinates
of one point per 5 cm voxel, `cr=0.64`). Output: per-point logits `[N, num_classes]`.

`forward(points, return_features=True, stage_hook=None)` returns `(logits, features)` with
    features["encoder"]: [x0, ..., x4] voxel SparseTensors: stem output (stride 1) and the 4
                         down-stage outputs (strides 2..16), after `stage_hook`;
    features["points"]: [z0, z1, z2, z3] PointTensors of the point branch;
    features["point_features"]: z3.feats `[N, cs[8]]`, the input of the classifier.
`stage_hook(stage, voxels, points) -> voxels` (stage 1..4) replaces each down-stage output: the
place for IUPC's image fusion (voxel_to_point, fuse with image features, point_to_voxel), where
`points` is z0 (the points with the stem features, lookups cached).

Dataflow (spvnas `core/models/semantic_kitti/spvcnn.py`): x0 = stem(initial_voxelize(z));
z0 = voxel_to_point(x0, z); x1..x4 = stages(point_to_voxel(x0, z0)); z1 = voxel_to_point(x4, z0) +
T0(z0); y2 = up2(up1(dropout(point_to_voxel(x4, z1)), x3), x2); z2 = voxel_to_point(y2, z1) + T1(z1);
y4 = up4(up3(dropout(point_to_voxel(y2, z2)), x1), x0); z3 = voxel_to_point(y4, z2) + T2(z2);
logits = classifier(z3). T = Linear + BatchNorm1d + ReLU (`point_transforms.{0,1,2}`); state-dict
keys match spvnas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import kernels
from kernels.functional import initial_voxelize, point_to_voxel, voxel_to_point
from weak3d.models.blocks import decoder_stage, encoder_stage, run_decoder_stage, scaled_widths, stem

StageHook = Callable[[int, kernels.SparseTensor, kernels.PointTensor], kernels.SparseTensor]


def _point_transform(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, out_channels), nn.BatchNorm1d(out_channels), nn.ReLU(True))


class SPVCNN(nn.Module):
    def __init__(self, in_channels: int = 4, num_classes: int = 17, cr: float = 0.64,
                 dropout: float = 0.3) -> None:
        super().__init__()
        cs = scaled_widths(cr)
        self.widths = cs
        self.stem = stem(in_channels, cs[0])
        self.stage1 = encoder_stage(cs[0], cs[1])
        self.stage2 = encoder_stage(cs[1], cs[2])
        self.stage3 = encoder_stage(cs[2], cs[3])
        self.stage4 = encoder_stage(cs[3], cs[4])
        self.up1 = decoder_stage(cs[4], cs[3], cs[5])
        self.up2 = decoder_stage(cs[5], cs[2], cs[6])
        self.up3 = decoder_stage(cs[6], cs[1], cs[7])
        self.up4 = decoder_stage(cs[7], cs[0], cs[8])
        self.point_transforms = nn.ModuleList([
            _point_transform(cs[0], cs[4]),
            _point_transform(cs[4], cs[6]),
            _point_transform(cs[6], cs[8]),
        ])
        self.classifier = nn.Sequential(nn.Linear(cs[8], num_classes))
        self.dropout = nn.Dropout(dropout, True)

    def forward(
        self,
        points: kernels.PointTensor,
        return_features: bool = False,
        stage_hook: StageHook | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        x0 = self.stem(initial_voxelize(points))
        z0 = voxel_to_point(x0, points)
        x = point_to_voxel(x0, z0)
        encoder = [x0]
        for stage_index, stage in enumerate((self.stage1, self.stage2, self.stage3, self.stage4), start=1):
            x = stage(x)
            if stage_hook is not None:
                x = stage_hook(stage_index, x, z0)
            encoder.append(x)
        _, x1, x2, x3, x4 = encoder

        z1 = voxel_to_point(x4, z0)
        z1 = z1.replace_feats(z1.feats + self.point_transforms[0](z0.feats))
        y1 = point_to_voxel(x4, z1)
        y1 = run_decoder_stage(self.up1, y1.replace_feats(self.dropout(y1.feats)), x3)
        y2 = run_decoder_stage(self.up2, y1, x2)

        z2 = voxel_to_point(y2, z1)
        z2 = z2.replace_feats(z2.feats + self.point_transforms[1](z1.feats))
        y3 = point_to_voxel(y2, z2)
        y3 = run_decoder_stage(self.up3, y3.replace_feats(self.dropout(y3.feats)), x1)
        y4 = run_decoder_stage(self.up4, y3, x0)

        z3 = voxel_to_point(y4, z2)
        z3 = z3.replace_feats(z3.feats + self.point_transforms[2](z2.feats))
        logits = self.classifier(z3.feats)
        if not return_features:
            return logits
        return logits, {"encoder": encoder, "points": [z0, z1, z2, z3], "point_features": z3.feats}
