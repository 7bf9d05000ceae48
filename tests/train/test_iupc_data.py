"""IUPC batches: camera choice, image reads, superpixel ids, association target, loss switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.camera_synthetic import CAMERA_NAMES, HEIGHT, SP_SHAPE, WIDTH, camera_keyframe
from weak3d.losses import association_losses
from weak3d.models.iupc import IUPCOutput
from weak3d.train.iupc_data import (
    association_target,
    last_visible_camera,
    make_camera_batch,
    normalized_grid,
    superpixel_ids,
)
from weak3d.train.iupc_step import iupc_loss

IMAGE_SIZE = (36, 64)


def test_a_point_seen_by_several_cameras_takes_the_last_in_the_seed_order() -> None:
    # Seed order: FRONT_LEFT, FRONT, FRONT_RIGHT, BACK_LEFT, BACK, BACK_RIGHT; rows are weak3d's.
    row = {name: i for i, name in enumerate(CAMERA_NAMES)}
    cases = [
        (["CAM_FRONT", "CAM_FRONT_LEFT"], "CAM_FRONT"),
        (["CAM_FRONT_RIGHT", "CAM_BACK_LEFT"], "CAM_BACK_LEFT"),
        (["CAM_BACK_RIGHT", "CAM_BACK", "CAM_FRONT"], "CAM_BACK_RIGHT"),
        (["CAM_FRONT_LEFT"], "CAM_FRONT_LEFT"),
    ]
    visible = np.zeros((6, len(cases) + 1), bool)
    for p, (seen, _) in enumerate(cases):
        visible[[row[n] for n in seen], p] = True
    chosen = last_visible_camera(visible, CAMERA_NAMES)
    assert chosen.tolist() == [row[winner] for _, winner in cases] + [-1]  # last point: no camera


def test_association_target_on_a_hand_made_scene() -> None:
    # Superpixel 0: clicks 4, 4 -> pure; 1: clicks 4, 11 -> mixed; 2: no click; 3: one click 15;
    # -1: a point seen by no camera, holding a click of its own.
    superpixel = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, -1, -1])
    sparse = np.array([4, 0, 4, 0, 4, 11, 0, 0, 0, 0, 15, 7, 0])
    expected = np.array([4, 4, 4, 4, 4, 11, 0, 0, 0, 15, 15, 7, 0])
    assert association_target(sparse, superpixel).tolist() == expected.tolist()
    assert association_target(np.zeros(3, int), np.array([0, 1, -1])).tolist() == [0, 0, 0]


def test_superpixel_ids_are_offset_per_camera_and_read_at_the_seed_pixel() -> None:
    maps = np.zeros((2, 3, 4), np.uint16)
    maps[0] = np.arange(12).reshape(3, 4)  # ids 0..11 -> offset of camera 1 is 12
    maps[1] = np.arange(12).reshape(3, 4)[::-1]
    grid = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-1.0, -1.0], [0.5, 0.5]], np.float32)
    camera = np.array([0, 0, 0, 1, -1])
    # (0,0) -> 0; (3,2) -> 11; centre: floor(1.5)=1, floor(1.0)=1 -> 5; camera 1 row 0 is [8..11].
    assert superpixel_ids(maps, camera, grid).tolist() == [0, 11, 5, 12 + 8, -1]


def test_camera_batch_reads_each_voxel_point_through_its_camera(tmp_path: Path) -> None:
    frames = [camera_keyframe(0, tmp_path), camera_keyframe(1, tmp_path)]
    for augment in (False, True):
        rng = np.random.default_rng(0)
        batch = make_camera_batch(frames, 0.3, IMAGE_SIZE, rng=rng, augment=augment)
        cams = batch.cameras
        assert cams.images.shape == (12, 3, *IMAGE_SIZE) and cams.images.dtype == torch.float32
        assert 0 <= float(cams.images.min()) and float(cams.images.max()) <= 255 and cams.images.max() > 1
        n_voxels = batch.batch.tensor.coords.shape[0]
        assert cams.image_index.shape == (n_voxels,) and cams.grid.shape == (n_voxels, 2)
        for v in np.random.default_rng(1).choice(n_voxels, 50, replace=False):
            b, p = batch.batch.voxel_point_index[v]
            frame = frames[b]
            cam = last_visible_camera(frame.visible[:, [p]], CAMERA_NAMES)[0]
            assert int(cams.image_index[v]) == 6 * b + cam
            # uv are from the un-augmented points: the augmentation never moves the image read.
            want = normalized_grid(frame.uv[cam, p], WIDTH, HEIGHT)
            assert np.allclose(cams.grid[v].numpy(), want)
            assert int(batch.superpixel[v]) >= cam * SP_SHAPE[0] * SP_SHAPE[1]
        sparse = batch.batch.targets["sparse"]
        assoc = batch.assoc_target
        assert torch.equal(assoc[sparse > 0], sparse[sparse > 0])  # clicks are always targets
        assert int((assoc > 0).sum()) > int((sparse > 0).sum())  # and pure superpixels add points


def test_frames_without_superpixels_get_no_association_target(tmp_path: Path) -> None:
    batch = make_camera_batch([camera_keyframe(0, tmp_path, with_superpixels=False)], 0.3, IMAGE_SIZE)
    assert not bool(batch.assoc_target.any()) and bool((batch.superpixel == -1).all())


def _fake_output(n: int, seed: int) -> IUPCOutput:
    g = torch.Generator().manual_seed(seed)
    return IUPCOutput(*(torch.randn(n, d, generator=g) for d in (17, 17, 8, 8, 5)))


def test_association_switch_removes_exactly_the_association_terms(tmp_path: Path) -> None:
    batch = make_camera_batch([camera_keyframe(0, tmp_path)], 0.3, IMAGE_SIZE)
    out = _fake_output(batch.batch.tensor.coords.shape[0], 0)
    with_assoc, terms = iupc_loss(out, batch, "pretrain", association=True)
    without, terms_off = iupc_loss(out, batch, "pretrain", association=False)
    assert {"walker", "visit"} <= set(terms) and not {"walker", "visit"} & set(terms_off)
    sparse = batch.batch.targets["sparse"]
    walker, visit = association_losses(
        out.emb_3d[sparse > 0], sparse[sparse > 0], out.emb_2d[batch.assoc_target > 0], 0.5
    )
    assert float(walker) > 0 and float(visit) > 0
    assert float(with_assoc - without) == pytest.approx(float(0.5 * (walker + 0.5 * visit)), rel=1e-5)
    # Every other term is the same, for both branches.
    for key, value in terms_off.items():
        assert torch.equal(value, terms[key]), key
    assert {"sp_vox", "sp_pix", "pp_vox", "pp_pix", "neg_vox", "neg_pix"} == set(terms_off)
