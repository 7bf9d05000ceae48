import numpy as np
import pytest

from tests.stages.realdata import SHARED, real_images, real_sweep
from weak3d.stages.presegment import presegment
from weak3d.stages.superpixels import SuperpixelConfig, seeds_superpixels

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (real sample files) is absent")


@needs_shared
def test_presegment_real_sweep():
    pts, visible = real_sweep()
    assert visible.sum() == 20206  # the count documented with the files
    ground, cell, seg = presegment(pts, None, visible)
    frac = ground[visible].mean()
    assert 0.3 < frac < 0.8
    # Ground lies low: below the sensor by well over a metre on average.
    assert pts[ground, 2].mean() < -1.2
    clustered = (seg >= 0) & ~ground
    assert clustered.sum() > 0.5 * (visible & ~ground).sum()
    assert np.array_equal(presegment(pts, None, visible)[2], seg)


@needs_shared
def test_seeds_real_image():
    img = real_images()[0]
    labels = seeds_superpixels(img)
    assert labels.shape == (360, 640)
    assert 0.75 * 1024 < len(np.unique(labels)) <= 1024
    # The default numba backend reproduces OpenCV's labels on a real camera image.
    assert np.array_equal(labels, seeds_superpixels(img, SuperpixelConfig(backend="opencv")))
