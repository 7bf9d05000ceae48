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


def make_workdir(tmp: Path, config_source: Path = REPO / ".test" / "config" / "config.yaml") -> Path:
    """A working directory holding a copy of a config, as `--directory .test` would use."""
    (tmp / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(config_source, tmp / "config" / "config.yaml")
    return tmp


def snakemake(
    workdir: Path,
    targets: list[str],
    dryrun: bool = False,
    forcerun: set[str] | None = None,
    cores: int = 2,
) -> list[str]:
    """Run (or dry-run) the targets; return the output files that were (or would be) created."""
    updated: list[str] = []
    cwd = os.getcwd()  # api.workflow() changes into the workdir
    try:
        with SnakemakeApi(OutputSettings(quiet=None, show_failed_logs=True)) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=cores),
                config_settings=ConfigSettings(configfiles=[workdir / "config" / "config.yaml"]),
                snakefile=REPO / "Snakefile",
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
