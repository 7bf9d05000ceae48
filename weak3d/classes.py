"""The nuScenes-lidarseg classes: the 32 raw categories and the 16 evaluation classes.

Single source of truth for class names, raw indices and the raw-to-evaluation mapping used by the
reader, the world generator, the weak-label stage and the evaluation.
"""

from __future__ import annotations

import numpy as np

# Raw nuScenes-lidarseg categories, in the order of their `index` in category.json.
RAW_CLASSES: tuple[str, ...] = (
    "noise",
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
    "flat.driveable_surface",
    "flat.other",
    "flat.sidewalk",
    "flat.terrain",
    "static.manmade",
    "static.other",
    "static.vegetation",
    "vehicle.ego",
)
RAW_INDEX: dict[str, int] = {name: i for i, name in enumerate(RAW_CLASSES)}

# The 16 evaluation classes; index 0 is "ignore" (noise and unmapped categories).
CLASSES: tuple[str, ...] = (
    "ignore",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
)
NUM_CLASSES = len(CLASSES)  # 17 outputs: ignore + 16 evaluated classes
IGNORE = 0
EVAL_CLASSES = tuple(range(1, NUM_CLASSES))
THING_CLASSES = tuple(range(1, 11))  # barrier .. truck
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# Standard nuScenes-lidarseg raw -> 16-class mapping; raw categories not listed map to 0.
_RAW_TO_EVAL_NAMES: dict[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
    "flat.driveable_surface": "driveable_surface",
    "flat.other": "other_flat",
    "flat.sidewalk": "sidewalk",
    "flat.terrain": "terrain",
    "static.manmade": "manmade",
    "static.vegetation": "vegetation",
}

RAW_TO_EVAL = np.zeros(256, dtype=np.uint8)
for _raw, _eval in _RAW_TO_EVAL_NAMES.items():
    RAW_TO_EVAL[RAW_INDEX[_raw]] = CLASS_INDEX[_eval]


def map_raw_labels(raw: np.ndarray) -> np.ndarray:
    """Map raw lidarseg indices (uint8) to the 16 evaluation classes (0 = ignore)."""
    return RAW_TO_EVAL[np.asarray(raw, dtype=np.uint8)]


# One display colour per evaluation class (RGB), for overlays and reports.
CLASS_COLORS = np.array(
    [
        (0, 0, 0),
        (255, 120, 50),
        (255, 192, 203),
        (255, 255, 0),
        (0, 150, 245),
        (0, 255, 255),
        (200, 180, 0),
        (255, 0, 0),
        (255, 240, 150),
        (135, 60, 0),
        (160, 32, 240),
        (255, 0, 255),
        (139, 137, 137),
        (75, 0, 75),
        (150, 240, 80),
        (230, 230, 250),
        (0, 175, 0),
    ],
    dtype=np.uint8,
)
