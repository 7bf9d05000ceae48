"""HDBSCAN cluster selection (excess of mass + cluster_selection_epsilon) from a single-linkage tree.

Why this exists: scikit-learn 1.9.1 with NumPy >= 2.4 raises ``TypeError: only 0-dimensional arrays
can be converted to Python scalars`` whenever ``cluster_selection_epsilon > 0`` triggers its epsilon
search (scikit-learn issue #33219; fix pending in PR #34243). IUPC clusters with epsilon 0.5, so we
let scikit-learn build the mutual-reachability single-linkage tree (the expensive part, fitted with
epsilon 0 where it works) and select clusters here, following Campello et al. (2013) for the
condensed tree and excess-of-mass selection, and Malzer & Baum (2020) for the epsilon merge.
With epsilon 0 the labels equal scikit-learn's (checked in the tests).
"""

from __future__ import annotations

from collections import deque

import numpy as np


def _lambda(distance: float) -> float:
    return 1.0 / distance if distance > 0.0 else np.inf


def condense_tree(slt: np.ndarray, n_points: int, min_cluster_size: int):
    """Condense a single-linkage tree (rows: left, right, distance, size) into cluster records.

    Returns (cluster_parent, cluster_birth, point_cluster, point_lambda, child_records) where
    clusters are numbered 0.. (0 = root) breadth-first, so a parent precedes its children;
    `child_records` is a list of (parent, child_cluster, lambda, size).
    """
    left = slt["left_node"].astype(np.int64)
    right = slt["right_node"].astype(np.int64)
    dist = slt["value"].astype(np.float64)
    size = np.ones(2 * n_points - 1, dtype=np.int64)
    size[n_points:] = slt["cluster_size"]

    cluster_parent = [-1]
    cluster_birth = [0.0]
    point_cluster = np.full(n_points, -1, dtype=np.int64)
    point_lambda = np.zeros(n_points, dtype=np.float64)
    child_records: list[tuple[int, int, float, int]] = []

    def fall_out(node: int, cluster: int, lam: float) -> None:
        # Every point below `node` leaves `cluster` at `lam`.
        stack = [node]
        while stack:
            nd = stack.pop()
            if nd < n_points:
                point_cluster[nd] = cluster
                point_lambda[nd] = lam
            else:
                stack.append(int(left[nd - n_points]))
                stack.append(int(right[nd - n_points]))

    root = 2 * n_points - 2
    # Breadth-first, so clusters are numbered as scikit-learn numbers them (same label ids).
    queue = deque([(root, 0)])  # (tree node, condensed cluster it belongs to)
    while queue:
        node, cluster = queue.popleft()
        if node < n_points:  # a lone point still in the cluster at distance 0
            point_cluster[node] = cluster
            point_lambda[node] = np.inf
            continue
        row = node - n_points
        lam = _lambda(dist[row])
        a, b = int(left[row]), int(right[row])
        big_a, big_b = size[a] >= min_cluster_size, size[b] >= min_cluster_size
        if big_a and big_b:
            for child in (a, b):
                new = len(cluster_parent)
                cluster_parent.append(cluster)
                cluster_birth.append(lam)
                child_records.append((cluster, new, lam, int(size[child])))
                queue.append((child, new))
        else:
            for child, big in ((a, big_a), (b, big_b)):
                if big:
                    queue.append((child, cluster))
                else:
                    fall_out(child, cluster, lam)
    return np.array(cluster_parent), np.array(cluster_birth), point_cluster, point_lambda, child_records


def select_clusters(
    slt: np.ndarray, n_points: int, min_cluster_size: int, cluster_selection_epsilon: float = 0.0
) -> np.ndarray:
    """Cluster label per point (-1 = noise) by excess of mass, then the epsilon merge."""
    if n_points < 2:
        return np.full(n_points, -1, dtype=np.int64)
    parent, birth, p_cluster, p_lambda, records = condense_tree(slt, n_points, min_cluster_size)
    n_clusters = len(parent)
    if n_clusters == 1:  # only the root: allow_single_cluster is off, so all noise
        return np.full(n_points, -1, dtype=np.int64)

    # Stability: sum over what leaves a cluster of (lambda_leave - lambda_birth) * size.
    stability = np.zeros(n_clusters)
    finite = np.isfinite(p_lambda)
    np.add.at(stability, p_cluster, np.where(finite, p_lambda, 0.0) - birth[p_cluster])
    if not finite.all():
        stability[np.unique(p_cluster[~finite])] = np.inf
    children: list[list[int]] = [[] for _ in range(n_clusters)]
    for par, child, lam, sz in records:
        stability[par] += (lam - birth[par]) * sz
        children[par].append(child)

    # Excess of mass, bottom-up (children have larger ids than their parent); the root is never
    # selected, as with allow_single_cluster=False.
    selected = np.zeros(n_clusters, dtype=bool)
    best = stability.copy()
    for c in range(n_clusters - 1, 0, -1):
        sub = sum(best[k] for k in children[c])
        if children[c] and sub > stability[c]:
            best[c] = sub
        else:
            selected[c] = True
            _clear_below(children, c, selected)

    if cluster_selection_epsilon > 0.0:
        _epsilon_merge(selected, parent, birth, children, cluster_selection_epsilon)

    # Each cluster inherits the nearest selected ancestor (or itself); labels in id order.
    owner = np.full(n_clusters, -1, dtype=np.int64)
    for c in range(1, n_clusters):
        owner[c] = c if selected[c] else owner[parent[c]]
    label_of = np.full(n_clusters + 1, -1, dtype=np.int64)
    label_of[np.flatnonzero(selected)] = np.arange(int(selected.sum()))
    return label_of[owner[p_cluster]]


def _clear_below(children: list[list[int]], c: int, selected: np.ndarray) -> None:
    stack = list(children[c])
    while stack:
        k = stack.pop()
        selected[k] = False
        stack.extend(children[k])


def _epsilon_merge(
    selected: np.ndarray, parent: np.ndarray, birth: np.ndarray, children: list[list[int]], eps: float
) -> None:
    """Replace selected clusters born below `eps` by their first ancestor born above it."""
    with np.errstate(divide="ignore"):
        birth_eps = 1.0 / birth
    for c in np.flatnonzero(selected):
        if not selected[c] or birth_eps[c] >= eps:
            continue
        node = c
        while True:
            up = parent[node]
            if up == 0:  # never merge into the root (allow_single_cluster=False)
                break
            node = up
            if birth_eps[node] > eps:
                break
        if node != c:
            _clear_below(children, node, selected)
            selected[node] = True
