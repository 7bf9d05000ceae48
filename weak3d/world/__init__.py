"""Procedural street world in the nuScenes v1.0 + lidarseg format (the DAG's embedded dataset).

    from weak3d.world import WorldConfig, generate_world
    generate_world("resources/nusc/raw", WorldConfig(seed=7))

or `python -m weak3d.world --out ROOT [--seed N] [--set key=value ...]`.
"""

from weak3d.world.config import WorldConfig
from weak3d.world.generate import CLASSMAP_DIR, SPLIT_FILE, generate_scene, generate_world

__all__ = ["CLASSMAP_DIR", "SPLIT_FILE", "WorldConfig", "generate_scene", "generate_world"]
