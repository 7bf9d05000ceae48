"""Draw projected LiDAR points on camera images, to check calibration and labels by eye.

    python -m weak3d.overlay --out DIR [--world ROOT --version V] [--realdata DIR]

writes DIR/real_CAM_FRONT.png (the real nuScenes sample of ../shared/realdata, coloured by depth)
and, with --world, DIR/synthetic_CAM_FRONT.png (first sample of that world, coloured by class).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from weak3d.classes import CLASS_COLORS
from weak3d.datasets.nuscenes import (
    NuScenes,
    cameras_from_calibration_json,
    project_points,
    read_image,
    read_points,
)
from weak3d.io import atomic_path, read_json

DEFAULT_REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"
REAL_CALIBRATION = "nuscenes/calibration_scene-0061_sample0.json"


def overlay_points(
    image: np.ndarray,
    uv: np.ndarray,
    visible: np.ndarray,
    colors: np.ndarray,
    radius: int = 2,
    depth: np.ndarray | None = None,
) -> np.ndarray:
    """Return a copy of `image` (H, W, 3 uint8) with the visible points drawn as small discs.

    With `depth`, far points are drawn first so that near points stay on top, as in the scene.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    H, W = out.shape[:2]
    idx = np.flatnonzero(visible)
    if depth is not None:
        idx = idx[np.argsort(-np.asarray(depth)[idx], kind="stable")]
    px = np.floor(uv[idx]).astype(np.int64)
    cols = np.asarray(colors, dtype=np.uint8)[idx]
    # Later writes win in numpy fancy assignment, which gives the far-to-near painter's order.
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            x, y = px[:, 0] + dx, px[:, 1] + dy
            ok = (x >= 0) & (x < W) & (y >= 0) & (y < H)
            out[y[ok], x[ok]] = cols[ok]
    return out


def depth_colors(depth: np.ndarray, near: float = 1.0, far: float = 50.0) -> np.ndarray:
    """Colour per point from near (red/yellow) to far (blue), as (N, 3) uint8."""
    t = np.clip((np.log(np.maximum(depth, near)) - np.log(near)) / (np.log(far) - np.log(near)), 0, 1)
    # Piecewise-linear ramp red -> yellow -> green -> cyan -> blue.
    stops = np.array([[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255], [0, 0, 255]], dtype=np.float64)
    pos = t * (len(stops) - 1)
    lo = np.minimum(pos.astype(np.int64), len(stops) - 2)
    frac = (pos - lo)[:, None]
    return (stops[lo] * (1 - frac) + stops[lo + 1] * frac).round().astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def real_overlay(realdata: Path, camera: str = "CAM_FRONT") -> np.ndarray:
    """The real nuScenes sweep drawn on one real camera image, coloured by depth."""
    calib_path = realdata / REAL_CALIBRATION
    cameras = {c.name: c for c in cameras_from_calibration_json(calib_path, calib_path.parent)}
    points = read_points(calib_path.parent / read_json(calib_path)["lidar"]["file"])
    cam = cameras[camera]
    uv, depth, visible = project_points(points[:, :3], cam)
    return overlay_points(read_image(cam), uv, visible, depth_colors(depth), depth=depth)


def world_overlay(root: Path, version: str, camera: str = "CAM_FRONT") -> np.ndarray:
    """First sample of a nuScenes-format world on one camera, coloured by class (depth if unlabelled)."""
    nusc = NuScenes(root, version)
    scene = nusc.scenes()[0]
    sample = nusc.load_sample(nusc.sample_tokens(scene["token"])[0])
    cam = next(c for c in sample.cameras if c.name == camera)
    uv, depth, visible = project_points(sample.points[:, :3], cam)
    colors = depth_colors(depth) if sample.labels is None else CLASS_COLORS[sample.labels]
    return overlay_points(read_image(cam), uv, visible, colors, depth=depth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the PNGs")
    parser.add_argument(
        "--world", type=Path, help="root of a nuScenes-format dataset (e.g. the synthetic world)"
    )
    parser.add_argument("--version", default="v1.0-mini", help="table version folder under --world")
    parser.add_argument("--realdata", type=Path, default=DEFAULT_REALDATA, help="the shared realdata folder")
    args = parser.parse_args(argv)

    written = []
    if (args.realdata / REAL_CALIBRATION).is_file():
        path = args.out / "real_CAM_FRONT.png"
        write_png(path, real_overlay(args.realdata))
        written.append(path)
    else:
        print(f"skipping the real overlay: {args.realdata / REAL_CALIBRATION} not found", file=sys.stderr)
    if args.world is not None:
        path = args.out / "synthetic_CAM_FRONT.png"
        write_png(path, world_overlay(args.world, args.version))
        written.append(path)
    for path in written:
        print(path)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
