"""Sparse layers (torchsparse.nn-like)."""

from kernels.nn.conv import Conv3d
from kernels.nn.modules import (
    BatchNorm,
    ConvSequential,
    DenseSyncBatchNorm,
    LeakyReLU,
    ReLU,
    SyncBatchNorm,
    add_relu,
    fuse_batch_norm_relu,
)

__all__ = [
    "BatchNorm", "Conv3d", "ConvSequential", "DenseSyncBatchNorm", "LeakyReLU", "ReLU", "SyncBatchNorm",
    "add_relu", "fuse_batch_norm_relu",
]
