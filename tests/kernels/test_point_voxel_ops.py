"""Point <-> voxel operators: scatter-mean voxelisation and trilinear devoxelisation."""

from __future__ import annotations

import pytest
import torch

import kernels
from kernels.functional import (
    devoxelize,
    initial_voxelize,
    point_to_voxel,
    trilinear_corners,
    voxel_to_point,
    voxelize,
)


def test_voxelize_averages_the_points_of_each_voxel(device):
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0], [7.0, 7.0]], device=device)
    index = torch.tensor([1, 1, 0, -1], device=device)
    out = voxelize(feats, index, 3)
    expected = torch.tensor([[10.0, 0.0], [2.0, 3.0], [0.0, 0.0]], device=device)
    torch.testing.assert_close(out, expected)


def test_trilinear_weights_of_a_point_at_a_voxel_origin_and_at_a_cell_centre(device):
    voxels = torch.tensor(
        [[0, x, y, z] for x in (4, 5) for y in (6, 7) for z in (8, 9)], dtype=torch.int32, device=device
    )
    points = torch.tensor([[0.0, 4.0, 6.0, 8.0], [0.0, 4.5, 6.5, 8.5], [0.0, 4.25, 6.0, 8.0]],
                          dtype=torch.float64, device=device)
    index, weights = trilinear_corners(points, voxels, (1, 1, 1))
    # corners in torchsparse's 2x2x2 order (z fastest) equal the voxel order built above
    assert torch.equal(index, torch.arange(8, device=device).expand(3, 8))
    origin_weights = torch.eye(8, dtype=torch.float64, device=device)[0]
    torch.testing.assert_close(weights[0], origin_weights, atol=1e-7, rtol=0)
    torch.testing.assert_close(weights[1], torch.full((8,), 1 / 8, dtype=torch.float64, device=device))
    expected = torch.zeros(8, dtype=torch.float64, device=device)
    expected[0], expected[4] = 0.75, 0.25  # corner 4 is (1, 0, 0): the x neighbour
    torch.testing.assert_close(weights[2], expected, atol=1e-7, rtol=0)


def test_trilinear_weights_skip_missing_corners_and_renormalise(device):
    voxels = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.int32, device=device)
    points = torch.tensor([[0.0, 0.5, 0.5, 0.5], [1.0, 0.5, 0.5, 0.5]], dtype=torch.float64, device=device)
    index, weights = trilinear_corners(points, voxels, (1, 1, 1))
    assert index[0].tolist() == [0, -1, -1, -1, 1, -1, -1, -1]
    assert index[1].tolist() == [-1] * 8  # other batch: nothing found
    halves = torch.tensor([0.5, 0.5], dtype=torch.float64, device=device)
    torch.testing.assert_close(weights[0, [0, 4]], halves)
    assert weights[1].abs().sum().item() == 0.0


def test_trilinear_corners_at_stride_two_use_compacted_voxels(device):
    voxels = torch.tensor([[0, 1, 1, 1], [0, 2, 1, 1]], dtype=torch.int32, device=device)
    points = torch.tensor([[0.0, 3.0, 2.0, 2.0]], dtype=torch.float64, device=device)  # 3/2 = 1.5
    index, weights = trilinear_corners(points, voxels, (2, 2, 2))
    assert index[0, 0].item() == 0 and index[0, 4].item() == 1
    halves = torch.tensor([0.5, 0.5], dtype=torch.float64, device=device)
    torch.testing.assert_close(weights[0, [0, 4]], halves)


def test_initial_voxelize_then_voxel_to_point_round_trips_integer_points(device):
    coords = torch.tensor([[0, 3, 4, 5], [0, 3, 4, 5], [1, 0, 0, 0], [0, 9, 9, 9]], dtype=torch.float32,
                          device=device)
    feats = torch.tensor([[1.0], [3.0], [5.0], [7.0]], device=device)
    points = kernels.PointTensor(feats, coords)
    voxels = initial_voxelize(points)
    assert voxels.coords.tolist() == [[0, 3, 4, 5], [0, 9, 9, 9], [1, 0, 0, 0]]
    assert voxels.feats.flatten().tolist() == [2.0, 7.0, 5.0]
    back = voxel_to_point(voxels, points)
    torch.testing.assert_close(back.feats.flatten(), torch.tensor([2.0, 2.0, 5.0, 7.0], device=device))
    assert back.lookups is points.lookups
    again = point_to_voxel(voxels, back)
    torch.testing.assert_close(again.feats, voxels.feats)


def test_point_voxel_ops_have_correct_gradients(device):
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 2, (30, 1), generator=generator).double()
    xyz = torch.rand(30, 3, generator=generator, dtype=torch.float64) * 4
    point_coords = torch.cat([batch, xyz], dim=1).to(device)
    points = kernels.PointTensor(torch.zeros(30, 2, dtype=torch.float64, device=device), point_coords)
    voxels = initial_voxelize(points)
    index = points.lookups[(1, 1, 1)].voxel_index
    corner_index, corner_weights = trilinear_corners(point_coords, voxels.coords, (1, 1, 1))
    assert (corner_index >= 0).sum() > 30  # some points do interpolate between voxels

    point_feats = torch.randn(30, 2, dtype=torch.float64, device=device, requires_grad=True)
    voxel_feats = torch.randn(voxels.coords.shape[0], 2, dtype=torch.float64, device=device)
    voxel_feats.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: voxelize(f, index, voxels.coords.shape[0]), (point_feats,))
    # devoxelize's backward scatters points into voxels: atomics on CUDA, hence nondet_tol.
    assert torch.autograd.gradcheck(
        lambda f: devoxelize(f, corner_index, corner_weights), (voxel_feats,), nondet_tol=1e-12
    )


@pytest.mark.parametrize("stride", [1, 2])
def test_devoxelize_is_a_weighted_sum_of_corner_features(device, stride):
    generator = torch.Generator().manual_seed(stride)
    voxel_coords = torch.unique(torch.randint(0, 4, (40, 4), generator=generator), dim=0)
    voxel_coords[:, 0] = 0
    voxel_coords = torch.unique(voxel_coords, dim=0).to(torch.int32).to(device)
    voxel_feats = torch.randn(voxel_coords.shape[0], 3, dtype=torch.float64, device=device)
    xyz = torch.rand(20, 3, generator=generator, dtype=torch.float64) * 4 * stride
    points = torch.cat([torch.zeros(20, 1, dtype=torch.float64), xyz], 1).to(device)
    index, weights = trilinear_corners(points, voxel_coords, (stride,) * 3)
    out = devoxelize(voxel_feats, index, weights)
    for i in range(20):
        expected = sum(weights[i, j] * voxel_feats[index[i, j]] for j in range(8) if index[i, j] >= 0)
        torch.testing.assert_close(out[i], torch.as_tensor(expected, dtype=torch.float64, device=device)
                                   .expand(3))
