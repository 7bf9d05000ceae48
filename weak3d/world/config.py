"""WorldConfig: every setting that changes the generated world's files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from weak3d.config import config_from_dict


@dataclass(frozen=True)
class WorldConfig:
    """Size and sensor settings of the synthetic nuScenes-format world.

    Defaults give the DAG's embedded world: 8 street scenes (2 of them val) with 6 key frames each,
    full-resolution LiDAR (32 x 1085 rays, ~34.7k points per sweep) and six 1600x900 cameras.
    """

    seed: int = 7
    version: str = "v1.0-weak3d"
    n_scenes: int = 8
    n_val_scenes: int = 2
    samples_per_scene: int = 6
    sweeps_per_interval: int = 9  # non-key LiDAR sweeps between key frames (9 -> 20 Hz at 2 Hz keys)
    lidar_beams: int = 32
    azimuth_steps: int = 1085
    lidar_range: float = 100.0
    range_noise: float = 0.02  # metres, 1 sigma
    image_width: int = 1600
    image_height: int = 900
    jpeg_quality: int = 90
    ego_speed_min: float = 4.0  # m/s
    ego_speed_max: float = 12.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldConfig:
        """Build from a mapping (e.g. config.yaml keys); unknown keys are an error naming them."""
        cfg = config_from_dict(cls, d, "datasets.<ds>.world")
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot give a valid world."""
        checks = [
            ("n_scenes", self.n_scenes >= 1, "at least 1"),
            ("n_val_scenes", 0 <= self.n_val_scenes <= self.n_scenes, "between 0 and n_scenes"),
            ("samples_per_scene", self.samples_per_scene >= 1, "at least 1"),
            ("sweeps_per_interval", self.sweeps_per_interval >= 0, "0 or more"),
            ("lidar_beams", 1 <= self.lidar_beams <= 128, "between 1 and 128"),
            ("azimuth_steps", self.azimuth_steps >= 8, "at least 8"),
            ("lidar_range", self.lidar_range > 1.0, "more than 1 m"),
            ("range_noise", self.range_noise >= 0.0, "0 or more"),
            ("image_width", self.image_width >= 16, "at least 16"),
            ("image_height", self.image_height >= 16, "at least 16"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "between 1 and 100"),
            ("ego_speed_min", 0.0 <= self.ego_speed_min <= self.ego_speed_max, "0 <= min <= max"),
            ("ego_speed_max", self.ego_speed_max <= 20.0, "at most 20 m/s"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ValueError(f"WorldConfig.{key} = {getattr(self, key)!r}: expected {expected}")
        if not self.version or "/" in self.version:
            raise ValueError(f"WorldConfig.version = {self.version!r}: expected a folder name")

    @property
    def lidar_period_us(self) -> int:
        """Time between LiDAR sweeps: key frames are 0.5 s apart."""
        return 500_000 // (self.sweeps_per_interval + 1)

    @property
    def lead_sweeps(self) -> int:
        """Sweeps before the first key frame, so every key frame has at least 5 earlier sweeps."""
        return max(5, self.sweeps_per_interval)
