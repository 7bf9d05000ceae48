"""Sparse convolution against dense torch.nn.functional convolutions on small random grids."""

from __future__ import annotations

import pytest
import torch
from sparse_dense_oracle import (
    dense_conv,
    dense_conv_transpose,
    random_coords,
    read_dense,
    to_dense,
    torchsparse_offset_order,
)

import kernels
from kernels.functional import conv3d

BATCH = 2


def _random_tensor(device: torch.device, channels: int, grid: int = 7, density: float = 0.3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    coords = random_coords(BATCH, grid, density, generator, device)
    feats = torch.randn(coords.shape[0], channels, generator=generator, dtype=torch.float64).to(device)
    return kernels.SparseTensor(feats, coords)


def _random_kernel(size: int, cin: int, cout: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size**3, cin, cout, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize(
    ("size", "dilation", "cin", "cout"),
    [(1, 1, 3, 5), (2, 1, 4, 2), (3, 1, 3, 5), (3, 2, 2, 3), (5, 1, 2, 4), (4, 1, 1, 1)],
)
def test_submanifold_conv_equals_dense_conv_at_active_sites(device, size, dilation, cin, cout):
    grid = 7
    x = _random_tensor(device, cin, grid)
    kernel = _random_kernel(size, cin, cout).to(device)
    y = conv3d(x, kernel, size, dilation=dilation)

    assert y.coords is x.coords and y.stride == (1, 1, 1)
    dense = dense_conv(to_dense(x.feats, x.coords, BATCH, grid), kernel, size, 1, dilation)
    torch.testing.assert_close(y.feats, read_dense(dense, x.coords))


@pytest.mark.parametrize(
    ("size", "stride", "dilation"), [(2, 2, 1), (3, 2, 1), (1, 2, 1), (2, 3, 1), (3, 2, 2)]
)
def test_strided_conv_equals_dense_conv_on_downsampled_sites(device, size, stride, dilation):
    grid = 12
    x = _random_tensor(device, 3, grid, density=0.2)
    kernel = _random_kernel(size, 3, 4).to(device)
    y = conv3d(x, kernel, size, stride=stride, dilation=dilation)

    # v2.1 semantics: coarse coords are compacted, floor(c / s), sorted by (b, x, y, z).
    divisor = torch.tensor([1, stride, stride, stride], device=device)
    expected_coords = torch.unique(torch.div(x.coords, divisor, rounding_mode="floor"), dim=0)
    assert torch.equal(y.coords, expected_coords.to(torch.int32))
    assert y.stride == (stride,) * 3
    dense = dense_conv(to_dense(x.feats, x.coords, BATCH, grid), kernel, size, stride, dilation)
    torch.testing.assert_close(y.feats, read_dense(dense, y.coords))


def test_second_downsampling_uses_compacted_coordinates(device):
    grid = 16
    x = _random_tensor(device, 2, grid, density=0.15)
    k1, k2 = _random_kernel(2, 2, 3).to(device), _random_kernel(2, 3, 2, seed=2).to(device)
    y = conv3d(conv3d(x, k1, 2, stride=2), k2, 2, stride=2)

    assert y.stride == (4, 4, 4)
    dense = dense_conv(dense_conv(to_dense(x.feats, x.coords, BATCH, grid), k1, 2, 2, 1), k2, 2, 2, 1)
    torch.testing.assert_close(y.feats, read_dense(dense, y.coords))


@pytest.mark.parametrize(("size", "stride"), [(2, 2), (3, 2), (2, 3)])
def test_transposed_conv_returns_to_parent_sites_and_equals_dense(device, size, stride):
    grid = 12
    x = _random_tensor(device, 3, grid, density=0.2)
    down_kernel = _random_kernel(size, 3, 4).to(device)
    up_kernel = _random_kernel(size, 4, 2, seed=3).to(device)
    coarse = conv3d(x, down_kernel, size, stride=stride)
    up = conv3d(coarse, up_kernel, size, stride=stride, transposed=True)

    assert up.coords is x.coords and up.stride == (1, 1, 1)
    coarse_grid = (grid + stride - 1) // stride
    dense_coarse = to_dense(coarse.feats, coarse.coords, BATCH, coarse_grid)
    dense_up = dense_conv_transpose(dense_coarse, up_kernel, size, stride, 1, grid)
    torch.testing.assert_close(up.feats, read_dense(dense_up, x.coords))


def test_transposed_stride_one_conv_scatters_to_input_plus_offset(device):
    # out[i] = sum_k x[i - offset_k] @ W[k] (the submanifold map read backwards, no kernel flip).
    grid = 7
    x = _random_tensor(device, 2, grid)
    kernel = _random_kernel(3, 2, 3).to(device)
    y = conv3d(x, kernel, 3, transposed=True)
    dense = dense_conv_transpose(to_dense(x.feats, x.coords, BATCH, grid), kernel, 3, 1, 1, grid)
    torch.testing.assert_close(y.feats, read_dense(dense, x.coords))


def test_bias_is_added_to_every_output_row(device):
    x = _random_tensor(device, 2)
    kernel = _random_kernel(3, 2, 3).to(device)
    bias = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, device=device)
    torch.testing.assert_close(conv3d(x, kernel, 3, bias=bias).feats, conv3d(x, kernel, 3).feats + bias)


def test_kernel_offsets_follow_torchsparse_order():
    first_four = [[-1, -1, -1], [0, -1, -1], [1, -1, -1], [-1, 0, -1]]
    assert kernels.kernel_offsets((3, 3, 3))[:4].tolist() == first_four
    assert kernels.kernel_offsets((3, 3, 3))[13].tolist() == [0, 0, 0]
    assert kernels.kernel_offsets((2, 2, 2)).tolist() == [
        [0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]
    ]
    for size in (2, 3, 4, 5):
        expected = torchsparse_offset_order(size)
        assert kernels.kernel_offsets((size,) * 3).tolist() == [list(o) for o in expected]


@pytest.mark.parametrize("size", [2, 3])
def test_weight_row_k_multiplies_the_neighbour_at_offset_k(device, size):
    # One output voxel with all its neighbours present; only the neighbour at offset `probe` has a
    # non-zero feature and weight row k is the number k, so the output names the row it met.
    offsets = torchsparse_offset_order(size)
    centre = (5, 5, 5)
    sites = [(0, centre[0] + dx, centre[1] + dy, centre[2] + dz) for dx, dy, dz in offsets]
    if (0, *centre) not in sites:
        sites.append((0, *centre))
    coords = torch.tensor(sites, dtype=torch.int32, device=device)
    volume = len(offsets)
    for probe in range(volume):
        feats = torch.zeros(len(sites), 1, dtype=torch.float64, device=device)
        feats[sites.index((0, centre[0] + offsets[probe][0], centre[1] + offsets[probe][1],
                           centre[2] + offsets[probe][2]))] = 1.0
        kernel = torch.arange(volume, dtype=torch.float64, device=device).reshape(volume, 1, 1)
        out = conv3d(kernels.SparseTensor(feats, coords), kernel, size)
        assert out.feats[sites.index((0, *centre)), 0].item() == probe


@pytest.mark.parametrize("kind", ["submanifold", "strided", "transposed"])
def test_conv_gradients_match_finite_differences(device, kind):
    x = _random_tensor(device, 2, grid=5, density=0.35)
    feats = x.feats.detach().clone().requires_grad_(True)
    kernel = _random_kernel(3 if kind == "submanifold" else 2, 2, 3).to(device).requires_grad_(True)
    coarse = conv3d(x, torch.ones(8, 2, 2, dtype=torch.float64, device=device), 2, stride=2)

    def run(feats: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        if kind == "submanifold":
            return conv3d(x.replace_feats(feats), kernel, 3).feats
        if kind == "strided":
            return conv3d(x.replace_feats(feats), kernel, 2, stride=2).feats
        return conv3d(coarse.replace_feats(feats), kernel, 2, stride=2, transposed=True).feats

    if kind == "transposed":
        feats = torch.randn(coarse.coords.shape[0], 2, dtype=torch.float64, device=device)
        feats.requires_grad_(True)
    assert torch.autograd.gradcheck(run, (feats, kernel))


def test_conv_is_bitwise_deterministic(device):
    x = _random_tensor(device, 8, grid=10, density=0.3)
    x.feats.requires_grad_(True)
    kernel = torch.randn(27, 8, 8, dtype=torch.float64, device=device, requires_grad=True)
    results = []
    for _ in range(2):
        out = conv3d(conv3d(x, kernel, 3), kernel[:8], 2, stride=2)
        grads = torch.autograd.grad(out.feats.square().sum(), (x.feats, kernel))
        results.append((out.feats, *grads))
    for first, second in zip(*results, strict=True):
        assert torch.equal(first, second)


def test_empty_tensor_convolves_to_empty(device):
    coords = torch.zeros(0, 4, dtype=torch.int32, device=device)
    x = kernels.SparseTensor(torch.zeros(0, 3, device=device), coords)
    kernel = torch.randn(27, 3, 2, device=device)
    assert conv3d(x, kernel, 3).feats.shape == (0, 2)
    assert conv3d(x, kernel[:8], 2, stride=2).feats.shape == (0, 2)
