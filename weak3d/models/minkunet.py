"""MinkUNet (spvnas layout) on `kernels.SparseTensor`s.

Input: `SparseTensor` with features `[N_vox, in_channels]` (x, y, z, intensity by default) and int32
coordinates `(batch, x, y, z)` at stride 1 (e.g. from `kernels.sparse_quantize` at 5 cm).
Output: logits `[N_vox, num_classes]`, rows in the input's voxel order.
`forward(x, return_features=True)` returns `(logits, features)` with
    features["encoder"]: [x0, x1, x2, x3, x4]: stem output (stride 1) and the 4 down-stage outputs
                         (strides 2, 4, 8, 16), as SparseTensors;
    features["decoder"]: [y1, y2, y3, y4]: up-stage outputs (strides 8, 4, 2, 1);
    features["voxel_features"]: y4.feats `[N_vox, cs[8]]`, the input of the classifier.

Architecture (spvnas `core/models/semantic_kitti/minkunet.py`): widths
`cs = int(cr * [32, 32, 64, 128, 256, 256, 128, 96, 96])`; stem = 2 k3 convs; 4 encoder stages of
k2 s2 conv + 2 residual blocks; 4 decoder stages of transposed k2 s2 conv, concatenation with the
encoder output of the same stride, 2 residual blocks; `classifier = Sequential(Linear)`. Module
names match spvnas, so its state-dict keys (`stem.0.kernel`, `stage1.0.net.0.kernel`,
`up1.0.net.0.kernel`, `up1.1.0.net.0.kernel`, `classifier.0.weight`, ...) load directly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import kernels
from weak3d.models.blocks import decoder_stage, encoder_stage, run_decoder_stage, scaled_widths, stem


class MinkUNet(nn.Module):
    def __init__(self, in_channels: int = 4, num_classes: int = 17, cr: float = 1.0) -> None:
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
        self.classifier = nn.Sequential(nn.Linear(cs[8], num_classes))

    def forward(
        self, x: kernels.SparseTensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
        x0 = self.stem(x)
        x1 = self.stage1(x0)
        x2 = self.stage2(x1)
        x3 = self.stage3(x2)
        x4 = self.stage4(x3)
        y1 = run_decoder_stage(self.up1, x4, x3)
        y2 = run_decoder_stage(self.up2, y1, x2)
        y3 = run_decoder_stage(self.up3, y2, x1)
        y4 = run_decoder_stage(self.up4, y3, x0)
        logits = self.classifier(y4.feats)
        if not return_features:
            return logits
        return logits, {"encoder": [x0, x1, x2, x3, x4], "decoder": [y1, y2, y3, y4],
                        "voxel_features": y4.feats}
