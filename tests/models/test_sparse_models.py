"""MinkUNet and SPVCNN: layout (spvnas keys and widths), interfaces, and a real nuScenes sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import kernels
from weak3d.models import SPVCNN, MinkUNet

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
NUSCENES_SWEEP = (
    SHARED / "realdata/nuscenes/n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"
)
VOXEL_SIZE = 0.05


def _synthetic_scan(seed: int, n: int = 600, batch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A few thousand points on two planes in a 3 m box, as (voxel coords, features)."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 3, size=(n, 3))
    xyz[: n // 2, 2] = 0.1  # a ground plane
    xyz[n // 2 :, 0] = 2.0  # a wall
    voxel_coords, indices, _ = kernels.sparse_quantize(xyz, VOXEL_SIZE)
    coords = np.concatenate([np.full((len(indices), 1), batch), voxel_coords], axis=1).astype(np.int32)
    feats = np.concatenate([xyz[indices], rng.uniform(0, 1, (len(indices), 1))], axis=1)
    return torch.from_numpy(coords), torch.from_numpy(feats).float()


def _load_sweep() -> np.ndarray:
    if not SHARED.is_dir():
        pytest.skip("../shared (real data) is absent")
    return np.fromfile(NUSCENES_SWEEP, dtype=np.float32).reshape(-1, 5)


def test_spvnas_state_dict_keys_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in MinkUNet(cr=1.0).state_dict().items()}
    assert shapes["stem.0.kernel"] == (27, 4, 32)
    assert shapes["stem.1.running_var"] == (32,)
    assert shapes["stage1.0.net.0.kernel"] == (8, 32, 32)
    assert shapes["stage2.1.net.0.kernel"] == (27, 32, 64)
    assert shapes["stage2.1.downsample.0.kernel"] == (32, 64)
    assert shapes["up1.0.net.0.kernel"] == (8, 256, 256)
    assert shapes["up1.1.0.net.0.kernel"] == (27, 256 + 128, 256)
    assert shapes["up4.1.1.net.3.kernel"] == (27, 96, 96)
    assert shapes["classifier.0.weight"] == (17, 96)

    spvcnn = {k: tuple(v.shape) for k, v in SPVCNN(cr=0.64).state_dict().items()}
    assert spvcnn["point_transforms.0.0.weight"] == (163, 20)
    assert spvcnn["point_transforms.2.1.running_mean"] == (61,)
    assert set(shapes) <= set(spvcnn)  # SPVCNN = MinkUNet + point branch


def test_widths_and_parameter_count_match_spvnas():
    assert SPVCNN(cr=0.64).widths == [20, 20, 40, 81, 163, 163, 81, 61, 61]  # IUPC's widths
    # spvnas README: MinkUNet cr=1.0 on SemanticKITTI (19 classes) has 21.7 M parameters.
    count = sum(p.numel() for p in MinkUNet(num_classes=19, cr=1.0).parameters())
    assert round(count / 1e6, 1) == 21.7


def test_minkunet_features_have_the_documented_strides_and_widths(device):
    coords, feats = _synthetic_scan(0)
    model = MinkUNet(cr=0.25).to(device)
    logits, features = model(kernels.SparseTensor(feats.to(device), coords.to(device)), return_features=True)
    assert logits.shape == (coords.shape[0], 17)
    cs = model.widths
    assert [t.stride[0] for t in features["encoder"]] == [1, 2, 4, 8, 16]
    assert [t.feats.shape[1] for t in features["encoder"]] == cs[:5]
    assert [t.stride[0] for t in features["decoder"]] == [8, 4, 2, 1]
    assert features["decoder"][-1].coords is features["encoder"][0].coords
    assert features["voxel_features"].shape == (coords.shape[0], cs[8])


def test_minkunet_in_eval_mode_does_not_mix_scans_of_a_batch(device):
    coords_a, feats_a = _synthetic_scan(1)
    coords_b, feats_b = _synthetic_scan(2, batch=1)
    model = MinkUNet(cr=0.25).to(device).eval()
    with torch.no_grad():
        alone = model(kernels.SparseTensor(feats_a.to(device), coords_a.to(device)))
        both = model(kernels.SparseTensor(torch.cat([feats_a, feats_b]).to(device),
                                          torch.cat([coords_a, coords_b]).to(device)))
    torch.testing.assert_close(both[: coords_a.shape[0]], alone, rtol=1e-4, atol=1e-5)


def test_spvcnn_returns_point_logits_features_and_calls_the_stage_hook(device):
    coords, feats = _synthetic_scan(3)
    points = kernels.PointTensor(feats.to(device), coords.float().to(device))
    model = SPVCNN(cr=0.25).to(device).eval()
    seen = []

    def zero_stage_three(stage: int, voxels: kernels.SparseTensor, z: kernels.PointTensor):
        seen.append((stage, voxels.stride[0], z.feats.shape[1]))
        return voxels.replace_feats(voxels.feats * 0) if stage == 3 else voxels

    with torch.no_grad():
        logits, features = model(points, return_features=True)
        hooked, hooked_features = model(points, return_features=True, stage_hook=zero_stage_three)
    assert logits.shape == (coords.shape[0], 17)
    assert features["point_features"].shape == (coords.shape[0], model.widths[8])
    assert [z.feats.shape[1] for z in features["points"]] == [model.widths[i] for i in (0, 4, 6, 8)]
    assert seen == [(1, 2, model.widths[0]), (2, 4, model.widths[0]), (3, 8, model.widths[0]),
                    (4, 16, model.widths[0])]
    assert hooked_features["encoder"][3].feats.abs().sum() == 0
    assert not torch.allclose(hooked, logits)


@pytest.mark.parametrize("model_name", ["MinkUNet", "SPVCNN"])
def test_forward_backward_on_a_real_nuscenes_sweep(device, model_name):
    sweep = _load_sweep()
    assert sweep.shape[0] == 34688
    xyz = sweep[:, :3] - sweep[:, :3].min(axis=0)
    torch.manual_seed(0)
    if model_name == "MinkUNet":
        voxel_coords, indices, inverse = kernels.sparse_quantize(xyz, VOXEL_SIZE)
        coords = torch.from_numpy(np.concatenate([np.zeros((len(indices), 1), np.int32), voxel_coords], 1))
        model = MinkUNet(cr=0.5).to(device)
        voxel_feats = torch.from_numpy(sweep[indices, :4]).to(device)
        logits = model(kernels.SparseTensor(voxel_feats, coords.to(device)))
        assert logits.shape == (len(indices), 17) and 20_000 < len(indices) < 34688
        point_logits = logits[torch.from_numpy(inverse).to(device)]
    else:
        coords = np.concatenate([np.zeros((len(xyz), 1), np.float32), xyz / VOXEL_SIZE], 1)
        model = SPVCNN(cr=0.64).to(device)
        point_logits = model(kernels.PointTensor(torch.from_numpy(sweep[:, :4]).to(device),
                                                 torch.from_numpy(coords).to(device)))
    labels = torch.randint(0, 17, (sweep.shape[0],), device=device)
    loss = torch.nn.functional.cross_entropy(point_logits, labels)
    loss.backward()

    assert point_logits.shape == (34688, 17) and torch.isfinite(loss)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert model.stem[0].kernel.grad.abs().sum() > 0
