"""Crash recovery: a training run killed with SIGKILL and restarted ends with the same weights."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.train.synthetic import toy_keyframe
from weak3d.train.loop import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
CFG = {"cr": 0.25, "voxel_size": 0.2, "batch_size": 2, "seed": 5, "epochs": 6}
FRAMES = "[toy_keyframe(i) for i in range(5)]"

CHILD = f"""
import sys, torch
sys.path.insert(0, {str(REPO)!r})
from tests.train.synthetic import toy_keyframe
from weak3d.train.loop import TrainConfig, train
frames = {FRAMES}
cfg = TrainConfig(**{CFG!r})
train(cfg, "pretrain", frames[:4], frames[4:], torch.device("cpu"), resume_path=sys.argv[1])
"""


def test_killed_training_resumes_to_identical_weights(tmp_path: Path) -> None:
    frames = eval(FRAMES)
    reference, _ = train(TrainConfig(**CFG), "pretrain", frames[:4], frames[4:], torch.device("cpu"))

    resume = tmp_path / "model.resume.pt"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(resume)])
    deadline = time.time() + 120
    while not resume.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    saved_epoch = torch.load(resume, weights_only=False)["epoch"]
    assert saved_epoch < CFG["epochs"] - 1

    resumed, history = train(
        TrainConfig(**CFG), "pretrain", frames[:4], frames[4:], torch.device("cpu"), resume_path=resume
    )
    assert [h["epoch"] for h in history] == list(range(CFG["epochs"]))
    assert resumed["epoch"] == reference["epoch"]
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_resume_file_for_other_settings_is_refused(tmp_path: Path) -> None:
    frames = [toy_keyframe(i) for i in range(3)]
    resume = tmp_path / "state.pt"
    small = {**CFG, "epochs": 1}
    train(TrainConfig(**small), "pretrain", frames[:2], frames[2:], torch.device("cpu"), resume_path=resume)
    with pytest.raises(ValueError, match="saved for other settings"):
        train(
            TrainConfig(**{**small, "lr": 0.1}),
            "pretrain",
            frames[:2],
            frames[2:],
            torch.device("cpu"),
            resume_path=resume,
        )
