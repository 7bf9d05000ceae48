"""The tiny DAG end to end (.test/config), rerun planning through Snakemake's API, and determinism.

The rerun tests assert exactly the rows of the README table "What reruns when you change something".
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.workflow_api import make_repo_copy, snakemake
from weak3d.classes import CLASSES

RUNS = ("iter0", "iter1", "iter2", "full")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the whole tiny DAG once; the tests below read and re-plan it.

    It runs from a copy of the repository so that tests can edit library code (the copy's).
    """
    workdir = make_repo_copy(tmp_path_factory.mktemp("tiny_dag"))
    snakemake(workdir, ["all"])
    return workdir


def edit_config(workdir: Path, section: str, key: str, value: object) -> None:
    path = workdir / "config" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(cfg))


def test_every_run_has_a_complete_miou_file(tiny_run: Path) -> None:
    for run in RUNS:
        result = json.loads((tiny_run / "results" / "nusc" / f"{run}.miou").read_text())
        assert set(result) >= {
            "miou",
            "per_class",
            "split",
            "points",
            "miou_full_scan",
            "checkpoint",
            "n_points",
        }
        assert 0.0 <= result["miou"] <= 100.0
        assert result["points"] == "fov" and result["split"] == "val"
        assert set(result["per_class"]) == set(CLASSES[1:])
        assert result["n_points"] > 0
    summary = (tiny_run / "results" / "nusc" / "summary.md").read_text()
    assert "Iter0" in summary and "Full" in summary


def test_nothing_reruns_when_nothing_changed(tiny_run: Path) -> None:
    assert snakemake(tiny_run, ["all"], dryrun=True) == []


def test_estep_setting_reruns_only_esteps_and_what_follows(tiny_run: Path) -> None:
    original = (tiny_run / "config" / "config.yaml").read_text()
    try:
        edit_config(tiny_run, "estep", "classifier_margin", 0.2)
        planned = snakemake(tiny_run, ["all"], dryrun=True)
    finally:
        (tiny_run / "config" / "config.yaml").write_text(original)
    expected = {
        "results/nusc/iter1/pseudo",
        "results/nusc/iter2/pseudo",
        "results/nusc/iter1/model.pt",
        "results/nusc/iter1/train_log.json",
        "results/nusc/iter2/model.pt",
        "results/nusc/iter2/train_log.json",
        "results/nusc/iter1.miou",
        "results/nusc/iter2.miou",
        "results/nusc/summary.md",
    }
    assert set(planned) == expected


# What the tiny DAG's stages write (results/nusc/...), for the expected rerun sets below.
TRAINING = {f"results/nusc/{run}/{name}" for run in RUNS for name in ("model.pt", "train_log.json")} | {
    "results/nusc/iter1/pseudo",
    "results/nusc/iter2/pseudo",
}
EVALUATION = {f"results/nusc/{run}.miou" for run in RUNS} | {"results/nusc/summary.md"}


def superpixel_files(workdir: Path) -> set[str]:
    """Superpixels exist for training scenes only (nothing else reads them)."""
    split = json.loads((workdir / "results" / "nusc" / "scenes.json").read_text())
    assert split["train"] and split["val"]
    return {f"results/nusc/superpixels/{scene}.h5" for scene in split["train"]}


def planned_after_config_edit(workdir: Path, section: str, key: str, value: object) -> set[str]:
    """The outputs a dry run would rebuild after one config edit (the config is restored after)."""
    path = workdir / "config" / "config.yaml"
    original = path.read_text()
    try:
        edit_config(workdir, section, key, value)
        return set(snakemake(workdir, ["all"], dryrun=True))
    finally:
        path.write_text(original)


