"""Sparse convolution under mixed precision (autocast): forward and backward, any layer order."""

from __future__ import annotations

import numpy as np
import torch

import kernels
from kernels import nn as spnn


def test_conv_stack_trains_under_autocast(device: torch.device) -> None:
    rng = np.random.default_rng(0)
    coords, keep, _ = kernels.sparse_quantize(rng.uniform(0, 3, (400, 3)), 0.1)
    coords = torch.from_numpy(np.c_[np.zeros(len(keep)), coords].astype(np.int32)).to(device)
    feats = torch.rand(len(keep), 4, device=device)
    torch.manual_seed(0)
    # A strided conv first (no identity offset), a submanifold conv, and the transposed conv back.
    net = torch.nn.Sequential(
        spnn.Conv3d(4, 8, 2, stride=2), spnn.Conv3d(8, 8, 3), spnn.Conv3d(8, 8, 2, stride=2, transposed=True)
    ).to(device)
    half = torch.bfloat16 if device.type == "cpu" else torch.float16

    def grads(mixed: bool) -> list[torch.Tensor]:
        net.zero_grad()
        with torch.autocast(device.type, dtype=half, enabled=mixed):
            out = net(kernels.SparseTensor(feats, coords))
        assert out.feats.dtype == (half if mixed else torch.float32)
        out.feats.float().square().sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    reference, mixed = grads(False), grads(True)
    for ref, got in zip(reference, mixed, strict=True):
        assert got.dtype == torch.float32  # the parameters' dtype, for the optimizer
        assert torch.allclose(got, ref, rtol=0.05, atol=0.05 * float(ref.abs().max()))
