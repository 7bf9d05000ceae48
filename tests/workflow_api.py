"""Drive the workflow through Snakemake's Python API: real runs and dry-run plans."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    ExecutionSettings,
    OutputSettings,
    ResourceSettings,
)

REPO = Path(__file__).resolve().parents[1]
# What a run needs from the repository: the workflow, its config and schema, the library it imports.
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "envs", "weak3d", "kernels")


def make_workdir(tmp: Path, config_source: Path = REPO / ".test" / "config" / "config.yaml") -> Path:
    """A working directory holding a copy of a config, as `--directory .test` would use."""
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(config_source, tmp / "config" / "config.yaml")
    return tmp


def make_repo_copy(tmp: Path, config_source: Path = REPO / ".test" / "config" / "config.yaml") -> Path:
    """A copy of the workflow and the library that is also its own working directory.

    Rules list library modules as inputs by absolute path under the Snakefile's directory
    (code_files in workflow/rules/common.smk), so a test that edits library code edits the copy's
    and never the repository's. `snakemake()` runs the copy's Snakefile for such a directory.
    """
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, tmp / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tmp / part)
    return make_workdir(tmp, config_source)


def snakemake(
    workdir: Path,
    targets: list[str],
    dryrun: bool = False,
    forcerun: set[str] | None = None,
    cores: int = 2,
) -> list[str]:
    """Run (or dry-run) the targets; return the output files that were (or would be) created.

    The workflow is the workdir's own Snakefile if it has one (a make_repo_copy), else the repository's.
    """
    own = workdir / "Snakefile"
    snakefile = own if own.is_file() else REPO / "Snakefile"
    updated: list[str] = []
    cwd = os.getcwd()  # api.workflow() changes into the workdir
    try:
        with SnakemakeApi(OutputSettings(quiet=None, show_failed_logs=True)) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=cores),
                config_settings=ConfigSettings(configfiles=[workdir / "config" / "config.yaml"]),
                snakefile=snakefile,
                workdir=workdir,
            )
            dag = workflow.dag(DAGSettings(targets=set(targets), forcerun=frozenset(forcerun or ())))
            dag.execute_workflow(
                executor="local",
                pseudo_executor="dryrun" if dryrun else None,
                execution_settings=ExecutionSettings(latency_wait=1),
                updated_files=updated,
            )
    finally:
        os.chdir(cwd)
    return sorted(str(Path(f)) for f in updated)
