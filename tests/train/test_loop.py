"""Training loop, batching and the E-step driver on small hand-made keyframes (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train.synthetic import toy_keyframe
from weak3d.train.data import label_priority, make_batch
from weak3d.train.loop import TrainConfig, evaluate_frames, lr_factor, train
from weak3d.train.pseudo import EstepConfig, pseudo_labels, pseudo_region, quality

CPU = torch.device("cpu")
SMALL = {"cr": 0.25, "voxel_size": 0.2, "batch_size": 2, "seed": 3}


def test_lr_schedule_warms_up_linearly_then_follows_a_cosine() -> None:
    assert lr_factor(0, 4, 20) == pytest.approx(0.25)
    assert lr_factor(3, 4, 20) == pytest.approx(1.0)
    assert lr_factor(4, 4, 20) == pytest.approx(1.0)
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)
    assert lr_factor(20, 4, 20) == pytest.approx(0.0, abs=1e-12)


def test_unknown_train_setting_is_named() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_voxel_keeps_the_clicked_point() -> None:
    frame = toy_keyframe(0)
    batch = make_batch([frame], voxel_size=0.5)
    kept = batch.voxel_point_index[:, 1]
    clicked = np.flatnonzero(frame.extra["sparse"])
    # Every voxel holding a click keeps a clicked point, so voxelization loses no labelled voxel.
    voxels_with_click = np.unique(batch.point_to_voxel[0][clicked])
    assert (frame.extra["sparse"][kept[voxels_with_click]] > 0).all()
    assert int((batch.targets["sparse"] > 0).sum()) == len(voxels_with_click)
    assert label_priority(frame)[clicked].min() == 4


def test_point_to_voxel_map_round_trips() -> None:
    frame = toy_keyframe(1)
    batch = make_batch([frame], voxel_size=0.3)
    voxel_of_point = batch.point_to_voxel[0]
    kept_point = batch.voxel_point_index[voxel_of_point, 1]
    coords = np.floor(frame.points[batch.point_index[0], :3] / 0.3)
    assert np.array_equal(coords, np.floor(frame.points[kept_point, :3] / 0.3))


def test_full_supervision_learns_the_toy_scene() -> None:
    frames = [toy_keyframe(i) for i in range(4)]
    best, history = train(TrainConfig(epochs=4, **SMALL), "full", frames[:3], frames[3:], CPU)
    assert history[-1]["loss"] < history[0]["loss"]
    assert best["val_miou"] == max(h["val_miou"] for h in history)
    assert best["val_miou"] > 40.0


def test_training_is_deterministic() -> None:
    frames = [toy_keyframe(i) for i in range(3)]
    runs = [
        train(TrainConfig(epochs=1, **SMALL), "pretrain", frames[:2], frames[2:], CPU)[0] for _ in range(2)
    ]
    for key, value in runs[0]["state_dict"].items():
        assert torch.equal(value, runs[1]["state_dict"][key]), key


def test_estep_iteration1_labels_only_candidate_points_with_a_class_of_their_set() -> None:
    frames = [toy_keyframe(i) for i in range(3)]
    best, _ = train(TrainConfig(epochs=3, **SMALL), "pretrain", frames[:2], frames[2:], CPU)
    from weak3d.models.build import build_model

    model = build_model("minkunet", cr=SMALL["cr"])
    model.load_state_dict(best["state_dict"])
    frame = frames[0]
    pseudo = pseudo_labels(model, frame, 1, SMALL["voxel_size"], EstepConfig(), CPU)
    region = pseudo_region(frame, 1)
    assert not pseudo[~region].any()
    labelled = pseudo > 0
    assert np.isin(pseudo[labelled], [4, 15]).all()
    stats = quality([frame], {frame.token: pseudo}, 1)
    assert stats["n_labelled"] == int(labelled.sum())
    assert stats["n_region"] == int(region.sum())


def test_evaluation_counts_only_labelled_points() -> None:
    frame = toy_keyframe(5)
    frame.labels[:100] = 0
    from weak3d.models.build import build_model

    result = evaluate_frames(build_model("minkunet", cr=0.25), [frame], 0.2, CPU)
    assert result["n_points"] == len(frame.labels) - 100
