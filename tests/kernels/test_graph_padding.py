"""kernels.graphs' padding, checked eagerly on the CPU (the graphs themselves need a GPU).

A graph runs every scan padded to its bucket: padding voxels out of every other voxel's reach,
BatchNorm statistics over the real rows only (row masks in the caches), padding labels ignored.
Padded, a training step must compute what it computes on the scan alone.
"""

from __future__ import annotations

import copy

import pytest
import torch

import kernels
from kernels.graphs import MAX_GRANULARITY, PaddedScan, padding_coords, stride_coords
from kernels.kmap import build_kernel_map
from weak3d.models import MinkUNet


def _scan(n: int, grid: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    raw = torch.cat([torch.randint(0, 2, (n, 1), generator=generator),
                     torch.randint(-grid, grid, (n, 3), generator=generator)], dim=1)
    coords = torch.unique(raw, dim=0).to(torch.int32)
    coords = coords[torch.randperm(coords.shape[0], generator=generator)]
    feats = torch.randn(coords.shape[0], 4, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (coords.shape[0],), generator=generator)
    return coords, feats, labels


def test_padded_training_step_equals_the_unpadded_one() -> None:
    coords, feats, labels = _scan(3000, 12, seed=1)
    torch.manual_seed(0)
    model = MinkUNet(num_classes=5, cr=0.5).double().train()
    padded_model = copy.deepcopy(model)

    x = kernels.SparseTensor(feats, coords)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()

    strides = sorted(x._caches.coords)
    per_stride = stride_coords(coords, strides)
    sizes = {stride: c.shape[0] for stride, c in per_stride.items()}
    scan = PaddedScan.allocate(feats, sizes, 256, with_keys=False, with_masks=True, labels=labels)
    scan.load(feats, per_stride, labels)
    assert all(scan.coords[s].shape[0] > c.shape[0] for s, c in per_stride.items())  # every stride padded
    padded_logits = padded_model(scan.tensor())
    padded_loss = torch.nn.functional.cross_entropy(padded_logits, scan.labels)
    padded_loss.backward()

    torch.testing.assert_close(padded_loss, loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(padded_logits[: coords.shape[0]], logits.detach(), rtol=1e-9, atol=1e-9)
    for (name, p), q in zip(model.named_parameters(), padded_model.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-8, atol=1e-12, msg=name)
    for (name, b), c in zip(model.named_buffers(), padded_model.buffers(), strict=True):
        torch.testing.assert_close(c, b, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (2, 2), (3, 2)])
def test_padding_voxels_are_nobodys_neighbours(kernel: int, stride: int) -> None:
    """Padding meets neither real voxels nor other padding voxels, at one stride or across two."""
    coords, _, _ = _scan(2000, 10, seed=2)
    fine = torch.cat([coords, padding_coords(300, True, coords.device)])
    coarse_real = kernels.coords.downsample_coords(coords, (stride,) * 3) if stride > 1 else coords
    coarse = torch.cat([coarse_real, padding_coords(300, stride == 1, coords.device)])
    kmap = build_kernel_map(fine, fine if stride == 1 else coarse, (kernel,) * 3, (stride,) * 3)
    pairs = set(zip(kmap.in_index.tolist(), kmap.out_index.tolist(), strict=True))
    n_fine, n_coarse = coords.shape[0], coarse_real.shape[0]
    for i, o in pairs:
        if stride == 1 and i == o:
            continue  # a submanifold centre reads the voxel itself
        assert i < n_fine and o < n_coarse, f"padding in pair ({i}, {o})"


def test_granularity_is_bounded_by_the_key_range() -> None:
    coords, feats, _ = _scan(100, 5, seed=3)
    with pytest.raises(ValueError, match="granularity"):
        PaddedScan.allocate(feats, {(1, 1, 1): coords.shape[0]}, MAX_GRANULARITY * 2, with_keys=False,
                            with_masks=False)


def test_graph_runners_refuse_models_without_one_row_per_voxel() -> None:
    from kernels.graphs import _per_voxel

    coords, feats, _ = _scan(100, 5, seed=4)
    x = kernels.SparseTensor(feats, coords)
    assert _per_voxel(feats, x) is feats
    with pytest.raises(TypeError, match="one row per input voxel"):
        _per_voxel((feats, {}), x)
    with pytest.raises(TypeError, match="one row per input voxel"):
        _per_voxel(feats[:10], x)