@contextmanager
def code_edit(path: Path) -> Iterator[None]:
    """Append a comment line to a module of the repository copy; restore its bytes and mtime after.

    A comment is enough: Snakemake reruns a job when an input is newer than its outputs and, for
    files up to 1 MB, its checksum also differs from the one recorded, so the content must change
    (a touch is not enough) and restoring the content makes the edit invisible again.
    """
    original = path.read_bytes()
    stat = path.stat()
    try:
        path.write_bytes(original + b"\n# edited by tests/test_workflow.py\n")
        yield
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_superpixel_setting_reruns_superpixels_and_everything_trained_on_them(tiny_run: Path) -> None:
    planned = planned_after_config_edit(tiny_run, "superpixels", "num_superpixels", 200)
    assert planned == superpixel_files(tiny_run) | TRAINING | EVALUATION


def test_eval_setting_reruns_only_evaluation_and_summary(tiny_run: Path) -> None:
    planned = planned_after_config_edit(tiny_run, "eval", "full_scan", False)
    assert planned == EVALUATION


def test_stage_code_edit_reruns_that_stage_and_what_follows(tiny_run: Path) -> None:
    with code_edit(tiny_run / "weak3d" / "stages" / "superpixels.py"):
        planned = set(snakemake(tiny_run, ["all"], dryrun=True))
    assert planned == superpixel_files(tiny_run) | TRAINING | EVALUATION


def test_kernel_code_edit_reruns_training_esteps_and_evaluation(tiny_run: Path) -> None:
    with code_edit(tiny_run / "kernels" / "reference.py"):
        planned = set(snakemake(tiny_run, ["all"], dryrun=True))
    assert planned == TRAINING | EVALUATION


def test_restored_code_reruns_nothing(tiny_run: Path) -> None:
    """After the edits above are undone (bytes and mtime), the DAG is complete again."""
    assert snakemake(tiny_run, ["all"], dryrun=True) == []


def test_killed_run_leaves_no_complete_looking_output_and_reruns_incomplete(tiny_run: Path) -> None:
    """SIGKILL snakemake and its job mid-E-step; `--rerun-incomplete` then completes the DAG."""
    command = [sys.executable, "-m", "snakemake", "--cores", "1"]
    pseudo = tiny_run / "results" / "nusc" / "iter1" / "pseudo"
    marker_dir = tiny_run / ".snakemake" / "incomplete"
    forced = [*command, "--forcerun", "estep", "--", "all"]
    run = subprocess.Popen(
        forced,
        cwd=tiny_run,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill as soon as Snakemake has marked a job's outputs incomplete, i.e. the job has started.
    deadline = time.time() + 120
    while not (marker_dir.is_dir() and any(marker_dir.iterdir())):
        assert run.poll() is None and time.time() < deadline, "the E-step never started"
        time.sleep(0.05)
    time.sleep(0.5)  # into the job (its Python alone takes longer to start)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    # The job's output is absent, not partial: outputs are renamed into place only when complete.
    assert not pseudo.exists()
    # The killed Snakemake leaves its lock behind: the user's recipe is --unlock, then the same
    # command with --rerun-incomplete. (Without the forced rerun Snakemake would call the DAG
    # complete: the E-step's consumers are up to date, and a missing intermediate is not rebuilt.)
    unlock = subprocess.run([*command, "--unlock"], cwd=tiny_run, capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    finished = subprocess.run(
        [*forced[:-2], "--rerun-incomplete", "--", "all"], cwd=tiny_run, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert (pseudo / "quality.json").is_file()
    assert not any(marker_dir.iterdir())
    assert snakemake(tiny_run, ["all"], dryrun=True) == []


def test_weak_labels_are_byte_identical_on_rerun(tiny_run: Path, tmp_path: Path) -> None:
    # Last: it rewrites weak labels, which may leave later stages outdated for the dry runs above.
    labels = tiny_run / "results" / "nusc" / "weak_labels"
    before = tmp_path / "before"
    shutil.copytree(labels, before)
    snakemake(tiny_run, ["results/nusc/weak_labels/stats.json"], forcerun={"weak_labels", "label_stats"})
    names = sorted(p.name for p in before.iterdir())
    assert names and names == sorted(p.name for p in labels.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(before, labels, names, shallow=False)
    assert mismatch == [] and errors == []
