"""HDBSCAN's single-linkage tree as scikit-learn builds it, computed in numba without scikit-learn.

Why: scikit-learn's Prim over the mutual-reachability graph (``mst_from_data_matrix``) computes all
n^2/2 distances and calls its metric through a virtual method for each; importing scikit-learn
alone costs a job ~0.8 s. This module returns the same tree:
- core distances (distance to the min_samples-th neighbour, self included) from an exact kd-block
  search, with scikit-learn's arithmetic ``sqrt(((0 + dx*dx) + dy*dy) + dz*dz)``: same values;
- scikit-learn's Prim loop with the same float64 arithmetic and the same strict ``<`` tie rules
  (each step takes the lowest-index point of smallest reachability), so the same MST edges in the
  same order. Points sit in kd leaves of <= 32; a leaf is skipped in a step when no point of it can
  be updated, which a lower bound on the mutual reachability distance from the new tree point
  (core distances, distance to the leaf's box) proves. Skipping changes nothing, it only avoids
  most of the n^2 distances;
- ``_process_mst``'s edge sort (the same ``np.argsort`` call) and ``make_single_linkage``'s union-find.
tests/stages/test_hdbscan_select.py checks that the trees are identical to scikit-learn's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# scikit-learn's HIERARCHY_dtype (sklearn/cluster/_hdbscan/_tree.pyx).
HIERARCHY_dtype = np.dtype(
    [("left_node", np.intp), ("right_node", np.intp), ("value", np.float64), ("cluster_size", np.intp)]
)
LEAF = 32
# Bounds are compared with this relative slack against rounding (a skip must be a sure one).
_SLACK = 1.0 - 1e-9


@njit(cache=True)
def _kd_leaves(x: np.ndarray, leaf: int) -> tuple[np.ndarray, np.ndarray]:
    """Point order and leaf start offsets of a median-split kd tree (leaves of <= `leaf` points)."""
    n = x.shape[0]
    perm = np.arange(n)
    starts = []
    stack = [(0, n)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo <= leaf:
            starts.append(lo)
            continue
        sub = perm[lo:hi]
        best_dim, best_ext = 0, -1.0
        for d in range(3):
            v = x[sub, d]
            ext = v.max() - v.min()
            if ext > best_ext:
                best_dim, best_ext = d, ext
        order = np.argsort(x[sub, best_dim], kind="mergesort")
        perm[lo:hi] = sub[order]
        mid = (lo + hi) // 2
        stack.append((mid, hi))  # left half popped first: leaves come out in tree order
        stack.append((lo, mid))
    out = np.empty(len(starts) + 1, np.int64)
    for i in range(len(starts)):
        out[i] = starts[i]
    out[-1] = n
    return perm, out


@njit(cache=True)
def _boxes(px: np.ndarray, py: np.ndarray, pz: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Bounding box of each leaf: rows x0, y0, z0, x1, y1, z1."""
    nb = len(bounds) - 1
    box = np.empty((6, nb))
    for b in range(nb):
        s, e = bounds[b], bounds[b + 1]
        box[0, b], box[1, b], box[2, b] = px[s:e].min(), py[s:e].min(), pz[s:e].min()
        box[3, b], box[4, b], box[5, b] = px[s:e].max(), py[s:e].max(), pz[s:e].max()
    return box


@njit(cache=True)
def _gap2(box: np.ndarray, b: int, x: float, y: float, z: float) -> float:
    """Squared distance from (x, y, z) to leaf b's box (a lower bound on the distance to its points)."""
    gx = max(box[0, b] - x, 0.0, x - box[3, b])
    gy = max(box[1, b] - y, 0.0, y - box[4, b])
    gz = max(box[2, b] - z, 0.0, z - box[5, b])
    return ((0.0 + gx * gx) + gy * gy) + gz * gz


@njit(cache=True)
def _box_gap2(box: np.ndarray, a: int, b: int) -> float:
    """Squared distance between the boxes of leaves a and b."""
    gx = max(box[0, b] - box[3, a], 0.0, box[0, a] - box[3, b])
    gy = max(box[1, b] - box[4, a], 0.0, box[1, a] - box[4, b])
    gz = max(box[2, b] - box[5, a], 0.0, box[2, a] - box[5, b])
    return ((0.0 + gx * gx) + gy * gy) + gz * gz


