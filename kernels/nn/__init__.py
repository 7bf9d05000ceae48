"""Sparse layers (torchsparse.nn-like)."""

from kernels.nn.conv import Conv3d
from kernels.nn.modules import BatchNorm, LeakyReLU, ReLU, SyncBatchNorm

__all__ = ["BatchNorm", "Conv3d", "LeakyReLU", "ReLU", "SyncBatchNorm"]
