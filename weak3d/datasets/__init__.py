"""Dataset readers. nuScenes (and the synthetic world in its layout): weak3d.datasets.nuscenes."""
