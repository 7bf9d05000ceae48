"""The tiny DAG through a real one-node SLURM cluster with profiles/slurm (issue #7).

The module fixture brings SLURM up with .ci/slurm-up.sh (installing the Debian packages if needed) and
stops what it started afterwards. The run uses `snakemake --profile profiles/slurm` plus an overlay
profile written into the temporary directory, because a CI machine is not a GPU node:

- `gpu: 0` for the GPU rules: the cluster has no GPU gres, so `sbatch --gpus=1` would be rejected
  ("Requested node configuration is not available"); with gpu=0 the plugin adds no --gpus and the
  .test config trains on the CPU;
- `mem_mb` capped to a share of this node's memory: SLURM rejects a job asking for more than
  RealMemory (the profile asks 64 GB for training);
- `cores` = this machine's CPUs, so a group job's layers fit the node;
- the sbatch logs go to the temporary directory, status checks start sooner, no retries.

Every other key (executor, jobs, groups, group-components, status command, ...) is the profile's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.workflow_api import REPO, make_workdir

RUNS = ("iter0", "iter1", "iter2", "full")
GPU_RULES = ("pretrain", "estep", "mstep", "full", "evaluate")  # the GPU rules the tiny DAG runs
SCENE_RULES = ("preprocess", "presegment", "superpixels", "weak_labels")
# A guard against a hang (the plugin waits forever on a status command that fails), not the target.
# Measured on an idle 2-core machine: 188 s for the run, 196 s for the module with SLURM installed
# (installing it from Debian adds ~10 s); on a machine shared with other CPU-heavy jobs it took 7 min.
RUN_TIMEOUT_S = 480


def rules_with_gpu_resource() -> set[str]:
    """Rules that declare a `gpu` resource in workflow/rules/*.smk: the ones that run on a GPU."""
    rules = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^(?=(?:rule|checkpoint) )", smk.read_text(), flags=re.M):
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if name and re.search(r"^\s+gpu=", block, flags=re.M):
                rules.add(name.group(1))
    return rules


def test_profile_asks_a_gpu_for_every_gpu_rule() -> None:
    """Runs without SLURM: a GPU rule added to the workflow must get its GPU in the profile."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    asks = {rule for rule, resources in profile["set-resources"].items() if resources.get("gpu")}
    assert asks == rules_with_gpu_resource() and asks >= set(GPU_RULES)


def slurm_unavailable() -> str | None:
    """Why this machine cannot host the test cluster, or None. Nothing else is a reason to skip."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: starts munged, slurmctld and slurmd (and may apt-get install them)"
    installed = all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))
    if not installed and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> Iterator[float]:
    """A running one-node cluster; yields the seconds slurm-up.sh took. Stops the daemons it started."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    start = time.monotonic()
    up = subprocess.run(
        ["bash", str(REPO / ".ci" / "slurm-up.sh")], capture_output=True, text=True, timeout=240
    )
    seconds = time.monotonic() - start
    assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
    started = up.stdout.strip().splitlines()[-1].removeprefix("started=").split()
    try:
        yield seconds
    finally:
        if "slurmctld" in started:
            # Our own cluster: no job of it may outlive the test (after a timeout, say).
            subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=30)
        if started:
            subprocess.run(["bash", str(REPO / ".ci" / "slurm-down.sh"), *started], timeout=60)


def node_memory_mb() -> int:
    """RealMemory of the node as slurm-up.sh configures it (MemTotal less 1 GiB)."""
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    return total_kb // 1024 - 1024


def ci_overlay(profile: dict, logdir: Path) -> dict:
    """The overlay profile: this module's docstring says why each key differs from profiles/slurm.

    A later profile replaces a whole top-level key, so set-resources is the profile's, edited.
    """
    cores = os.cpu_count() or 1
    # Scheduling only (no cgroups here): leave room for `cores` jobs of this size at once.
    mem_cap = node_memory_mb() // (2 * cores)
    set_resources = {}
    for rule, resources in profile["set-resources"].items():
        resources = dict(resources)
        if "gpu" in resources:
            resources["gpu"] = 0
        resources["mem_mb"] = min(resources.get("mem_mb", mem_cap), mem_cap)
        set_resources[rule] = resources
    default_resources = dict(profile["default-resources"])
    default_resources["mem_mb"] = min(default_resources["mem_mb"], mem_cap)
    return {
        "set-resources": set_resources,
        "default-resources": default_resources,
        "cores": cores,
        "retries": 0,
        "slurm-logdir": str(logdir),
        # Polls come at init, then 10 s later each time, until a job finishes: 2 s wastes least on
        # this DAG of short jobs (MinJobAge = 300 s >= 3 x 2 s keeps the squeue route).
        "slurm-init-seconds-before-status-checks": 2,
    }


@pytest.mark.slow
def test_profile_runs_the_tiny_dag_through_slurm(slurm_cluster: float, tmp_path: Path) -> None:
    profile_path = REPO / "profiles" / "slurm" / "config.yaml"
    profile = yaml.safe_load(profile_path.read_text())
    # The properties the test relies on are the profile's own, not the overlay's.
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert {profile["groups"][rule] for rule in SCENE_RULES} == {"scenes"}

    workdir = make_workdir(tmp_path / "work")
    # One training epoch instead of the .test config's two: the four training jobs dominate the run
    # time, and what is under test here is the SLURM path, not the models (test_workflow.py runs
    # the unchanged config).
    config_path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["train"]["epochs"] = 1
    config_path.write_text(yaml.safe_dump(config))
    logdir = tmp_path / "slurm_logs"
    overlay = tmp_path / "ci_profile"
    overlay.mkdir()
    (overlay / "config.yaml").write_text(yaml.safe_dump(ci_overlay(profile, logdir)))

    command = [
        "timeout", "-k", "10", str(RUN_TIMEOUT_S),  # Snakemake outlives SIGTERM while jobs run
        sys.executable, "-m", "snakemake",
        "--profile", "profiles/slurm", "--profile", str(overlay),
        # The Snakefile's `configfile: config/config.yaml` is read from the workdir: the .test config.
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "all",
    ]  # fmt: skip
    start = time.monotonic()
    with open(tmp_path / "snakemake.log", "w") as log:
        run = subprocess.run(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    seconds = time.monotonic() - start
    output = (tmp_path / "snakemake.log").read_text()
    print(f"\nslurm-up.sh: {slurm_cluster:.1f} s; tiny DAG through SLURM: {seconds:.1f} s")
    assert run.returncode == 0, f"snakemake exit {run.returncode} after {seconds:.0f} s:\n{output[-6000:]}"

    for run_name in RUNS:
        result = json.loads((workdir / "results" / "nusc" / f"{run_name}.miou").read_text())
        assert 0.0 <= result["miou"] <= 100.0 and result["n_points"] > 0

    # Every job went through sbatch: the plugin writes one log per submission, under
    # rule_<rule>/<wildcards>/ or group_<group>_<rules>/.
    submitted: dict[str, list[Path]] = {}
    for log_file in logdir.rglob("*.log"):
        submitted.setdefault(log_file.relative_to(logdir).parts[0], []).append(log_file)
    for rule in (*GPU_RULES, "raw_dataset", "scenes", "label_stats", "summary"):
        assert f"rule_{rule}" in submitted, f"no sbatch log of rule {rule}: {sorted(submitted)}"
    assert len(submitted["rule_evaluate"]) == len(RUNS) and len(submitted["rule_estep"]) == 2
    # The per-scene stages never ran as single jobs: they went into group jobs, one per scene
    # (group-components scenes: 1), the training scenes' with all four stages.
    assert not any(f"rule_{rule}" in submitted for rule in SCENE_RULES), sorted(submitted)
    # The log folder names the group's rules: a validation scene only needs preprocessing.
    split = json.loads((workdir / "results" / "nusc" / "scenes.json").read_text())
    groups = {name: len(logs) for name, logs in submitted.items() if name.startswith("group_")}
    assert groups == {
        "group_scenes_" + "_".join(sorted(SCENE_RULES)): len(split["train"]),
        "group_scenes_preprocess": len(split["val"]),
    }, sorted(submitted)
    # SLURM's own records of the last jobs (it forgets a job MinJobAge = 300 s after its end): all
    # completed, and the GPU rules' jobs among them asked for no GPU (the overlay's gpu=0 reached
    # sbatch, which got no --gpus).
    records = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True).stdout
    ours = [line for line in records.splitlines() if f"WorkDir={workdir} " in line]
    gpu_rule_jobs = [line for line in ours if re.search(rf"Comment=rule_({'|'.join(GPU_RULES)})_", line)]
    assert gpu_rule_jobs, records
    for line in ours:
        assert "JobState=COMPLETED" in line and not re.search(r"\bTres\w*=\S*gpu", line, re.I), line
