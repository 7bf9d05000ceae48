"""The tiny DAG end to end (.test/config), rerun planning through Snakemake's API, and determinism."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.workflow_api import make_workdir, snakemake
from weak3d.classes import CLASSES

RUNS = ("iter0", "iter1", "iter2", "full")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the whole tiny DAG once; the tests below read and re-plan it."""
    workdir = make_workdir(tmp_path_factory.mktemp("tiny_dag"))
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


def test_weak_labels_are_byte_identical_on_rerun(tiny_run: Path, tmp_path: Path) -> None:
    labels = tiny_run / "results" / "nusc" / "weak_labels"
    before = tmp_path / "before"
    shutil.copytree(labels, before)
    snakemake(tiny_run, ["results/nusc/weak_labels/stats.json"], forcerun={"weak_labels", "label_stats"})
    names = sorted(p.name for p in before.iterdir())
    assert names and names == sorted(p.name for p in labels.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(before, labels, names, shallow=False)
    assert mismatch == [] and errors == []
