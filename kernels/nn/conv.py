"""Sparse convolution module with torchsparse's parameter layout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from kernels.epilogue import NormEpilogue
from kernels.functional.conv import conv3d
from kernels.tensor import SparseTensor, as_triple


class Conv3d(nn.Module):
    """Sparse 3D convolution.

    Parameters match torchsparse: `kernel` is `[K, Cin, Cout]` (K = kernel volume, rows in
    torchsparse's offset order) or `[Cin, Cout]` when K == 1 and stride == 1; `bias` is `[Cout]`.
    So a torchsparse state dict loads unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        transposed: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_triple(kernel_size, "kernel_size")
        self.stride = as_triple(stride, "stride")
        self.dilation = as_triple(dilation, "dilation")
        self.transposed = transposed
        volume = math.prod(self.kernel_size)
        if volume > 1 or self.stride != (1, 1, 1):
            self.kernel = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        else:
            self.kernel = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torchsparse's initialisation: uniform(-std, std) with std = 1/sqrt(fan * K).
        fan = self.out_channels if self.transposed else self.in_channels
        std = 1.0 / math.sqrt(fan * math.prod(self.kernel_size))
        nn.init.uniform_(self.kernel, -std, std)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -std, std)

    def forward(self, input: SparseTensor, epilogue: NormEpilogue | None = None) -> SparseTensor:
        """epilogue: an eval-mode BatchNorm (and ReLU) applied to the output, inside the convolution
        where the backend can (`kernels.nn.ConvSequential` passes it at inference)."""
        return conv3d(
            input,
            self.kernel,
            self.kernel_size,
            bias=self.bias,
            stride=self.stride,
            dilation=self.dilation,
            transposed=self.transposed,
            epilogue=epilogue,
        )

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1, 1):
            text += f", stride={self.stride}"
        if self.dilation != (1, 1, 1):
            text += f", dilation={self.dilation}"
        if self.bias is None:
            text += ", bias=False"
        if self.transposed:
            text += ", transposed=True"
        return text
