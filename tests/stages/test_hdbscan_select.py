import numpy as np
from sklearn.cluster import HDBSCAN

from weak3d.stages.hdbscan_mst import single_linkage_tree
from weak3d.stages.hdbscan_select import select_clusters
from weak3d.stages.presegment import cluster_nonground


def _tree(x: np.ndarray, mcs: int) -> tuple[np.ndarray, np.ndarray]:
    h = HDBSCAN(min_cluster_size=mcs, copy=False).fit(x)
    return h._single_linkage_tree_, h.labels_


def test_matches_sklearn_without_epsilon():
    rng = np.random.default_rng(0)
    for n, mcs in ((300, 5), (1500, 5), (1500, 15)):
        centers = rng.uniform(-5, 5, (5, 3))
        x = np.concatenate(
            [rng.normal(c, 0.3 + 0.2 * i, (n // 5, 3)) for i, c in enumerate(centers)]
            + [rng.uniform(-8, 8, (n // 10, 3))]
        )
        slt, ref = _tree(x, mcs)
        assert np.array_equal(select_clusters(slt, len(x), mcs, 0.0), ref)


def test_epsilon_merges_close_micro_clusters_only():
    rng = np.random.default_rng(1)
    # Two tight blobs 0.3 m apart (one object split by HDBSCAN) and a third blob far away.
    a = rng.normal([0, 0, 0], 0.03, (40, 3))
    b = rng.normal([0.3, 0, 0], 0.03, (40, 3))
    c = rng.normal([10, 0, 0], 0.03, (40, 3))
    x = np.concatenate([a, b, c])
    mask = np.ones(len(x), dtype=bool)
    plain = cluster_nonground(x, mask, 5, 0.0)
    merged = cluster_nonground(x, mask, 5, 0.5)
    assert len(np.unique(plain[:80])) == 2
    assert len(np.unique(merged[:80])) == 1 and merged[0] >= 0
    assert merged[80] >= 0 and merged[80] != merged[0]


def test_numba_prim_gives_sklearns_single_linkage_tree():
    rng = np.random.default_rng(2)
    blobs = np.concatenate([rng.normal(c, 0.4, (300, 3)) for c in rng.uniform(-5, 5, (4, 3))])
    # Coordinates on a 0.1 grid: many equal distances, so Prim's tie rules are exercised.
    ties = rng.integers(-20, 20, (1500, 3)) * 0.1
    # Duplicated points (zero distances and core distances), and two far groups (most kd leaves are
    # skipped in a Prim step).
    dups = np.concatenate([ties[:300], ties[:300], ties[:200] + [50.0, 0.0, 0.0]])
    for x, mcs in ((blobs, 5), (ties, 5), (ties[:40], 3), (dups, 5), (blobs[:6], 5), (blobs[:2], 2)):
        ref, _ = _tree(x, mcs)
        ours = single_linkage_tree(x, mcs)
        assert ours.dtype == ref.dtype
        assert all(np.array_equal(ours[f], ref[f]) for f in ref.dtype.names)
