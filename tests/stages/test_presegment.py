import numpy as np
import pytest

from tests.stages.synthetic import GROUND_Z, ground_plane, street_scene
from weak3d.config import config_from_dict
from weak3d.stages.presegment import (
    PresegmentConfig,
    cluster_nonground,
    fit_ground,
    n_angular,
    polar_cells,
    polar_indices,
    presegment,
)


def _at(r: float, theta: float) -> np.ndarray:
    return np.array([[r * np.cos(theta), r * np.sin(theta), 0.0]])


def test_polar_cell_indexing_rounds_and_wraps():
    assert n_angular() == 20
    cases = [
        (1.0, 0.0, 0, 10),  # theta 0 -> sector 10 after the +10 shift
        (2.4, 0.0, 0, 10),  # rounding, not flooring: r < 2.5 is radial 0
        (2.6, 0.0, 1, 10),
        (7.6, 0.0, 2, 10),
        (10.0, 0.44 * np.pi, 2, 14),
        (10.0, -0.5 * np.pi, 2, 5),
        (10.0, np.pi - 1e-3, 2, 0),  # round(+10) = 20 wraps to 0 ...
        (10.0, -np.pi + 1e-3, 2, 0),  # ... the same sector as just across -pi
        (10.0, 0.96 * np.pi, 2, 0),
        (10.0, 0.94 * np.pi, 2, 19),
    ]
    for r, theta, radial, angular in cases:
        ri, ai = polar_indices(_at(r, theta))
        assert (ri[0], ai[0]) == (radial, angular), (r, theta)
        assert polar_cells(_at(r, theta))[0] == radial * 20 + angular
    assert polar_cells(_at(10.0, 0.0)).dtype == np.int32


def test_ground_found_on_plane_not_on_objects():
    s = street_scene()
    ground, cell, seg = presegment(s["xyz"], s["sweeps"], s["visible"])
    kind, z = s["kind"], s["xyz"][:, 2]
    assert ground[kind == 0].mean() > 0.9
    # Object points more than the RANSAC distance above the road are never ground.
    high = (kind > 0) & (z > GROUND_Z + 0.25)
    assert not ground[high].any()
    assert not ground[kind == 3].any()  # the wall
    assert not ground[~s["visible"]].any()
    assert (seg[~s["visible"]] == -1).all()
    # Segment ids: ground points carry their cell id, clusters lie above every cell id.
    assert (seg[ground] == cell[ground]).all()
    clusters = seg[~ground & (seg >= 0)]
    assert clusters.size and clusters.min() > cell[s["visible"]].max()
    assert ground.dtype == bool and cell.dtype == np.int32 and seg.dtype == np.int32


def test_no_ground_in_a_cell_holding_only_a_wall():
    rng = np.random.default_rng(1)
    wall = np.c_[np.full(400, 12.0), rng.uniform(-1.0, 1.0, 400), rng.uniform(-1.8, 2.0, 400)]
    assert not fit_ground(wall, None).any()


def test_box_top_is_rejected_by_the_barycentre_check():
    rng = np.random.default_rng(2)
    # A cell with a raised horizontal slab and more low clutter below it: the slab is flat and fits
    # best, but lies above the other points, so it is not ground.
    slab = np.c_[rng.uniform(10, 12, (300, 2)) * [1, 0.2], np.full(300, 1.0) + rng.normal(0, 0.02, 300)]
    low = np.c_[rng.uniform(10, 12, (100, 2)) * [1, 0.2], rng.uniform(-1.8, 0.0, 100)]
    assert not fit_ground(np.concatenate([slab, low]), None).any()


