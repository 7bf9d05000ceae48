from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tests.stages.realdata import NUSC, SHARED
from weak3d.stages.superpixels import (
    SuperpixelConfig,
    read_camera_image,
    resize_like_pil,
    seeds_input,
    seeds_labels,
    seeds_superpixels,
    seeds_superpixels_file,
)

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (real sample files) is absent")


def _regions(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noisy image of four coloured regions (sky, road, a red car, a green verge)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), dtype=np.float64)
    img[: h // 2] = (120, 170, 230)
    img[h // 2 :] = (90, 90, 90)
    img[h // 2 :, : w // 5] = (40, 160, 40)
    img[h // 3 : 2 * h // 3, w // 2 : 3 * w // 4] = (200, 30, 30)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def test_shape_count_and_determinism_at_nuscenes_size():
    img = _regions(900, 1600)
    a = seeds_superpixels(img)
    b = seeds_superpixels(img)
    assert a.shape == (360, 640) and a.dtype == np.int32
    assert np.array_equal(a, b)
    # SEEDS lays 1024 out on a block grid: 880 blocks at 360x640; a few vanish while iterating.
    n = len(np.unique(a))
    assert 0.75 * 1024 < n <= 1024
    assert a.min() >= 0


def test_superpixels_respect_strong_colour_edges():
    img = _regions(360, 640)
    labels = seeds_superpixels(img)
    # The car block: most of its superpixels lie (almost) entirely inside or outside it.
    car = np.zeros(labels.shape, dtype=bool)
    car[120:240, 320:480] = True
    inside = np.bincount(labels[car].ravel(), minlength=labels.max() + 1)
    total = np.bincount(labels.ravel(), minlength=labels.max() + 1)
    touched = inside > 0
    purity = np.maximum(inside, total - inside)[touched].sum() / total[touched].sum()
    assert purity > 0.9


def test_resize_matches_pil_and_rejects_bad_input():
    img = _regions(90, 160)
    small = resize_like_pil(img, (36, 64))
    ref = np.asarray(Image.fromarray(img).resize((64, 36), Image.Resampling.BILINEAR))
    assert np.array_equal(small, ref)
    assert resize_like_pil(img, (90, 160)) is img
    labels = seeds_superpixels(img, SuperpixelConfig(num_superpixels=64, size=None))
    assert labels.shape == (90, 160)
    with pytest.raises(ValueError, match="RGB uint8"):
        seeds_superpixels(img.astype(np.float32))


def _texture(h: int, w: int, seed: int = 1) -> np.ndarray:
    """Smooth random colour field plus noise: many weak edges, so SEEDS moves many blocks and pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "settings",
    [
        {},  # the IUPC settings at 360x640: 4 levels, proportional grid 320x180 .. 40x22
        {"num_levels": 2},  # odd block rows (45 -> 22): the proportional parent mapping matters
        {"num_superpixels": 200, "prior": 1, "histogram_bins": 6, "double_step": False, "iterations": 3},
        {"num_superpixels": 64, "num_levels": 3, "prior": 0, "histogram_bins": 5, "size": (90, 160)},
    ],
)
def test_numba_backend_gives_opencv_labels(settings):
    # The numba SEEDS is a step-for-step port; any difference in grid, move order or float32
    # arithmetic would show up as differing labels.
    for img in (_texture(360, 640), _regions(360, 640)):
        ref = seeds_superpixels(img, SuperpixelConfig(backend="opencv", **settings))
        fast = seeds_superpixels(img, SuperpixelConfig(backend="numba", **settings))
        assert fast.dtype == ref.dtype == np.int32
        assert np.array_equal(fast, ref)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        seeds_superpixels(_regions(36, 64), SuperpixelConfig(size=None, num_superpixels=16, backend="cuda"))


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_image_file_path_gives_the_array_path_pixels_and_labels(tmp_path, mode):
    # The workflow decodes and resizes on PIL's buffer; that must equal decode -> numpy -> resize.
    path = tmp_path / ("cam.jpg" if mode != "RGBA" else "cam.png")
    Image.fromarray(_texture(180, 320)).convert(mode).save(path, quality=90)
    as_array = np.asarray(Image.open(path).convert("RGB"))
    cfg = SuperpixelConfig(num_superpixels=200, size=(90, 160))
    assert np.array_equal(read_camera_image(path, cfg.size), resize_like_pil(as_array, cfg.size))
    assert np.array_equal(read_camera_image(path, None), as_array)
    assert np.array_equal(seeds_superpixels_file(path, cfg), seeds_superpixels(as_array, cfg))


@needs_shared
def test_numba_backend_gives_opencv_labels_on_real_camera_images():
    # All six nuScenes cameras at the IUPC settings, read the way the workflow reads them.
    paths = sorted(NUSC.glob("*__CAM_*.jpg"))
    assert len(paths) == 6
    cfg = SuperpixelConfig()
    for path in paths:
        labels = seeds_superpixels_file(path, cfg)
        assert np.array_equal(labels, seeds_superpixels(np.asarray(Image.open(path).convert("RGB")), cfg))
        hsv = seeds_input(read_camera_image(path, cfg.size))
        assert np.array_equal(labels, seeds_labels(hsv, replace(cfg, backend="opencv")))
