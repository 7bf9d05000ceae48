"""Image features at 3D points, and IUPC's attention fusion of them into the 3D encoder.

Each point is seen through one camera image: the last camera (in the seed's camera order) in which
it is visible, because the seed samples every camera and lets later cameras overwrite earlier
ones. The batch builder resolves that choice once (`weak3d.train.iupc_data.last_visible_camera`),
so here a point carries one image index and one normalised coordinate, and each feature map is
sampled once per point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CameraInputs:
    """The images of a batch and where each 3D point (one per voxel) falls in them.

    images: [M, 3, H, W] raw 0-255 RGB, M = keyframes x cameras.
    image_index: [N] int64, the image each point is read from (-1: seen by no camera).
    grid: [N, 2] the point's (u, v) in that image, normalised to [-1, 1] for
          grid_sample(align_corners=True): -1 / +1 are the centres of the first / last pixels.
    """

    images: torch.Tensor
    image_index: torch.Tensor
    grid: torch.Tensor

    def to(self, device: torch.device) -> CameraInputs:
        return replace(
            self,
            images=self.images.to(device),
            image_index=self.image_index.to(device),
            grid=self.grid.to(device),
        )


class PointSampler:
    """Bilinear reads of per-image feature maps at the points (built once, used for every map).

    Points are packed per image into a padded [M, 1, L, 2] grid so that one grid_sample call
    serves all images; border padding as the seed, so a point on the image edge reads the edge.
    Points seen by no camera get zeros, as in the seed's zero-initialised output.
    """

    def __init__(self, image_index: torch.Tensor, grid: torch.Tensor, n_images: int) -> None:
        self.n_points = image_index.shape[0]
        self.seen = image_index >= 0
        index = image_index[self.seen]
        counts = torch.bincount(index, minlength=n_images)
        order = torch.argsort(index, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        position = torch.empty_like(index)
        position[order] = torch.arange(index.shape[0], device=index.device) - starts[index[order]]
        self.index, self.position = index, position
        width = max(1, int(counts.max().item())) if index.numel() else 1
        padded = torch.zeros(n_images, width, 2, dtype=torch.float32, device=grid.device)
        padded[index, position] = grid[self.seen]
        self.padded = padded.unsqueeze(1)

    def __call__(self, feature_map: torch.Tensor) -> torch.Tensor:
        """[M, C, h, w] -> [N, C], in float32.

        Sampling runs in float32 even under mixed precision (as autocast does for grid_sample):
        a half-precision grid would misplace points by ~0.1 px at 320 pixels across.
        """
        sampled = F.grid_sample(
            feature_map.float(),
            self.padded.float(),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )  # [M, C, 1, L]
        per_point = sampled[:, :, 0, :].permute(0, 2, 1)[self.index, self.position]
        out = per_point.new_zeros(self.n_points, feature_map.shape[1])
        out[self.seen] = per_point
        return out


class AttentionFusion(nn.Module):
    """EPNet-style LI-Fusion on point features (the seed's `Atten_Fusion_Conv`).

    att = sigmoid(fc3(tanh(fc1(BN-ReLU(img)) + fc2(pt)))), one scalar per point, hidden width pc/4;
    img' = ReLU(BN(W img)) * att; out = ReLU(BN(W' [pt; img'])), which replaces the point features.
    The seed's 1x1 Conv1d layers are written as Linear layers on [N, C] rows (the same map).
    """

    def __init__(self, img_channels: int, pt_channels: int) -> None:
        super().__init__()
        hidden = max(1, pt_channels // 4)
        self.img_pre = nn.Sequential(nn.BatchNorm1d(img_channels), nn.ReLU())
        self.fc1 = nn.Linear(img_channels, hidden)
        self.fc2 = nn.Linear(pt_channels, hidden)
        self.fc3 = nn.Linear(hidden, 1)
        self.img_proj = nn.Sequential(
            nn.Linear(img_channels, pt_channels), nn.BatchNorm1d(pt_channels), nn.ReLU()
        )
        self.out = nn.Sequential(
            nn.Linear(2 * pt_channels, pt_channels), nn.BatchNorm1d(pt_channels), nn.ReLU()
        )

    def attention(self, pt: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """[N, 1] weights in (0, 1): how much of the image feature each point lets in."""
        return torch.sigmoid(self.fc3(torch.tanh(self.fc1(self.img_pre(img)) + self.fc2(pt))))

    def forward(self, pt: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """pt: [N, pc] point features; img: [N, ic] image features at the points -> [N, pc]."""
        img_feat = self.img_proj(img) * self.attention(pt, img)
        return self.out(torch.cat([pt, img_feat], dim=1))