@njit(cache=True)
def _nearest(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, x: float, y: float, z: float, best: np.ndarray
) -> None:
    """Merge the squared distances from (x, y, z) to the points (views) into the sorted `best`."""
    k = len(best)
    for j in range(len(px)):
        tx, ty, tz = x - px[j], y - py[j], z - pz[j]
        d2 = ((0.0 + tx * tx) + ty * ty) + tz * tz
        if d2 < best[k - 1]:
            q = k - 1
            while q > 0 and best[q - 1] > d2:
                best[q] = best[q - 1]
                q -= 1
            best[q] = d2


@njit(cache=True)
def _core_distances(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, bounds: np.ndarray, box: np.ndarray, k: int
) -> np.ndarray:
    """Distance to the k-th nearest point, self included (exact: a leaf is skipped only when its box
    lies beyond the current k-th distance of every point concerned)."""
    n, nb = len(px), len(bounds) - 1
    kth2 = np.full(n, np.inf)
    best = np.empty((n, k))
    best[:] = np.inf
    for a in range(nb):
        s, e = bounds[a], bounds[a + 1]
        for i in range(s, e):
            _nearest(px[s:e], py[s:e], pz[s:e], px[i], py[i], pz[i], best[i])
            kth2[i] = best[i, k - 1]
        for step in range(1, nb):
            b = (a + step) % nb  # neighbours in tree order first
            if _box_gap2(box, a, b) * _SLACK > kth2[s:e].max():
                continue
            t, u = bounds[b], bounds[b + 1]
            for i in range(s, e):
                if _gap2(box, b, px[i], py[i], pz[i]) * _SLACK > kth2[i]:
                    continue
                _nearest(px[t:u], py[t:u], pz[t:u], px[i], py[i], pz[i], best[i])
                kth2[i] = best[i, k - 1]
    return np.sqrt(kth2)


@njit(cache=True)
def _update(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    core: np.ndarray,
    reach: np.ndarray,
    src: np.ndarray,
    idx: np.ndarray,
    cx: float,
    cy: float,
    cz: float,
    cc: float,
    cur_idx: int,
) -> tuple[float, float, int]:
    """One Prim update of a leaf's points (array views) from the new tree point.

    Returns the leaf's largest and smallest reachability over points not in the tree (reach -inf)
    and the lowest original index having the smallest. Loops over range(len(...)) and branch-free,
    so that the compiler vectorises them (with range(start, end) numba's negative-index handling
    prevents that).
    """
    hi, lo = -np.inf, np.inf
    for j in range(len(px)):
        tx = cx - px[j]
        ty = cy - py[j]
        tz = cz - pz[j]
        # Same operations in the same order as scikit-learn's euclidean_dist64 and max().
        d = np.sqrt(((0.0 + tx * tx) + ty * ty) + tz * tz)
        mrd = cc
        if core[j] > mrd:
            mrd = core[j]
        if d > mrd:
            mrd = d
        r = reach[j]
        upd = mrd < r  # never for tree points (reach -inf)
        r = mrd if upd else r
        reach[j] = r
        src[j] = cur_idx if upd else src[j]
        hi = max(hi, r)
        lo = min(lo, r if r != -np.inf else np.inf)
    lo_idx = np.iinfo(np.int64).max
    for j in range(len(px)):
        lo_idx = min(lo_idx, idx[j] if reach[j] == lo else lo_idx)
    return hi, lo, lo_idx


