"""Job start-up for the workflow scripts: log file, threads, and reading canonical params."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any


def start_job(snakemake: Any) -> logging.Logger:
    """Send this job's stderr, stdout and logging to its log file; cap threads at the job's share."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 (lives as long as the job)
        sys.stderr = log
        sys.stdout = log
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr, force=True
    )
    threads = str(max(1, int(getattr(snakemake, "threads", 1))))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, threads)
    return logging.getLogger(f"weak3d.{snakemake.rule}")


def settings(snakemake: Any, name: str = "settings") -> dict[str, Any]:
    """Decode a canonical-JSON params entry (see workflow/rules/common.smk: stage_params)."""
    return json.loads(getattr(snakemake.params, name))
