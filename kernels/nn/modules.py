"""Feature-wise modules lifted to `SparseTensor`s (they act on `.feats`, keep voxels and caches)."""

from __future__ import annotations

from torch import nn

from kernels.tensor import SparseTensor


class BatchNorm(nn.BatchNorm1d):
    """`nn.BatchNorm1d` over the voxel features (same parameter names as torchsparse)."""

    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))


class ReLU(nn.ReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))


class LeakyReLU(nn.LeakyReLU):
    def forward(self, input: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return input.replace_feats(super().forward(input.feats))
