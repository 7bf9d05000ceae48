"""sparse_quantize keeps one point per voxel, by caller-chosen priority, with an inverse map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kernels


def _brute_force_keep(voxels: np.ndarray, priority: np.ndarray) -> dict[tuple[int, ...], int]:
    kept: dict[tuple[int, ...], int] = {}
    for i, voxel in enumerate(map(tuple, voxels)):
        if voxel not in kept or priority[i] > priority[kept[voxel]]:
            kept[voxel] = i
    return kept


def test_priority_picks_the_highest_and_ties_go_to_the_first_occurrence():
    coords = np.array([[0.01, 0.0, 0.0], [0.02, 0.0, 0.0], [0.03, 0.0, 0.0], [0.2, 0.0, 0.0], [0.21, 0, 0]])
    labels = np.array([0, 5, 5, 0, 0])
    voxel_coords, indices, inverse = kernels.sparse_quantize(coords, 0.05, priority=labels != 0)
    assert voxel_coords.tolist() == [[0, 0, 0], [4, 0, 0]]
    assert indices.tolist() == [1, 3]  # the labelled point 1 beats point 0; 3 is first among ties
    assert inverse.tolist() == [0, 0, 0, 1, 1]


def test_without_priority_the_first_point_of_each_voxel_is_kept():
    coords = np.array([[1.5, 0.2, 0.0], [0.1, 0.1, 0.1], [1.9, 0.9, 0.5], [0.7, 0.3, 0.2]])
    voxel_coords, indices, inverse = kernels.sparse_quantize(coords, 1.0)
    assert voxel_coords.tolist() == [[0, 0, 0], [1, 0, 0]]
    assert indices.tolist() == [1, 0]
    assert inverse.tolist() == [1, 0, 1, 0]
    assert voxel_coords.dtype == np.int32


@pytest.mark.parametrize("voxel_size", [0.05, 0.3, (0.1, 0.2, 0.5)])
def test_random_cloud_matches_brute_force_and_inverse_reconstructs(voxel_size):
    rng = np.random.default_rng(3)
    coords = rng.uniform(-2, 2, size=(3000, 3))
    priority = rng.integers(0, 4, size=3000)
    voxel_coords, indices, inverse = kernels.sparse_quantize(coords, voxel_size, priority=priority)

    voxels = np.floor(coords / np.asarray(voxel_size)).astype(np.int64)
    kept = _brute_force_keep(voxels, priority)
    assert len(indices) == len(kept) < 3000
    assert {tuple(voxels[i]): int(i) for i in indices} == kept
    np.testing.assert_array_equal(voxel_coords[inverse], voxels)
    np.testing.assert_array_equal(voxel_coords, voxels[indices])
    assert np.all(np.diff(voxel_coords[:, 0]) >= 0)  # lexicographic order, first column first


def test_torch_input_gives_torch_output_and_accepts_batch_columns():
    coords = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.2, 0.0, 0.0]])
    voxel_coords, indices, inverse = kernels.sparse_quantize(coords, 1.0)
    assert isinstance(voxel_coords, torch.Tensor) and voxel_coords.dtype == torch.int32
    assert voxel_coords.tolist() == [[0, 0, 0, 0], [1, 0, 0, 0]]
    assert indices.tolist() == [1, 0] and inverse.tolist() == [1, 0, 0]


def test_sparse_collate_sets_the_batch_column():
    a = kernels.SparseTensor(torch.ones(2, 1), torch.tensor([[0, 1, 2, 3], [0, 4, 5, 6]], dtype=torch.int32))
    b = kernels.SparseTensor(torch.zeros(1, 1), torch.tensor([[0, 1, 2, 3]], dtype=torch.int32))
    batch = kernels.sparse_collate([a, b])
    assert batch.coords[:, 0].tolist() == [0, 0, 1]
    assert batch.feats.flatten().tolist() == [1.0, 1.0, 0.0]
