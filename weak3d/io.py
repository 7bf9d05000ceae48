"""Atomic file output and small HDF5/JSON helpers shared by every stage.

Every output is written to a temporary name in its own folder and renamed when complete, so a
failed or killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; move it onto `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if is_dir and final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically, keys sorted so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def write_h5_groups(path: str | os.PathLike, groups: dict[str, dict[str, Any]]) -> None:
    """Write {group: {name: array | scalar | str}} to one HDF5 file atomically.

    Arrays become datasets (gzip-free, so reruns are byte-identical and reads are fast); scalars
    and strings become attributes of the group.
    """
    with atomic_path(path) as tmp:
        # track_order and a fixed libver keep the file layout deterministic.
        with h5py.File(tmp, "w", track_order=True, libver="latest") as f:
            for gname in sorted(groups):
                g = f.create_group(gname, track_order=True)
                for key, value in groups[gname].items():
                    if isinstance(value, np.ndarray):
                        g.create_dataset(key, data=value)
                    else:
                        g.attrs[key] = value


def read_h5_groups(path: str | os.PathLike, keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Read every group of a per-scene HDF5 file into {group: {name: array or attribute}}."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    out: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        for gname, g in f.items():
            item: dict[str, Any] = dict(g.attrs)
            for key, ds in g.items():
                if keys is None or key in keys:
                    item[key] = ds[()]
            out[gname] = item
    return out
