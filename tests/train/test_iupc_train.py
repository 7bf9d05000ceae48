"""The training loop, E-step and evaluation with the fused iupc network (tiny images, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.train.camera_synthetic import camera_keyframe
from weak3d.models.build import build_model
from weak3d.train.loop import TrainConfig, evaluate_frames, predict_frame, train
from weak3d.train.pseudo import EstepConfig, pseudo_labels, pseudo_region

CPU = torch.device("cpu")
TINY = {"model": "iupc", "cr": 0.25, "voxel_size": 0.4, "batch_size": 2, "seed": 5, "image_size": (36, 64)}


def test_iupc_pretrain_then_estep_and_evaluation(tmp_path: Path) -> None:
    frames = [camera_keyframe(i, tmp_path, n_ground=600, n_box=120) for i in range(3)]
    best, history = train(TrainConfig(epochs=2, **TINY), "pretrain", frames[:2], frames[2:], CPU)
    assert len(history) == 2 and np.isfinite([h["loss"] for h in history]).all()
    model = build_model("iupc", cr=TINY["cr"])  # the image size comes back from the state dict
    model.load_state_dict(best["state_dict"])
    assert model.input_size == (36, 64)
    idx, probs, feats = predict_frame(model, frames[0], TINY["voxel_size"], CPU)
    assert probs.shape == (len(idx), 17) and feats.shape == (len(idx), model.net3d.widths[8])
    # Prediction is deterministic (eval mode, no augmentation): the E-step sees stable features.
    assert torch.equal(predict_frame(model, frames[0], TINY["voxel_size"], CPU)[1], probs)
    pseudo = pseudo_labels(model, frames[0], 1, TINY["voxel_size"], EstepConfig(), CPU)
    assert not pseudo[~pseudo_region(frames[0], 1)].any()
    result = evaluate_frames(model, frames[2:], TINY["voxel_size"], CPU)
    assert result["n_points"] == len(frames[2].points)


def test_association_ablation_changes_only_the_loss(tmp_path: Path) -> None:
    frames = [camera_keyframe(i, tmp_path, n_ground=400, n_box=80) for i in range(2)]
    runs = {
        flag: train(TrainConfig(epochs=1, association=flag, **TINY), "pretrain", frames[:1], frames[1:], CPU)
        for flag in (True, False)
    }
    # Same seed, same data order and initial weights; only the association term differs.
    assert runs[True][1][0]["loss"] > runs[False][1][0]["loss"]
