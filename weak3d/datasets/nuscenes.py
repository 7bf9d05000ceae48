"""Reader for nuScenes v1.0 + nuScenes-lidarseg, and for the synthetic world in the same layout.

Layout under `root`:
    <version>/*.json              tables (scene, sample, sample_data, ego_pose, ...)
    samples/<CHANNEL>/...         key-frame files, sweeps/<CHANNEL>/... the others
    lidarseg/<version>/*.bin      uint8 raw category index per LiDAR point (optional)
    weak3d_splits.json            {"train": [scene names], "val": [...]} (optional; written by
                                  the synthetic world, nuScenes itself keeps splits in the devkit)

Every reference between records is checked when the tables are loaded, so a broken table fails
early with the table, token and field named; data files are checked when they are read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from weak3d.classes import RAW_INDEX, map_raw_labels
from weak3d.datasets.camera import (
    CAMERAS,
    Camera,
    cameras_from_calibration_json,
    make_camera,
    normalize_uv,
    project_all,
    project_points,
    read_image,
)
from weak3d.datasets.geometry import pose_matrix, sensor_to_sensor, transform_points
from weak3d.datasets.nuscenes_io import NuScenesFormatError, read_lidarseg, read_points

__all__ = [
    "CAMERAS",
    "LIDAR",
    "Camera",
    "LidarSample",
    "NuScenes",
    "NuScenesFormatError",
    "SPLIT_FILE",
    "cameras_from_calibration_json",
    "load_split",
    "normalize_uv",
    "project_all",
    "project_points",
    "read_image",
    "read_lidarseg",
    "read_points",
]

LIDAR = "LIDAR_TOP"
SPLIT_FILE = "weak3d_splits.json"

REQUIRED_TABLES = (
    "scene",
    "sample",
    "sample_data",
    "ego_pose",
    "calibrated_sensor",
    "sensor",
    "log",
    "category",
)
OPTIONAL_TABLES = ("lidarseg",)

# Foreign keys checked at load time: table -> [(field, referenced table, may be empty)].
# An empty string is nuScenes' "no record" (the ends of prev/next chains).
_REFERENCES: dict[str, list[tuple[str, str, bool]]] = {
    "scene": [
        ("log_token", "log", False),
        ("first_sample_token", "sample", False),
        ("last_sample_token", "sample", False),
    ],
    "sample": [("scene_token", "scene", False), ("prev", "sample", True), ("next", "sample", True)],
    "sample_data": [
        ("sample_token", "sample", False),
        ("ego_pose_token", "ego_pose", False),
        ("calibrated_sensor_token", "calibrated_sensor", False),
        ("prev", "sample_data", True),
        ("next", "sample_data", True),
    ],
    "calibrated_sensor": [("sensor_token", "sensor", False)],
    "lidarseg": [("sample_data_token", "sample_data", False)],
}

# Plain fields the reader uses, checked at load time so a missing one is reported with its record.
_FIELDS: dict[str, tuple[str, ...]] = {
    "scene": ("name",),
    "sample_data": ("filename", "timestamp", "is_key_frame"),
    "ego_pose": ("translation", "rotation"),
    "calibrated_sensor": ("translation", "rotation"),
    "sensor": ("channel",),
    "category": ("name",),
    "lidarseg": ("filename",),
}

# The devkit's v1.0-mini split (nuscenes.utils.splits mini_train / mini_val).
MINI_SPLITS: dict[str, list[str]] = {
    "train": [
        "scene-0061",
        "scene-0553",
        "scene-0655",
        "scene-0757",
        "scene-0796",
        "scene-1077",
        "scene-1094",
        "scene-1100",
    ],
    "val": ["scene-0103", "scene-0916"],
}


@dataclass
class LidarSample:
    """One key frame: the LIDAR_TOP sweep, its labels and the six camera images."""

    token: str  # sample token
    scene_name: str
    lidar_token: str  # sample_data token of the LIDAR_TOP key frame
    lidar_path: Path
    timestamp: int  # microseconds, of the LiDAR sweep
    points: np.ndarray  # (N, 5) float32 x, y, z, intensity, ring in the LiDAR frame
    labels_raw: np.ndarray | None  # (N,) uint8 index into weak3d.classes.RAW_CLASSES
    labels: np.ndarray | None  # (N,) uint8 evaluation class, 0 = ignore
    cameras: list[Camera]  # in CAMERAS order


def load_split(
    root: str | os.PathLike, version: str, split_file: str | os.PathLike | None = None
) -> dict[str, list[str]]:
    """Scene names per split: {"train": [...], "val": [...]} (other keys in a split file are kept).

    Order of precedence: an explicit `split_file`; `root/weak3d_splits.json`; the devkit's split for
    v1.0-mini. Full nuScenes splits live in the devkit, not the data, so other versions need a file.
    """
    root = Path(root)
    if split_file is None and (root / SPLIT_FILE).is_file():
        split_file = root / SPLIT_FILE
    if split_file is None:
        if version == "v1.0-mini":
            return {k: list(v) for k, v in MINI_SPLITS.items()}
        raise NuScenesFormatError(
            f"no split for {version} in {root}: write {root / SPLIT_FILE} as "
            '{"train": [scene names], "val": [scene names]} or pass a split file in the config'
        )
    path = Path(split_file)
    if not path.is_file():
        raise NuScenesFormatError(f"{path}: split file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise NuScenesFormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise NuScenesFormatError(f"{path}: expected an object {{split: [scene names]}}")
    for key in ("train", "val"):
        if key not in data:
            raise NuScenesFormatError(f"{path}: split {key!r} missing (expected keys 'train' and 'val')")
    for key, names in data.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise NuScenesFormatError(f"{path}: split {key!r} must be a list of scene names")
    return {k: list(v) for k, v in data.items()}


class NuScenes:
    """Token-indexed nuScenes tables of one version, with sample, sweep and camera access."""

    def __init__(
        self, root: str | os.PathLike, version: str, table_dir: str | os.PathLike | None = None
    ) -> None:
        """Tables from `table_dir` (default root/version), data files from `root`.

        `table_dir` may hold a one-scene slice written by `write_scene_tables`: real trainval tables
        take ~30-60 s and several GB to load, too much for every per-scene job.
        """
        self.root = Path(root).resolve()
        self.version = version
        self.table_dir = Path(table_dir) if table_dir is not None else self.root / version
        if not self.table_dir.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
            raise NuScenesFormatError(
                f"{self.table_dir}: table folder of version {version!r} not found (folders in "
                f"{self.root}: {found or 'none'})"
            )
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        for name in REQUIRED_TABLES:
            self.tables[name] = self._load_table(name)
        self.has_lidarseg = (self.table_dir / "lidarseg.json").is_file()
        self.tables["lidarseg"] = self._load_table("lidarseg") if self.has_lidarseg else {}
        self._check_references()

        # Derived indexes: channel of each sensor, key frames per sample, labels per sweep.
        self._channel_of_cs = {
            token: self.tables["sensor"][cs["sensor_token"]]["channel"]
            for token, cs in self.tables["calibrated_sensor"].items()
        }
        self._keyframes: dict[str, dict[str, str]] = {}
        for token, sd in self.tables["sample_data"].items():
            if sd["is_key_frame"]:
                channel = self._channel_of_cs[sd["calibrated_sensor_token"]]
                self._keyframes.setdefault(sd["sample_token"], {})[channel] = token
        self._lidarseg_of_sd = {rec["sample_data_token"]: rec for rec in self.tables["lidarseg"].values()}
        self._scene_by_name = {rec["name"]: rec for rec in self.tables["scene"].values()}
        self._raw_remap = self._category_remap()
        self._sd_of_sample: dict[str, list[dict[str, Any]]] | None = None

    # ---- tables -------------------------------------------------------------------------------

    def _load_table(self, name: str) -> dict[str, dict[str, Any]]:
        path = self.table_dir / f"{name}.json"
        if not path.is_file():
            raise NuScenesFormatError(f"{path}: table file {name!r} of {self.version} not found")
        try:
            # orjson: ~2x faster than json on the tables (the scenes checkpoint loads ~5M records of
            # real trainval); its JSONDecodeError subclasses json's.
            records = orjson.loads(path.read_bytes())
        except json.JSONDecodeError as err:
            raise NuScenesFormatError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(records, list):
            raise NuScenesFormatError(f"{path}: expected a list of records")
        table: dict[str, dict[str, Any]] = {}
        for i, rec in enumerate(records):
            if not isinstance(rec, dict) or "token" not in rec:
                raise NuScenesFormatError(f"{path}: record {i} has no 'token'")
            if rec["token"] in table:
                raise NuScenesFormatError(f"{path}: token {rec['token']!r} appears twice")
            table[rec["token"]] = rec
        return table

    def _check_references(self) -> None:
        for table, fields in _FIELDS.items():
            for token, rec in self.tables[table].items():
                missing = [f for f in fields if f not in rec]
                if missing:
                    raise NuScenesFormatError(
                        f"{self._table_path(table)}: {table} {token!r} has no field {missing[0]!r}"
                    )
        for table, refs in _REFERENCES.items():
            for token, rec in self.tables[table].items():
                for field, target, may_be_empty in refs:
                    if field not in rec:
                        raise NuScenesFormatError(
                            f"{self._table_path(table)}: {table} {token!r} has no field {field!r}"
                        )
                    ref = rec[field]
                    if ref == "" and may_be_empty:
                        continue
                    if ref not in self.tables[target]:
                        raise NuScenesFormatError(
                            f"{self._table_path(target)}: no {target} record {ref!r}, "
                            f"referenced by {table} {token!r} field {field!r}"
                        )

    def _category_remap(self) -> np.ndarray:
        """Lookup from a label value in the files to weak3d's raw index (by category name).

        Category indices are defined by category.json; mapping by name keeps labels right even if a
        dataset orders its categories differently. Values with no category map to 255 (invalid).
        """
        remap = np.full(256, 255, dtype=np.uint8)
        path = self.table_dir / "category.json"
        for token, cat in self.tables["category"].items():
            if "index" not in cat:
                if self.has_lidarseg:
                    raise NuScenesFormatError(
                        f"{path}: category {token!r} has no 'index' (lidarseg labels need it)"
                    )
                continue
            if cat["name"] not in RAW_INDEX:
                raise NuScenesFormatError(
                    f"{path}: category {cat['name']!r} is not a nuScenes-lidarseg category "
                    "(see weak3d.classes.RAW_CLASSES)"
                )
            remap[int(cat["index"])] = RAW_INDEX[cat["name"]]
        return remap

    def _table_path(self, table: str) -> Path:
        return self.table_dir / f"{table}.json"

    def get(self, table: str, token: str) -> dict[str, Any]:
        """The record of `token` in `table`."""
        if table not in self.tables:
            raise KeyError(f"unknown table {table!r} (loaded: {sorted(self.tables)})")
        try:
            return self.tables[table][token]
        except KeyError:
            raise NuScenesFormatError(f"{self._table_path(table)}: no {table} record {token!r}") from None

    def channel(self, sample_data_token: str) -> str:
        """Sensor channel (e.g. LIDAR_TOP, CAM_FRONT) of a sample_data record."""
        return self._channel_of_cs[self.get("sample_data", sample_data_token)["calibrated_sensor_token"]]

    def path(self, sample_data_token: str) -> Path:
        """Absolute path of a sample_data file (not checked for existence)."""
        return self.root / self.get("sample_data", sample_data_token)["filename"]

    # ---- scenes and samples -----------------------------------------------------------------

    def scenes(self) -> list[dict[str, Any]]:
        """Scene records in table order."""
        return list(self.tables["scene"].values())

    def scene_names(self) -> list[str]:
        return [rec["name"] for rec in self.tables["scene"].values()]

    def scene_by_name(self, name: str) -> dict[str, Any]:
        try:
            return self._scene_by_name[name]
        except KeyError:
            raise NuScenesFormatError(f"{self.table_dir / 'scene.json'}: no scene named {name!r}") from None

    def sample_tokens(self, scene_token: str) -> list[str]:
        """Sample tokens of a scene in time order (first_sample_token, then `next`)."""
        scene = self.get("scene", scene_token)
        tokens: list[str] = []
        token = scene["first_sample_token"]
        while token:
            sample = self.get("sample", token)
            if sample["scene_token"] != scene_token:
                raise NuScenesFormatError(
                    f"{self.table_dir / 'sample.json'}: sample {token!r} in the chain of scene "
                    f"{scene['name']!r} belongs to scene {sample['scene_token']!r}"
                )
            tokens.append(token)
            if len(tokens) > len(self.tables["sample"]):
                raise NuScenesFormatError(
                    f"{self.table_dir / 'sample.json'}: cycle in the next chain of scene {scene['name']!r}"
                )
            token = sample["next"]
        return tokens

    def keyframe(self, sample_token: str, channel: str) -> str:
        """sample_data token of the key frame of `channel` in a sample."""
        self.get("sample", sample_token)
        try:
            return self._keyframes[sample_token][channel]
        except KeyError:
            raise NuScenesFormatError(
                f"{self.table_dir / 'sample_data.json'}: sample {sample_token!r} has no key-frame "
                f"sample_data for channel {channel!r}"
            ) from None

    def _pose(self, table: str, token: str) -> np.ndarray:
        rec = self.get(table, token)
        return pose_matrix(rec["translation"], rec["rotation"])

    def cameras(self, sample_token: str) -> list[Camera]:
        """The six key-frame cameras of a sample, in CAMERAS order, relative to its LIDAR_TOP frame."""
        lidar = self.get("sample_data", self.keyframe(sample_token, LIDAR))
        lidar_cs = self.get("calibrated_sensor", lidar["calibrated_sensor_token"])
        lidar_ego = self.get("ego_pose", lidar["ego_pose_token"])
        cameras = []
        for name in CAMERAS:
            token = self.keyframe(sample_token, name)
            sd = self.get("sample_data", token)
            cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
            cameras.append(
                make_camera(
                    name=name,
                    token=token,
                    image_path=self.root / sd["filename"],
                    width=sd["width"],
                    height=sd["height"],
                    intrinsic=cs["camera_intrinsic"],
                    lidar_calibration=lidar_cs,
                    lidar_ego_pose=lidar_ego,
                    camera_ego_pose=self.get("ego_pose", sd["ego_pose_token"]),
                    camera_calibration=cs,
                )
            )
        return cameras

    def labels_raw(self, lidar_token: str, n_points: int) -> np.ndarray | None:
        """Raw lidarseg labels (index into RAW_CLASSES) of a LiDAR key frame, None if it has none."""
        rec = self._lidarseg_of_sd.get(lidar_token)
        if rec is None:
            return None
        path = self.root / rec["filename"]
        values = read_lidarseg(path, n_points)
        raw = self._raw_remap[values]
        if (raw == 255).any():
            bad = sorted(set(values[raw == 255].tolist()))[:5]
            raise NuScenesFormatError(
                f"{path}: label values {bad} are not category indices of {self.table_dir / 'category.json'}"
            )
        return raw

    def load_sample(self, sample_token: str) -> LidarSample:
        """Points, labels and cameras of one key frame."""
        sample = self.get("sample", sample_token)
        scene = self.get("scene", sample["scene_token"])
        lidar_token = self.keyframe(sample_token, LIDAR)
        lidar = self.get("sample_data", lidar_token)
        lidar_path = self.root / lidar["filename"]
        points = read_points(lidar_path)
        labels_raw = self.labels_raw(lidar_token, len(points))
        return LidarSample(
            token=sample_token,
            scene_name=scene["name"],
            lidar_token=lidar_token,
            lidar_path=lidar_path,
            timestamp=int(lidar["timestamp"]),
            points=points,
            labels_raw=labels_raw,
            labels=None if labels_raw is None else map_raw_labels(labels_raw),
            cameras=self.cameras(sample_token),
        )

    def scene_tables(self, scene_name: str) -> dict[str, list[dict[str, Any]]]:
        """The records one scene's keyframes, sweeps, cameras and labels need, table by table.

        sample_data is every record of the scene's samples (key frames and sweeps of all sensors),
        with the ego poses, calibrations and lidarseg records they use; sensor and category are
        whole. A prev/next link to a record outside the slice (another scene's) is emptied, so the
        slice passes the reference checks; nuScenes' chains start and end with their scene.
        """
        scene = self.scene_by_name(scene_name)
        samples = [self.get("sample", t) for t in self.sample_tokens(scene["token"])]
        sample_tokens = {rec["token"] for rec in samples}
        if self._sd_of_sample is None:  # built once: slicing every scene must stay linear
            self._sd_of_sample = {}
            for sd in self.tables["sample_data"].values():
                self._sd_of_sample.setdefault(sd["sample_token"], []).append(sd)
        sample_data = [sd for rec in samples for sd in self._sd_of_sample.get(rec["token"], [])]
        sd_tokens = {sd["token"] for sd in sample_data}

        def cut(rec: dict[str, Any], keep: set[str]) -> dict[str, Any]:
            return {**rec, **{k: rec[k] if rec[k] in keep else "" for k in ("prev", "next")}}

        def pick(table: str, tokens: set[str] | list[str]) -> list[dict[str, Any]]:
            return [self.tables[table][t] for t in sorted(set(tokens))]

        tables = {
            "scene": [scene],
            "log": pick("log", [scene["log_token"]]),
            "sample": [cut(rec, sample_tokens) for rec in samples],
            "sample_data": [cut(sd, sd_tokens) for sd in sample_data],
            "ego_pose": pick("ego_pose", [sd["ego_pose_token"] for sd in sample_data]),
            "calibrated_sensor": pick(
                "calibrated_sensor", [sd["calibrated_sensor_token"] for sd in sample_data]
            ),
            "sensor": list(self.tables["sensor"].values()),
            "category": list(self.tables["category"].values()),
        }
        if self.has_lidarseg:  # no lidarseg.json in the slice either, if the dataset has none
            tables["lidarseg"] = [
                self._lidarseg_of_sd[t] for t in sorted(sd_tokens) if t in self._lidarseg_of_sd
            ]
        return tables

    def previous_sweeps(self, sample_token: str, n: int = 5, min_ego_distance: float = 1.0) -> np.ndarray:
        """Up to n earlier LIDAR_TOP sweeps, in the key frame's LiDAR frame, as float32 (M, 5).

        Follows sample_data.prev from the key frame (through sweeps and key frames alike) and stops at
        the start of the chain. Points with |x| < 1 and |y| < 1 in the sweep's own frame hit the ego
        vehicle and are dropped before the sweep is moved through the ego poses.
        """
        key = self.get("sample_data", self.keyframe(sample_token, LIDAR))
        key_cs = self._pose("calibrated_sensor", key["calibrated_sensor_token"])
        key_ego = self._pose("ego_pose", key["ego_pose_token"])
        chunks = [np.zeros((0, 5), dtype=np.float32)]
        token = key["prev"]
        for _ in range(n):
            if not token:
                break
            sd = self.get("sample_data", token)
            points = read_points(self.root / sd["filename"])
            near_ego = (np.abs(points[:, 0]) < min_ego_distance) & (np.abs(points[:, 1]) < min_ego_distance)
            points = points[~near_ego]
            T = sensor_to_sensor(
                self._pose("calibrated_sensor", sd["calibrated_sensor_token"]),
                self._pose("ego_pose", sd["ego_pose_token"]),
                key_ego,
                key_cs,
            )
            moved = points.copy()
            moved[:, :3] = transform_points(T, points[:, :3])
            chunks.append(moved)
            token = sd["prev"]
        return np.concatenate(chunks, axis=0)
