"""Sparse building blocks of MinkUNet / SPVCNN.

Class and attribute names follow spvnas (`net`, `downsample`) so that state-dict keys of spvnas
checkpoints (`stage1.1.net.0.kernel`, `stage1.1.downsample.0.kernel`, ...) match. Each BatchNorm
followed by a ReLU takes the ReLU into its kernels, and at inference each convolution followed by
a BatchNorm applies it before its store (`kernels.nn.fuse_batch_norm_relu`; the ReLU's slot holds
an Identity, so the keys stay).
"""

from __future__ import annotations

from torch import nn

import kernels
from kernels import nn as spnn


class BasicConvolutionBlock(nn.Module):
    """Conv3d -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.net = spnn.fuse_batch_norm_relu(nn.Sequential(
            spnn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation),
            spnn.BatchNorm(out_channels),
            spnn.ReLU(True),
        ))

    def forward(self, x: kernels.SparseTensor) -> kernels.SparseTensor:
        return self.net(x)


class BasicDeconvolutionBlock(nn.Module):
    """Transposed Conv3d (back to the parent's voxels) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2) -> None:
        super().__init__()
        self.net = spnn.fuse_batch_norm_relu(nn.Sequential(
            spnn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, transposed=True),
            spnn.BatchNorm(out_channels),
            spnn.ReLU(True),
        ))

    def forward(self, x: kernels.SparseTensor) -> kernels.SparseTensor:
        return self.net(x)


class ResidualBlock(nn.Module):
    """Two convolutions with a residual connection (1x1 conv + BN when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.net = spnn.fuse_batch_norm_relu(nn.Sequential(
            spnn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation),
            spnn.BatchNorm(out_channels),
            spnn.ReLU(True),
            spnn.Conv3d(out_channels, out_channels, kernel_size, stride=1, dilation=dilation),
            spnn.BatchNorm(out_channels),
        ))
        if in_channels == out_channels and stride == 1:
            self.downsample: nn.Module = nn.Identity()
        else:
            self.downsample = nn.Sequential(
                spnn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride),
                spnn.BatchNorm(out_channels),
            )

    def forward(self, x: kernels.SparseTensor) -> kernels.SparseTensor:
        # relu(net(x) + downsample(x)): one pass, or at inference inside net's last convolution
        shortcut = self.downsample(x)
        if isinstance(self.net, spnn.ConvSequential):
            return self.net(x, residual=shortcut)
        return spnn.add_relu(self.net(x), shortcut)


def scaled_widths(cr: float) -> list[int]:
    """spvnas's channel list `[32, 32, 64, 128, 256, 256, 128, 96, 96]` scaled by `cr` (truncated)."""
    return [int(cr * width) for width in (32, 32, 64, 128, 256, 256, 128, 96, 96)]


def encoder_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """k2 s2 down-sampling then two residual blocks."""
    return nn.Sequential(
        BasicConvolutionBlock(in_channels, in_channels, kernel_size=2, stride=2),
        ResidualBlock(in_channels, out_channels),
        ResidualBlock(out_channels, out_channels),
    )


def decoder_stage(in_channels: int, skip_channels: int, out_channels: int) -> nn.ModuleList:
    """[transposed k2 s2 up-sampling, two residual blocks applied after concatenating the skip]."""
    return nn.ModuleList([
        BasicDeconvolutionBlock(in_channels, out_channels),
        nn.Sequential(
            ResidualBlock(out_channels + skip_channels, out_channels),
            ResidualBlock(out_channels, out_channels),
        ),
    ])


def stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two k3 submanifold convolutions, each with BatchNorm and ReLU."""
    return spnn.fuse_batch_norm_relu(nn.Sequential(
        spnn.Conv3d(in_channels, out_channels, kernel_size=3, stride=1),
        spnn.BatchNorm(out_channels),
        spnn.ReLU(True),
        spnn.Conv3d(out_channels, out_channels, kernel_size=3, stride=1),
        spnn.BatchNorm(out_channels),
        spnn.ReLU(True),
    ))


def run_decoder_stage(
    stage: nn.ModuleList, x: kernels.SparseTensor, skip: kernels.SparseTensor
) -> kernels.SparseTensor:
    """Up-sample `x` onto `skip`'s voxels, concatenate `skip`, run the residual blocks."""
    return stage[1](kernels.cat([stage[0](x), skip]))
