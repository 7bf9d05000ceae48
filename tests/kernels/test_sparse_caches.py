"""Kernel maps are built once per coordinate set and shared by reference, as in torchsparse."""

from __future__ import annotations

import pytest
import torch
from sparse_dense_oracle import random_coords

import kernels
import kernels.functional.conv as conv_module
from kernels import nn as spnn
from kernels.backend import get_backend


def _tensor(device: torch.device, channels: int = 3) -> kernels.SparseTensor:
    coords = random_coords(2, 10, 0.25, torch.Generator().manual_seed(0), device)
    return kernels.SparseTensor(torch.randn(coords.shape[0], channels, device=device), coords)


def test_derived_tensors_share_one_cache_object(device):
    x = _tensor(device)
    y = spnn.ReLU()(spnn.BatchNorm(4).to(device)(spnn.Conv3d(3, 4).to(device)(x)))
    down = spnn.Conv3d(4, 4, 2, stride=2).to(device)(y)
    both = kernels.cat([down, down])
    assert y._caches is x._caches and down._caches is x._caches and both._caches is x._caches
    assert set(x._caches.coords) == {(1, 1, 1), (2, 2, 2)}


def test_kernel_maps_are_built_once_and_reused_by_transposed_conv(device, monkeypatch):
    builds = []
    # The Triton backend (default on CUDA) builds maps with its own method; count whichever runs.
    backend = get_backend(device)
    owner = backend if hasattr(backend, "build_kernel_map") else conv_module
    real_build = owner.build_kernel_map

    def counting_build(*args, **kwargs):
        builds.append(args[2:])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(owner, "build_kernel_map", counting_build)
    x = _tensor(device)
    layers = [spnn.Conv3d(3, 4), spnn.Conv3d(4, 4), spnn.Conv3d(4, 4, 2, stride=2),
              spnn.Conv3d(4, 4), spnn.Conv3d(4, 4, 2, stride=2, transposed=True), spnn.Conv3d(4, 4)]
    y = x
    for layer in layers:
        y = layer.to(device)(y)

    # One submanifold map per stride and one down-sampling map, reused by the transposed conv.
    assert len(builds) == 3
    assert y.coords is x.coords
    down_map = x._caches.kmaps[((1, 1, 1), (2, 2, 2), (2, 2, 2), (1, 1, 1))]
    assert down_map.n_in == x.coords.shape[0]


def test_transposed_conv_without_a_parent_stride_is_an_error(device):
    x = _tensor(device, 4)
    coarse = kernels.SparseTensor(x.feats, x.coords, stride=2)  # no stride-1 coordinates cached
    with pytest.raises(ValueError, match=r"stride \(1, 1, 1\)"):
        spnn.Conv3d(4, 4, 2, stride=2, transposed=True).to(device)(coarse)


def test_out_in_map_lists_every_pair_once(device):
    x = _tensor(device)
    kmap = kernels.build_kernel_map(x.coords, x.coords, (3, 3, 3))
    table = kmap.out_in_map()
    assert table.shape == (x.coords.shape[0], 27)
    assert int((table >= 0).sum()) == kmap.in_index.shape[0]
    # the centre column is the identity for a submanifold map
    assert kmap.identity_offset == 13
    assert torch.equal(table[:, 13], torch.arange(x.coords.shape[0], device=device))
    # neighbour at offset k of output o has coordinates o + offset_k
    offsets = kernels.kernel_offsets((3, 3, 3), device=device)
    rows, cols = (table >= 0).nonzero(as_tuple=True)
    expected = x.coords[rows, 1:].long() + offsets[cols]
    assert torch.equal(x.coords[table[rows, cols], 1:].long(), expected)
    assert torch.equal(x.coords[table[rows, cols], 0], x.coords[rows, 0])


def test_conv_module_parameters_have_torchsparse_names_and_shapes():
    assert spnn.Conv3d(4, 8, 3).kernel.shape == (27, 4, 8)
    assert spnn.Conv3d(4, 8, 2, stride=2, transposed=True).kernel.shape == (8, 4, 8)
    assert spnn.Conv3d(4, 8, 1).kernel.shape == (4, 8)
    assert set(spnn.Conv3d(4, 8, 3, bias=True).state_dict()) == {"kernel", "bias"}
    assert set(spnn.BatchNorm(8).state_dict()) == {
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"
    }


def test_backend_registry_routes_calls_and_use_backend_forces_the_oracle(device):
    from kernels import backend

    calls = []
    reference = backend.get_backend(torch.device("cpu"))

    class SpyBackend:
        name = "spy"

        def conv(self, feats, weight, kmap):
            calls.append("conv")
            return reference.conv(feats, weight, kmap)

        def voxelize(self, point_feats, voxel_index, n_voxels):
            return reference.voxelize(point_feats, voxel_index, n_voxels)

        def devoxelize(self, voxel_feats, corner_index, corner_weights):
            return reference.devoxelize(voxel_feats, corner_index, corner_weights)

    saved = dict(backend._DEFAULT_FOR_DEVICE)
    try:
        backend.register_backend("spy", SpyBackend(), device_types=(device.type,))
        x = _tensor(device)
        spnn.Conv3d(3, 4).to(device)(x)
        assert calls == ["conv"]
        with backend.use_backend("reference"):
            spnn.Conv3d(3, 4).to(device)(x)
        assert calls == ["conv"]
    finally:
        backend._DEFAULT_FOR_DEVICE.clear()
        backend._DEFAULT_FOR_DEVICE.update(saved)
        backend._BACKENDS.pop("spy", None)
