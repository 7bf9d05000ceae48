import numpy as np
import pytest

from tests.stages.synthetic import CAR, MANMADE, PEDESTRIAN, ROAD, SIDEWALK, VEGETATION, street_scene
from weak3d.stages.presegment import presegment
from weak3d.stages.weak_labels import (
    WeakLabelConfig,
    class_bitmask,
    label_statistics,
    statistics_table,
    weak_labels,
)

TRUCK = 10


def _cluster(*parts: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One non-ground segment (id 100) made of (class, count) parts; GT, ground mask, segment id."""
    gt = np.concatenate([np.full(n, c, dtype=np.uint8) for c, n in parts])
    return gt, np.zeros(len(gt), dtype=bool), np.full(len(gt), 100, dtype=np.int32)


def _labels(*parts: tuple[int, int], token: str = "t"):
    gt, ground, seg = _cluster(*parts)
    return gt, weak_labels(gt, ground, seg, token)


def _clicks(res) -> dict[int, int]:
    vals, counts = np.unique(res.sparse[res.sparse > 0], return_counts=True)
    return dict(zip(vals.tolist(), counts.tolist(), strict=True))


@pytest.mark.parametrize(
    ("parts", "kept"),
    [
        # stuff only: drop <= 1 %
        (((VEGETATION, 198), (MANMADE, 2)), {VEGETATION}),
        (((VEGETATION, 197), (MANMADE, 3)), {VEGETATION, MANMADE}),
        # one thing class, and it dominates: drop <= 10 %
        (((CAR, 90), (VEGETATION, 10)), {CAR}),
        (((CAR, 89), (VEGETATION, 11)), {CAR, VEGETATION}),
        # one thing class, stuff dominates: drop <= 0.1 %
        (((VEGETATION, 999), (CAR, 1)), {VEGETATION}),
        (((VEGETATION, 998), (CAR, 2)), {VEGETATION, CAR}),
        # two thing classes: drop <= 0.1 %
        (((CAR, 900), (TRUCK, 99), (PEDESTRIAN, 1)), {CAR, TRUCK}),
        (((CAR, 900), (TRUCK, 98), (PEDESTRIAN, 2)), {CAR, TRUCK, PEDESTRIAN}),
    ],
)
def test_minority_removal(parts, kept):
    gt, res = _labels(*parts)
    assert set(_clicks(res)) == kept
    assert all(v == 1 for v in _clicks(res).values())  # one click per class
    if len(kept) == 1:
        (c,) = kept
        # Single class left: the whole cluster, dropped minority points included, gets it.
        assert (res.propagated == c).all()
        assert (res.candidates == 0).all()
    else:
        assert (res.candidates == class_bitmask(sorted(kept))).all()
        # Multi-class: only the clicks carry a propagated label (sparse overwrites prop).
        assert np.array_equal(res.propagated, res.sparse)


@pytest.mark.parametrize(
    ("parts", "labelled"),
    [
        (((VEGETATION, 19),), False),
        (((VEGETATION, 20),), True),
        (((MANMADE, 9),), False),
        (((MANMADE, 10),), True),
        (((VEGETATION, 5), (MANMADE, 5)), True),  # manmade present: limit 10
        (((CAR, 4),), False),
        (((CAR, 5),), True),
        (((0, 50),), False),  # all ignore: skipped
    ],
)
def test_cluster_size_thresholds(parts, labelled):
    _, res = _labels(*parts)
    assert bool(res.sparse.any()) == labelled
    assert bool(res.propagated.any() or res.candidates.any()) == labelled


def test_class_zero_counts_but_is_never_a_click():
    gt, res = _labels((0, 50), (VEGETATION, 50))
    assert _clicks(res) == {VEGETATION: 1}
    assert (res.candidates == (1 | 1 << VEGETATION)).all()
    # Mostly ignore, vegetation a 0.5 % minority: only class 0 is left, so nothing is labelled.
    _, res = _labels((0, 995), (VEGETATION, 5))
    assert not res.sparse.any() and not res.propagated.any() and not res.candidates.any()


def test_ground_cells_single_and_multi_class():
    gt = np.array([ROAD] * 300 + [ROAD] * 499 + [SIDEWALK] * 1 + [0] * 5, dtype=np.uint8)
    seg = np.array([7] * 300 + [8] * 505, dtype=np.int32)
    ground = np.ones(len(gt), dtype=bool)
    res = weak_labels(gt, ground, seg, "tok")
    assert (res.propagated[:300] == ROAD).all() and (res.candidates[:300] == 0).all()
    # Ground cells have no minority rule: one sidewalk point of 505 still enters the set.
    assert (res.candidates[300:] == (1 | 1 << ROAD | 1 << SIDEWALK)).all()
    assert _clicks(res) == {ROAD: 2, SIDEWALK: 1}
    assert res.sparse[799] == SIDEWALK


def test_noise_invisible_and_dtypes():
    gt, ground, seg = _cluster((VEGETATION, 40))
    seg[:10] = -1  # HDBSCAN noise
    visible = np.ones(len(gt), dtype=bool)
    visible[10:20] = False
    res = weak_labels(gt, ground, seg, "t", visible=visible)
    assert not res.propagated[:20].any() and (res.propagated[20:] == VEGETATION).all()
    assert res.sparse.dtype == np.uint8 and res.propagated.dtype == np.uint8
    assert res.candidates.dtype == np.uint32


def test_point_per_class():
    gt, ground, seg = _cluster((CAR, 50), (TRUCK, 50))
    res = weak_labels(gt, ground, seg, "t", WeakLabelConfig(point_per_class=3))
    assert _clicks(res) == {CAR: 3, TRUCK: 3}


def test_mixed_segment_is_an_error():
    gt, ground, seg = _cluster((CAR, 10))
    ground[0] = True
    with pytest.raises(ValueError, match="sample t: segment 100 mixes"):
        weak_labels(gt, ground, seg, "t")


def test_scene_one_click_per_class_per_segment_and_reruns_identical():
    s = street_scene()
    ground, _, seg = presegment(s["xyz"], s["sweeps"], s["visible"])
    a = weak_labels(s["gt"], ground, seg, "sample-a", WeakLabelConfig(seed=1))
    b = weak_labels(s["gt"], ground, seg, "sample-a", WeakLabelConfig(seed=1))
    for key in ("sparse", "propagated", "candidates"):
        assert a.as_dict()[key].tobytes() == b.as_dict()[key].tobytes()
    # Another token (or seed) draws other clicks from the same segments.
    c = weak_labels(s["gt"], ground, seg, "sample-b", WeakLabelConfig(seed=1))
    assert not np.array_equal(a.sparse, c.sparse)
    assert np.count_nonzero(a.sparse) == np.count_nonzero(c.sparse)
    # Clicks: exactly one per labelled (segment, non-zero class) pair, at a point of that class.
    clicked = np.flatnonzero(a.sparse)
    assert (s["gt"][clicked] == a.sparse[clicked]).all()
    pairs = {(int(seg[i]), int(a.sparse[i])) for i in clicked}
    assert len(pairs) == len(clicked)
    labelled_segments = set(seg[(a.propagated > 0) | (a.candidates > 0)].tolist())
    assert {p[0] for p in pairs} == labelled_segments
    assert not (a.sparse[~s["visible"]].any() or a.candidates[~s["visible"]].any())
    # Every candidate set holds the GT class of its segment's non-minority points: here all.
    has = a.candidates > 0
    assert ((a.candidates[has] >> s["gt"][has].astype(np.uint32)) & 1).all()


def test_statistics_denominators_by_hand():
    # Scan A: 10 points, 5 visible; 2 clicks, 2 propagated (visible), 1 candidate set (visible)
    # whose point is also clicked: its copied click is not a propagated label.
    gt_a = np.array([4, 4, 4, 11, 11, 0, 0, 0, 0, 0], dtype=np.uint8)
    vis_a = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    res_a = {
        "sparse": np.array([4, 0, 0, 11, 0, 0, 0, 0, 0, 0], dtype=np.uint8),
        "propagated": np.array([4, 11, 0, 11, 0, 0, 0, 0, 0, 0], dtype=np.uint8),
        "candidates": np.array([0, 0, 0, 1 << 11 | 1 << 13, 0, 0, 0, 0, 0, 0], dtype=np.uint32),
    }
    # Scan B: 20 points, 10 visible; 2 clicks, 5 propagated (all car, 4 right), no candidates.
    gt_b = np.zeros(20, dtype=np.uint8)
    gt_b[:5] = [4, 4, 4, 4, 11]
    vis_b = np.zeros(20, dtype=bool)
    vis_b[:10] = True
    res_b = {
        "sparse": np.r_[[4, 4], np.zeros(18)].astype(np.uint8),
        "propagated": np.r_[[4] * 5, np.zeros(15)].astype(np.uint8),
        "candidates": np.zeros(20, dtype=np.uint32),
    }
    st = label_statistics([res_a, res_b], [gt_a, gt_b], [vis_a, vis_b])
    assert st["n_scans"] == 2
    assert st["sparse_rate"] == pytest.approx((2 / 10 + 2 / 20) / 2)
    assert st["propagated_rate"] == pytest.approx((2 / 5 + 5 / 10) / 2)
    assert st["candidate_rate"] == pytest.approx((1 / 5 + 0 / 10) / 2)
    # Propagated on GT != 0: A: car ok, driveable(11) on a car point wrong; B: 4 car ok, 1 wrong.
    assert st["propagated_accuracy"] == pytest.approx(5 / 7)
    assert st["propagated_per_class"]["car"] == {"points": 6, "accuracy": pytest.approx(5 / 6)}
    assert st["propagated_per_class"]["driveable_surface"] == {"points": 1, "accuracy": 0.0}
    assert st["propagated_per_class"]["bus"] == {"points": 0, "accuracy": None}
    assert st["candidate_contains_gt"] == 1.0
    table = statistics_table(st)
    assert "| 2 | 15.000 | 45.00 | 10.00 | 71.43 | 100.00 |" in table
    assert "| car | 6 | 83.33 |" in table and "| bus | 0 | n/a |" in table
