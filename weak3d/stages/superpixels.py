"""SEEDS superpixels of camera images, as IUPC computes them (opencv-contrib ximgproc).

SEEDS is a deterministic hill-climbing on a fixed initial grid (no random component); the tests
check that the same image gives the same labels twice. Two backends compute it: "numba"
(weak3d.stages.seeds_numba, the default: about 20x faster on one core) and "opencv"
(cv2.ximgproc); their label maps are identical (tests/stages/test_superpixels.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from weak3d.stages.seeds_numba import seeds_numba


@dataclass(frozen=True)
class SuperpixelConfig:
    """SEEDS settings; defaults are those of the IUPC release (prepare_nusc_superpixel.py)."""

    num_superpixels: int = 1024
    num_levels: int = 5
    prior: int = 5
    histogram_bins: int = 10
    double_step: bool = True
    iterations: int = 10
    # (height, width) the image is resized to first; None keeps the input size. 360x640 is the
    # 0.4 scale of nuScenes' 900x1600 images that the 2D branch sees.
    size: tuple[int, int] | None = (360, 640)
    # "numba": weak3d.stages.seeds_numba, same labels as "opencv" (cv2.ximgproc) at ~1/20 of the
    # time (0.017 vs 0.37 s per 360x640 image, one core): sparse block histograms instead of
    # OpenCV's dense 1000-bin ones, and branch-free pixel passes (see that module).
    backend: str = "numba"


def resize_like_pil(image_rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize to (height, width) with PIL, as torchvision's Resize does on PIL images.

    PIL's bilinear filter widens with the downscale factor (it antialiases); cv2.INTER_LINEAR does
    not, and would give different pixels and hence different superpixels.
    """
    h, w = size
    if image_rgb.shape[:2] == (h, w):
        return image_rgb
    return np.asarray(Image.fromarray(image_rgb).resize((w, h), Image.Resampling.BILINEAR))


def read_camera_image(path: str | Path, size: tuple[int, int] | None) -> np.ndarray:
    """RGB uint8 image file at `size` (height, width), pixel for pixel what
    `resize_like_pil(np.asarray(Image.open(path).convert("RGB")), size)` gives.

    The JPEG is decoded once and resized on PIL's own buffer: no RGB copy by `convert` (the
    nuScenes JPEGs are already RGB) and no round trip of the full-size image through numpy,
    which together cost about as much as the resize itself.
    """
    with Image.open(path) as img:
        if img.mode != "RGB":
            img = img.convert("RGB")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(img)


def seeds_input(image_rgb: np.ndarray) -> np.ndarray:
    """HSV image after equalising the luma: RGB -> YUV, equalizeHist(Y), -> RGB -> HSV."""
    yuv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2YUV)
    yuv[:, :, 0] = cv2.equalizeHist(yuv[:, :, 0])
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)


def seeds_superpixels(image_rgb: np.ndarray, cfg: SuperpixelConfig = SuperpixelConfig()) -> np.ndarray:
    """int32 superpixel label map (H', W') of an RGB uint8 image (H, W, 3), at `cfg.size`."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image_rgb.dtype} {image_rgb.shape}")
    if cfg.size is not None:
        image_rgb = resize_like_pil(image_rgb, cfg.size)
    return seeds_labels(seeds_input(np.ascontiguousarray(image_rgb)), cfg)


def seeds_superpixels_file(path: str | Path, cfg: SuperpixelConfig = SuperpixelConfig()) -> np.ndarray:
    """`seeds_superpixels` of an image file, decoded and resized by `read_camera_image`."""
    return seeds_labels(seeds_input(read_camera_image(path, cfg.size)), cfg)


def seeds_labels(hsv: np.ndarray, cfg: SuperpixelConfig) -> np.ndarray:
    """int32 SEEDS label map of a prepared HSV image (`seeds_input`), by `cfg.backend`."""
    if cfg.backend == "numba":
        return seeds_numba(
            hsv,
            cfg.num_superpixels,
            cfg.num_levels,
            cfg.prior,
            cfg.histogram_bins,
            cfg.double_step,
            cfg.iterations,
        )
    if cfg.backend != "opencv":
        raise ValueError(f"superpixels backend must be 'numba' or 'opencv', got {cfg.backend!r}")
    h, w = hsv.shape[:2]
    seeds = cv2.ximgproc.createSuperpixelSEEDS(
        w, h, 3, cfg.num_superpixels, cfg.num_levels, cfg.prior, cfg.histogram_bins, cfg.double_step
    )
    seeds.iterate(hsv, cfg.iterations)
    return seeds.getLabels().astype(np.int32)