def test_strict_normal_cells_behind_the_ego():
    rng = np.random.default_rng(3)

    def slope(theta_c: float) -> np.ndarray:
        r = rng.uniform(3.0, 7.0, 600)
        t = rng.uniform(theta_c - 0.04 * np.pi, theta_c + 0.04 * np.pi, 600)
        x, y = r * np.cos(t), r * np.sin(t)
        tilt = np.tan(np.radians(25.0))  # |n.z| = cos 25 deg = 0.906: between 0.75 and 0.95
        return np.c_[x, y, -1.8 + tilt * (x - x.mean())]

    behind, ahead = slope(-0.5 * np.pi), slope(0.5 * np.pi)
    assert polar_indices(behind)[1][0] == 5 and polar_indices(behind)[0].max() < 2
    assert not fit_ground(behind, None).any()
    assert fit_ground(ahead, None).mean() > 0.9
    assert fit_ground(behind, None, PresegmentConfig(strict_angular=())).mean() > 0.9


def test_sweeps_rescue_a_sparse_keyframe_cell():
    rng = np.random.default_rng(4)
    cell = ground_plane(rng, x=(10.0, 12.0), y=(-0.5, 0.5), step=0.25)  # ~32 points: too few alone
    assert len(cell) <= 100
    assert not fit_ground(cell, None).any()
    sweep = ground_plane(rng, x=(10.0, 12.0), y=(-0.5, 0.5), step=0.1)
    assert fit_ground(cell, sweep).all()


def test_ransac_is_deterministic_and_seeded():
    s = street_scene(seed=5)
    xyz, sw = s["xyz"][s["visible"]], s["sweeps"]
    a = fit_ground(xyz, sw, PresegmentConfig(seed=7))
    b = fit_ground(xyz, sw, PresegmentConfig(seed=7))
    assert np.array_equal(a, b)
    assert np.array_equal(
        presegment(s["xyz"], sw, s["visible"])[2], presegment(s["xyz"], sw, s["visible"])[2]
    )


def test_hdbscan_separates_two_boxes():
    rng = np.random.default_rng(6)
    a = rng.uniform([0, 0, 0], [2, 1, 1.5], (150, 3))
    b = rng.uniform([5, 0, 0], [7, 1, 1.5], (150, 3))
    xyz = np.concatenate([a, b, [[100.0, 100.0, 0.0]]])
    mask = np.ones(len(xyz), dtype=bool)
    mask[-1] = False
    ids = cluster_nonground(xyz, mask)
    assert ids.dtype == np.int32 and ids[-1] == -1
    ia, ib = ids[:150], ids[150:300]
    assert (ia >= 0).mean() > 0.95 and (ib >= 0).mean() > 0.95
    assert len(np.unique(ia[ia >= 0])) == 1 and len(np.unique(ib[ib >= 0])) == 1
    assert ia[ia >= 0][0] != ib[ib >= 0][0]


def test_config_from_dict_names_unknown_keys():
    cfg = config_from_dict(PresegmentConfig, {"seed": 3, "strict_angular": [4, 5]})
    assert cfg.seed == 3 and cfg.strict_angular == (4, 5)
    with pytest.raises(ValueError, match="presegment.*grid_size"):
        config_from_dict(PresegmentConfig, {"grid_size": [5, 0.1]}, "presegment")


def test_numba_ransac_finds_the_same_ground():
    # The default RANSAC, with its own random draws: deterministic per seed, and on the street scene
    # it labels the road, the objects and the wall as open3d's RANSAC (opt-in) does, up to a few points.
    s = street_scene(seed=5)
    xyz, sw = s["xyz"][s["visible"]], s["sweeps"]
    cfg = PresegmentConfig(ransac="numba")
    assert PresegmentConfig().ransac == "numba"
    a, b = fit_ground(xyz, sw, cfg), fit_ground(xyz, sw, cfg)
    assert np.array_equal(a, b)
    ref = fit_ground(xyz, sw, PresegmentConfig(ransac="open3d"))
    assert np.array_equal(ref, fit_ground(xyz, sw, PresegmentConfig(ransac="open3d")))
    assert (a != ref).mean() < 0.01
    kind = s["kind"][s["visible"]]
    assert a[kind == 0].mean() > 0.9 and not a[kind == 3].any()
    with pytest.raises(ValueError, match="ransac"):
        fit_ground(xyz, sw, PresegmentConfig(ransac="pcl"))
