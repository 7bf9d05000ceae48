"""HDBSCAN's single-linkage tree as scikit-learn builds it, with its Prim loop compiled by numba.

Why: scikit-learn's Prim over the mutual-reachability graph (``mst_from_data_matrix``) spends most
of pre-segmentation's clustering time calling its distance metric through a virtual method for
every pair of points. This is the same loop, in the same order, with the same float64 arithmetic
and the same strict ``<`` tie rules, so it returns the same MST edges in the same order; the core
distances come from scikit-learn's own NearestNeighbors and the tree from its own ``_process_mst``.
tests/stages/test_hdbscan_select.py checks that the trees are identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from sklearn.cluster._hdbscan._linkage import MST_edge_dtype
from sklearn.cluster._hdbscan.hdbscan import _process_mst
from sklearn.neighbors import NearestNeighbors


@njit(cache=True)
def _prim_mst(x: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's Prim loop, restated as two passes per step over the points not in the tree.

    scikit-learn's single pass picks the first point (in index order) with the smallest updated
    reachability; here pass 1 updates every reachability (a branch-free loop the compiler
    vectorises) and pass 2 takes that same first minimum. Tree points are dropped from the arrays
    from time to time, keeping index order, so ties still go to the lowest index.
    """
    n = x.shape[0]
    # Active (not yet in the tree) points, in index order; a point that joins the tree gets reach
    # -inf (never updated, never picked) until the next compaction drops it.
    idx = np.arange(n)
    px = x[:, 0].copy()
    py = x[:, 1].copy()
    pz = x[:, 2].copy()
    pc = core.copy()
    reach = np.full(n, np.inf)
    src = np.ones(n, np.int64)
    m = n
    dead = 0
    src_out = np.empty(n - 1, np.int64)
    dst_out = np.empty(n - 1, np.int64)
    dist_out = np.empty(n - 1, np.float64)
    cur = 0  # position of the current point in the active arrays
    for i in range(n - 1):
        cx, cy, cz, cc, cur_idx = px[cur], py[cur], pz[cur], pc[cur], idx[cur]
        reach[cur] = -np.inf
        dead += 1
        for j in range(m):
            tx = cx - px[j]
            ty = cy - py[j]
            tz = cz - pz[j]
            # Same operations in the same order as scikit-learn's euclidean_dist64 and max().
            d = np.sqrt(((0.0 + tx * tx) + ty * ty) + tz * tz)
            mrd = cc
            if pc[j] > mrd:
                mrd = pc[j]
            if d > mrd:
                mrd = d
            upd = mrd < reach[j]
            reach[j] = mrd if upd else reach[j]
            src[j] = cur_idx if upd else src[j]
        best = np.inf
        best_j = -1
        for j in range(m):
            v = reach[j]
            if v < best and v != -np.inf:
                best = v
                best_j = j
        src_out[i] = src[best_j]
        dst_out[i] = idx[best_j]
        dist_out[i] = best
        cur = best_j
        if dead * 8 > m:  # drop tree points, keep order
            k = 0
            for j in range(m):
                if reach[j] != -np.inf:
                    if j == cur:
                        cur = k
                    idx[k], px[k], py[k], pz[k] = idx[j], px[j], py[j], pz[j]
                    pc[k], reach[k], src[k] = pc[j], reach[j], src[j]
                    k += 1
            m = k
            dead = 0
    return src_out, dst_out, dist_out


def single_linkage_tree(points: np.ndarray, min_samples: int, leaf_size: int = 40) -> np.ndarray:
    """scikit-learn HDBSCAN's ``_single_linkage_tree_`` for euclidean `points` (n >= 2, finite).

    Equal to ``HDBSCAN(min_cluster_size=min_samples).fit(points)._single_linkage_tree_`` (its
    defaults: min_samples = min_cluster_size, alpha 1, algorithm "auto" -> kd_tree Prim).
    """
    x = np.ascontiguousarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or len(x) < 2:
        raise ValueError(f"expected (n >= 2, 3) points, got shape {x.shape}")
    nbrs = NearestNeighbors(n_neighbors=min_samples, algorithm="kd_tree", leaf_size=leaf_size).fit(x)
    dist, _ = nbrs.kneighbors(x, min_samples, return_distance=True)
    core = np.ascontiguousarray(dist[:, -1])
    src, dst, d = _prim_mst(x, core)
    mst = np.empty(len(x) - 1, dtype=MST_edge_dtype)
    mst["current_node"], mst["next_node"], mst["distance"] = src, dst, d
    return _process_mst(mst)
