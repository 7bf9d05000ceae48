"""An eval-mode BatchNorm (and ReLU) applied to a convolution's output as it is written.

At inference a BatchNorm on running statistics is a per-channel affine map: the Triton implicit
GEMM applies it (and a residual sum, and the ReLU) to its fp32 accumulator before the one store,
so the layer is one kernel and one pass over its output instead of two or three. Other backends
apply it after the convolution with torch (`apply`): the same arithmetic, with the convolution's
output rounded to its dtype first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NormEpilogue:
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, plus `residual` (rows like
    the output's; a residual block's shortcut) if given, then max(y, 0) if relu."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float
    relu: bool
    residual: torch.Tensor | None = None

    @classmethod
    def of(cls, bn: nn.modules.batchnorm._BatchNorm, relu: bool) -> NormEpilogue:
        if bn.running_mean is None or bn.running_var is None or bn.weight is None or bn.bias is None:
            raise ValueError(f"{bn}: a convolution epilogue needs running statistics and affine parameters")
        return cls(bn.running_mean, bn.running_var, bn.weight, bn.bias, float(bn.eps), relu)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                     False, 0.0, self.eps)
        if self.residual is not None:
            y = y + self.residual
        return torch.relu(y) if self.relu else y
