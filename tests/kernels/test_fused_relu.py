"""`kernels.nn.fuse_batch_norm_relu`: the same network, fewer passes (CPU, reference backend)."""

from __future__ import annotations

import copy

import pytest
import torch
from sparse_dense_oracle import random_coords
from torch import nn

import kernels
from kernels import nn as spnn
from kernels.graphs import PaddedScan, stride_coords


def _block() -> nn.Sequential:
    return nn.Sequential(spnn.Conv3d(4, 8, 3), spnn.BatchNorm(8), spnn.ReLU(True),
                         spnn.Conv3d(8, 8, 3), spnn.BatchNorm(8), spnn.LeakyReLU())


def test_fusion_keeps_the_outputs_gradients_and_state_dict_keys() -> None:
    torch.manual_seed(0)
    plain = _block().double()
    fused = spnn.fuse_batch_norm_relu(copy.deepcopy(plain))
    assert fused[1].fused_relu and isinstance(fused[2], nn.Identity)
    assert not fused[4].fused_relu and isinstance(fused[5], spnn.LeakyReLU)  # only a ReLU is taken over
    assert list(fused.state_dict()) == list(plain.state_dict())
    coords = random_coords(2, 8, 0.3, torch.Generator().manual_seed(3), torch.device("cpu"))
    feats = torch.randn(coords.shape[0], 4, dtype=torch.float64)
    for training in (True, False):
        outputs = []
        for model in (plain, fused):
            model.train(training).zero_grad()
            out = model(kernels.SparseTensor(feats, coords.clone())).feats
            out.square().sum().backward()
            outputs.append((out, model[0].kernel.grad.clone(), model[1].running_mean.clone()))
        for a, b in zip(*outputs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fused_relu_applies_on_padded_tensors_and_under_sync_batch_norm() -> None:
    torch.manual_seed(1)
    fused = spnn.fuse_batch_norm_relu(_block().double())
    coords = random_coords(2, 8, 0.3, torch.Generator().manual_seed(4), torch.device("cpu"))
    feats = torch.randn(coords.shape[0], 4, dtype=torch.float64)
    per_stride = stride_coords(coords, [(1, 1, 1)])
    scan = PaddedScan.allocate(feats, {s: c.shape[0] for s, c in per_stride.items()}, 64, with_keys=False,
                               with_masks=True)
    scan.load(feats, per_stride)
    padded = fused[:3](scan.tensor()).feats  # training: masked statistics over the real rows
    assert padded.min() >= 0 and padded[coords.shape[0]:].abs().max() == 0
    synced = spnn.SyncBatchNorm.convert(copy.deepcopy(fused))
    assert synced[1].fused_relu and type(synced[1]) is spnn.SyncBatchNorm
    out = synced.eval()(kernels.SparseTensor(feats, coords.clone())).feats
    assert torch.equal(out, fused.eval()(kernels.SparseTensor(feats, coords.clone())).feats)


def test_add_relu_sums_features_of_the_same_voxels_only() -> None:
    coords = random_coords(2, 8, 0.3, torch.Generator().manual_seed(5), torch.device("cpu"))
    a, b = torch.randn(2, coords.shape[0], 3, dtype=torch.float64)
    out = spnn.add_relu(kernels.SparseTensor(a, coords), kernels.SparseTensor(b, coords))
    assert torch.equal(out.feats, torch.relu(a + b)) and out.coords is coords
    other = coords.clone()
    other[0, 1] += 100
    with pytest.raises(ValueError, match="different voxels"):
        spnn.add_relu(kernels.SparseTensor(a, coords), kernels.SparseTensor(b, other))


def test_conv_batch_norm_pairs_become_a_conv_sequential_with_the_same_outputs() -> None:
    """fuse_batch_norm_relu turns a Sequential with a Conv3d -> BatchNorm pair into a ConvSequential
    (keys unchanged); on CPU it runs exactly as the Sequential, and conv3d's epilogue argument
    applies the eval-mode BatchNorm and ReLU after the convolution on backends without one."""
    from kernels.epilogue import NormEpilogue
    from kernels.functional import conv3d

    torch.manual_seed(2)
    plain = _block().double().eval()
    plain[1].running_mean.uniform_(-1, 1)
    plain[1].running_var.uniform_(0.5, 2)
    fused = spnn.fuse_batch_norm_relu(copy.deepcopy(plain))
    assert type(fused) is spnn.ConvSequential and type(plain) is nn.Sequential
    assert list(fused.state_dict()) == list(plain.state_dict())
    coords = random_coords(2, 8, 0.3, torch.Generator().manual_seed(6), torch.device("cpu"))
    feats = torch.randn(coords.shape[0], 4, dtype=torch.float64)
    with torch.no_grad():
        out = fused(kernels.SparseTensor(feats, coords.clone())).feats
        reference = plain(kernels.SparseTensor(feats, coords.clone())).feats
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
        x = kernels.SparseTensor(feats, coords.clone())
        normalised = conv3d(x, plain[0].kernel, 3, epilogue=NormEpilogue.of(plain[1], relu=True)).feats
        expected = plain[:3](kernels.SparseTensor(feats, coords.clone())).feats
    torch.testing.assert_close(normalised, expected, rtol=1e-12, atol=1e-12)
    assert normalised.min() == 0 and normalised.max() > 0