@njit(cache=True)
def _prim_mst(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    core: np.ndarray,
    idx: np.ndarray,
    bounds: np.ndarray,
    box: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's Prim loop over points stored in kd-leaf order (`idx`: original index).

    scikit-learn starts at point 0, updates every point's reachability from the new tree point and
    takes the first (lowest index) point of smallest reachability. Same here, leaf by leaf; a leaf
    whose points cannot get a smaller reachability is not visited.
    """
    n, nb = len(px), len(bounds) - 1
    pos = np.empty(n, np.int64)  # original index -> position
    pos[idx] = np.arange(n)
    reach = np.full(n, np.inf)
    src = np.ones(n, np.int64)
    leaf_of = np.empty(n, np.int64)
    x0, y0, z0 = box[0].copy(), box[1].copy(), box[2].copy()
    x1, y1, z1 = box[3].copy(), box[4].copy(), box[5].copy()
    core_lo = np.empty(nb)
    reach_hi = np.full(nb, np.inf)  # >= the leaf's reachabilities (equal after a visit)
    reach_lo = np.full(nb, np.inf)  # the leaf's smallest reachability ...
    lo_idx = np.empty(nb, np.int64)  # ... and the lowest original index having it
    for b in range(nb):
        leaf_of[bounds[b] : bounds[b + 1]] = b
        core_lo[b] = core[bounds[b] : bounds[b + 1]].min()
    visit = np.empty(nb, np.bool_)
    src_out = np.empty(n - 1, np.int64)
    dst_out = np.empty(n - 1, np.int64)
    dist_out = np.empty(n - 1, np.float64)
    cur = pos[0]  # scikit-learn starts at point 0
    for i in range(n - 1):
        cx, cy, cz, cc, cur_idx = px[cur], py[cur], pz[cur], core[cur], idx[cur]
        reach[cur] = -np.inf  # in the tree: never updated, never picked
        # mrd = max(cc, core_j, d_j) >= each bound below, so a leaf where one reaches its largest
        # reachability gets no update (branch-free, so that it vectorises).
        for b in range(nb):
            hi = reach_hi[b]
            gx = max(x0[b] - cx, 0.0, cx - x1[b])
            gy = max(y0[b] - cy, 0.0, cy - y1[b])
            gz = max(z0[b] - cz, 0.0, cz - z1[b])
            gap2 = ((0.0 + gx * gx) + gy * gy) + gz * gz
            visit[b] = (max(cc, core_lo[b]) < hi) & (gap2 * _SLACK < hi * hi)
        visit[leaf_of[cur]] = True  # its stats change: cur left it
        for b in range(nb):
            if not visit[b]:
                continue
            s, e = bounds[b], bounds[b + 1]
            reach_hi[b], reach_lo[b], lo_idx[b] = _update(
                px[s:e], py[s:e], pz[s:e], core[s:e], reach[s:e], src[s:e], idx[s:e], cx, cy, cz, cc, cur_idx
            )
        # The lowest original index among the smallest reachabilities (two vectorisable passes).
        lo = np.inf
        for b in range(nb):
            lo = min(lo, reach_lo[b])
        nxt = n
        for b in range(nb):
            nxt = min(nxt, lo_idx[b] if reach_lo[b] == lo else n)
        cur = pos[nxt]
        src_out[i] = src[cur]
        dst_out[i] = nxt
        dist_out[i] = reach[cur]
    return src_out, dst_out, dist_out


@njit(cache=True)
def _find(parent: np.ndarray, node: int) -> int:
    root = node
    while parent[root] != -1:
        root = parent[root]
    while node != root and parent[node] != root:  # path compression, as scikit-learn's fast_find
        up = parent[node]
        parent[node] = root
        node = up
    return root


@njit(cache=True)
def _single_linkage(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's make_single_linkage: union-find over the sorted MST edges."""
    n = len(src) + 1
    parent = np.full(2 * n - 1, -1, np.int64)
    size = np.zeros(2 * n - 1, np.int64)
    size[:n] = 1
    left = np.empty(n - 1, np.int64)
    right = np.empty(n - 1, np.int64)
    csize = np.empty(n - 1, np.int64)
    for i in range(n - 1):
        a, b = _find(parent, src[i]), _find(parent, dst[i])
        left[i], right[i], csize[i] = a, b, size[a] + size[b]
        parent[a] = parent[b] = n + i
        size[n + i] = size[a] + size[b]
    return left, right, csize


def single_linkage_tree(points: np.ndarray, min_samples: int) -> np.ndarray:
    """scikit-learn HDBSCAN's ``_single_linkage_tree_`` for euclidean `points` (n >= 2, finite).

    Equal to ``HDBSCAN(min_cluster_size=min_samples).fit(points)._single_linkage_tree_`` (its
    defaults: min_samples = min_cluster_size, alpha 1, algorithm "auto" -> kd_tree Prim).
    """
    x = np.ascontiguousarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or len(x) < 2:
        raise ValueError(f"expected (n >= 2, 3) points, got shape {x.shape}")
    if len(x) < min_samples:
        raise ValueError(f"min_samples={min_samples} exceeds the {len(x)} points")
    perm, bounds = _kd_leaves(x, LEAF)
    xs = x[perm]
    px, py, pz = (np.ascontiguousarray(xs[:, d]) for d in range(3))
    box = _boxes(px, py, pz, bounds)
    # The neighbour search is faster on leaves twice as large (sibling pairs).
    pairs = np.append(bounds[:-1:2], len(x))
    core = _core_distances(px, py, pz, pairs, _boxes(px, py, pz, pairs), min_samples)
    src, dst, dist = _prim_mst(px, py, pz, core, perm, bounds, box)
    order = np.argsort(dist)  # the call _process_mst makes (its tie order matters)
    left, right, size = _single_linkage(src[order], dst[order])
    out = np.empty(len(x) - 1, dtype=HIERARCHY_dtype)
    out["left_node"], out["right_node"], out["value"], out["cluster_size"] = left, right, dist[order], size
    return out
