"""nuScenes v1.0 (+ lidarseg) table records: tokens, the fixed tables, and record builders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from weak3d.classes import RAW_CLASSES
from weak3d.world.rig import CAMERAS, LIDAR, quaternion_wxyz

TABLES = (
    "attribute",
    "calibrated_sensor",
    "category",
    "ego_pose",
    "instance",
    "lidarseg",
    "log",
    "map",
    "sample",
    "sample_annotation",
    "sample_data",
    "scene",
    "sensor",
    "visibility",
)

ATTRIBUTES = (
    ("vehicle.moving", "Vehicle is moving."),
    (
        "vehicle.stopped",
        "Vehicle, with a driver/rider in/on it, is currently stationary but has an intent to move.",
    ),
    (
        "vehicle.parked",
        "Vehicle is stationary (usually for longer duration) with no immediate intent to move.",
    ),
    ("cycle.with_rider", "There is a rider on the bicycle or motorcycle."),
    ("cycle.without_rider", "There is NO rider on the bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The human is sitting or lying down."),
    ("pedestrian.standing", "The human is standing."),
    ("pedestrian.moving", "The human is moving."),
)
VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))


def token(*parts: object) -> str:
    """32-hex token, deterministic in its parts (seed, table, keys)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def fixed_tables(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Tables that do not depend on the scenes: category, attribute, visibility, sensor."""
    category = [
        {
            "token": token(seed, "category", name),
            "name": name,
            "description": f"nuScenes-lidarseg class {name}",
            "index": i,
        }
        for i, name in enumerate(RAW_CLASSES)
    ]
    attribute = [{"token": token(seed, "attribute", n), "name": n, "description": d} for n, d in ATTRIBUTES]
    visibility = [
        {"token": t, "level": lvl, "description": f"visibility of whole object is {lvl[1:]}%"}
        for t, lvl in VISIBILITY
    ]
    sensor = [
        {"token": sensor_token(seed, ch), "channel": ch, "modality": "lidar" if ch == LIDAR else "camera"}
        for ch in (LIDAR, *CAMERAS)
    ]
    return {"category": category, "attribute": attribute, "visibility": visibility, "sensor": sensor}


def sensor_token(seed: int, channel: str) -> str:
    return token(seed, "sensor", channel)


def category_token(seed: int, raw: int) -> str:
    return token(seed, "category", RAW_CLASSES[raw])


def attribute_token(seed: int, name: str) -> str:
    return token(seed, "attribute", name)


def pose_record(tok: str, T: np.ndarray, timestamp: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"token": tok}
    if timestamp is not None:
        rec["timestamp"] = int(timestamp)
    rec["rotation"] = quaternion_wxyz(T[:3, :3])
    rec["translation"] = [float(v) for v in T[:3, 3]]
    return rec


def link_chain(records: list[dict[str, Any]]) -> None:
    """Set prev/next along a time-ordered list of records."""
    for i, rec in enumerate(records):
        rec["prev"] = records[i - 1]["token"] if i > 0 else ""
        rec["next"] = records[i + 1]["token"] if i + 1 < len(records) else ""


def write_tables(table_dir: Path, tables: dict[str, list[dict[str, Any]]]) -> None:
    table_dir.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        text = json.dumps(tables.get(name, []), indent=1)
        (table_dir / f"{name}.json").write_text(text + "\n")
