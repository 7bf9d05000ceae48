"""IUPC pre-segmentation: polar-cell ground fitting plus HDBSCAN clusters of the rest.

Pure functions on arrays. The reader supplies the keyframe points, the previous sweeps already
transformed into the keyframe LiDAR frame, and the camera-visibility mask of the keyframe points.

Segment ids (one int32 array over the keyframe, raw point order):
- ``-1``: no segment (outside the camera FOV, or HDBSCAN noise);
- ground points: ``segment_id == cell_id`` (one segment per polar cell);
- non-ground cluster ``k``: ``segment_id == cluster_offset + k`` with
  ``cluster_offset = n_radial * n_angular`` where ``n_radial`` = 1 + the largest radial index of
  the visible keyframe points, so ids never collide with cell ids.
``ground_mask`` says which kind a segment is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from weak3d.stages.hdbscan_mst import single_linkage_tree
from weak3d.stages.hdbscan_select import select_clusters
from weak3d.stages.ransac_numba import ransac_plane

OPEN3D_PROBABILITY = 0.99999999  # segment_plane's default early-stop probability


@dataclass(frozen=True)
class PresegmentConfig:
    """Pre-segmentation settings; defaults are those of the IUPC release (preseg.yaml)."""

    radial_size: float = 5.0  # metres per radial cell
    angular_size: float = 0.1  # fraction of pi per angular sector (18 degrees)
    min_points: int = 100  # ps_min_num: a fit needs more candidates than this
    normal_th: float = 0.75  # ps_norm_th: |n.z| must exceed this
    distance_th: float = 0.2  # ps_dis_th: RANSAC and inlier distance, metres
    outlier_th: float = 0.1  # ps_outlier_th: barycentre check when outliers exceed this fraction
    fitness_th: float = 0.5  # first attempt: RANSAC inliers / candidates
    z_std_th: float = 0.75  # above this std(z), points above the cell mean are not candidates
    max_attempts: int = 3
    ransac_n: int = 10
    ransac_iterations: int = 1000
    # The release demands a flatter plane (|n.z| > 0.95) in the cells with radial index < 2 and
    # angular index 4-5: r < 7.5 m, theta in [-0.65, -0.45] pi, i.e. right behind the nuScenes ego
    # (LiDAR y forward). Tied to that vehicle's geometry; kept on by default because the embedded
    # world uses the same rig, and it only tightens a check. strict_angular=() disables it.
    strict_radial_below: int = 2
    strict_angular: tuple[int, ...] = (4, 5)
    strict_normal_th: float = 0.95
    sweep_ego_box: float = 1.0  # sweep points with |x| and |y| below this hit the ego vehicle
    min_cluster_size: int = 5
    cluster_selection_epsilon: float = 0.5
    seed: int = 0
    # "numba" (default): weak3d.stages.ransac_numba, open3d's segment_plane procedure with other
    # random draws, ~10x faster on one core; its fits differ from open3d's about as much as
    # open3d's differ between seeds (bench/stage_throughput.py). "open3d": PointCloud.segment_plane,
    # the release's RANSAC (open3d is then imported).
    ransac: str = "numba"


def n_angular(cfg: PresegmentConfig = PresegmentConfig()) -> int:
    """Number of angular sectors (20 for 0.1*pi)."""
    return int(round(2.0 / cfg.angular_size))


def polar_indices(
    xyz: np.ndarray, cfg: PresegmentConfig = PresegmentConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Radial and angular index per point, as the release computes them.

    Indices are rounded, not floored (radial cell 0 is r < 2.5 m). The angular index is
    round(theta / (0.1*pi)) shifted by +n/2 so theta = -pi maps to 0; the index n (theta = +pi)
    wraps to 0. The release shifts by the per-scan minimum instead, which equals this fixed shift
    whenever a scan has a point near theta = -pi; the fixed shift keeps ids stable across scans.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    theta = np.arctan2(xyz[:, 1], xyz[:, 0])
    n_ang = n_angular(cfg)
    radial = np.rint(r / cfg.radial_size).astype(np.int64)
    angular = np.rint(theta / (cfg.angular_size * np.pi)).astype(np.int64) + n_ang // 2
    angular[angular >= n_ang] -= n_ang
    angular[angular < 0] += n_ang  # theta exactly -pi rounds to -n/2 already; kept for safety
    return radial, angular


def polar_cells(xyz: np.ndarray, grid: tuple[float, float] = (5.0, 0.1)) -> np.ndarray:
    """Cell id per point: radial_index * n_angular + angular_index (int32)."""
    cfg = PresegmentConfig(radial_size=grid[0], angular_size=grid[1])
    radial, angular = polar_indices(xyz, cfg)
    return (radial * n_angular(cfg) + angular).astype(np.int32)


def _cell_seed(seed: int, cell: int, attempt: int) -> int:
    # SeedSequence mixes the three numbers well; open3d wants a non-negative int.
    return int(np.random.SeedSequence([seed, cell, attempt]).generate_state(1)[0] & 0x7FFFFFFF)


@contextlib.contextmanager
def _open3d_context(cfg: PresegmentConfig) -> Iterator[None]:
    """With ransac "open3d", run open3d on one thread inside the block; otherwise nothing.

    open3d's RANSAC runs on its own thread pool (sized by the core count, not OMP_NUM_THREADS);
    with more than one thread the seeded fit changes from run to run (a few points of a cell), so
    the fits run on one thread. The workflow parallelises over scenes instead. open3d is imported
    only here and in `_fit_plane` (~0.5 s per job otherwise; the default backend does not need it).
    """
    if cfg.ransac != "open3d":
        yield
        return
    import open3d as o3d

    before = o3d.utility.get_max_threads()
    o3d.utility.set_max_threads(1)
    try:
        yield
    finally:
        o3d.utility.set_max_threads(before)


def _fit_plane(points: np.ndarray, seed: int, cfg: PresegmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded RANSAC; returns the unit-normal plane (a, b, c, d) and inlier indices."""
    if cfg.ransac == "numba":
        p = np.ascontiguousarray(points, dtype=np.float64)
        return ransac_plane(p, seed, cfg.distance_th, cfg.ransac_n, cfg.ransac_iterations, OPEN3D_PROBABILITY)
    if cfg.ransac != "open3d":
        raise ValueError(f"presegment ransac must be 'numba' or 'open3d', got {cfg.ransac!r}")
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    o3d.utility.random.seed(seed)
    model, inliers = pcd.segment_plane(
        distance_threshold=cfg.distance_th, ransac_n=cfg.ransac_n, num_iterations=cfg.ransac_iterations
    )
    model = np.asarray(model, dtype=np.float64)
    model = model / np.linalg.norm(model[:3])
    return model, np.asarray(inliers, dtype=np.int64)


def fit_cell_ground(
    points: np.ndarray, cell: int, cfg: PresegmentConfig, strict: bool = False
) -> np.ndarray | None:
    """Ground inlier mask over one cell's points, or None when the cell has no ground."""
    z = points[:, 2]
    candidates = np.arange(len(points))
    if z.std() >= cfg.z_std_th:
        # Tall objects dominate the cell: fit only on its lower half.
        candidates = candidates[z <= z.mean()]
    normal_th = cfg.strict_normal_th if strict else cfg.normal_th
    for attempt in range(cfg.max_attempts):
        if len(candidates) <= cfg.min_points:
            return None
        model, inl = _fit_plane(points[candidates], _cell_seed(cfg.seed, cell, attempt), cfg)
        if attempt == 0 and len(inl) / len(candidates) < cfg.fitness_th:
            return None
        # Inliers are recomputed over all the cell's points, excluded candidates included.
        ground = np.abs(points @ model[:3] + model[3]) <= cfg.distance_th
        ok = abs(model[2]) > normal_th
        n_out = len(points) - int(ground.sum())
        if ok and n_out > cfg.outlier_th * len(points):
            # The ground must not lie above the rest of the cell (rejects roofs, car tops).
            ok = z[ground].mean() <= z[~ground].mean()
        if ok:
            return ground
        candidates = np.delete(candidates, inl)
    return None


def fit_ground(
    keyframe_xyz: np.ndarray, sweeps_xyz: np.ndarray | None, cfg: PresegmentConfig = PresegmentConfig()
) -> np.ndarray:
    """Ground mask over `keyframe_xyz` from per-cell RANSAC on keyframe + sweep points.

    `keyframe_xyz` (N, 3+) are the points to label (the caller passes the camera-visible ones);
    `sweeps_xyz` (M, 3+) are earlier sweeps in the keyframe frame, used only to fit the planes.
    Same inputs and seed give the same mask.
    """
    kf = np.asarray(keyframe_xyz, dtype=np.float64)[:, :3]
    if sweeps_xyz is None or len(sweeps_xyz) == 0:
        sw = np.zeros((0, 3))
    else:
        sw = np.asarray(sweeps_xyz, dtype=np.float64)[:, :3]
        # Returns from the ego vehicle's own body would pull the plane up.
        near = (np.abs(sw[:, 0]) < cfg.sweep_ego_box) & (np.abs(sw[:, 1]) < cfg.sweep_ego_box)
        sw = sw[~near]
    pts = np.concatenate([kf, sw])
    radial, angular = polar_indices(pts, cfg)
    cells = radial * n_angular(cfg) + angular
    ground = np.zeros(len(pts), dtype=bool)
    # Stable sort by cell; int16 ids (when they fit) make numpy use its much faster radix sort.
    small = cells.max() < np.iinfo(np.int16).max
    order = np.argsort(cells.astype(np.int16) if small else cells, kind="stable")
    by_cell = pts[order]  # each cell's points are one contiguous block, in input order
    uniq, starts = np.unique(cells[order], return_index=True)
    bounds = np.append(starts, len(order))
    kf_before = np.concatenate([[0], np.cumsum(order < len(kf))])  # keyframe points before a position
    with _open3d_context(cfg):
        for i, cell in enumerate(uniq):
            lo, hi = bounds[i], bounds[i + 1]
            if hi - lo <= cfg.min_points or kf_before[hi] == kf_before[lo]:
                continue
            r_idx, a_idx = divmod(int(cell), n_angular(cfg))
            strict = r_idx < cfg.strict_radial_below and a_idx in cfg.strict_angular
            mask = fit_cell_ground(by_cell[lo:hi], int(cell), cfg, strict)
            if mask is not None:
                ground[order[lo:hi][mask]] = True
    return ground[: len(kf)]


def cluster_nonground(
    xyz: np.ndarray, mask: np.ndarray, min_cluster_size: int = 5, cluster_selection_epsilon: float = 0.5
) -> np.ndarray:
    """HDBSCAN cluster id per point over the points in `mask` (int32; -1 = noise or not in mask).

    Euclidean on raw xyz, min_samples = min_cluster_size (the hdbscan/sklearn default). The
    single-linkage tree is scikit-learn's, built by `hdbscan_mst` (its Prim loop in numba, same
    tree, ~5x faster); clusters are selected in `hdbscan_select` because scikit-learn's own epsilon
    search fails on NumPy >= 2.4 (see there). Nothing is random: same input, same ids.
    """
    xyz = np.asarray(xyz, dtype=np.float64)[:, :3]
    mask = np.asarray(mask, dtype=bool)
    out = np.full(len(xyz), -1, dtype=np.int32)
    if mask.sum() < max(min_cluster_size, 2):
        return out
    pts = xyz[mask]
    slt = single_linkage_tree(pts, min_cluster_size)
    # With epsilon 0 this selection gives scikit-learn's labels_ (tests/stages/test_hdbscan_select.py).
    out[mask] = select_clusters(slt, len(pts), min_cluster_size, cluster_selection_epsilon)
    return out


def presegment(
    keyframe_xyz: np.ndarray,
    sweeps_xyz: np.ndarray | None,
    visible_mask: np.ndarray,
    cfg: PresegmentConfig = PresegmentConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground mask, polar cell id and segment id per keyframe point (see the module docstring).

    Only camera-visible keyframe points are labelled ground or clustered; `cell_id` is given for
    every point. Returns (ground_mask bool (N,), cell_id int32 (N,), segment_id int32 (N,)).
    """
    xyz = np.asarray(keyframe_xyz)[:, :3]
    visible = np.asarray(visible_mask, dtype=bool)
    if visible.shape != (len(xyz),):
        raise ValueError(f"visible_mask has shape {visible.shape}, expected ({len(xyz)},)")
    radial, angular = polar_indices(xyz, cfg)
    cell_id = (radial * n_angular(cfg) + angular).astype(np.int32)
    ground = np.zeros(len(xyz), dtype=bool)
    if visible.any():
        ground[visible] = fit_ground(xyz[visible], sweeps_xyz, cfg)
    clusters = cluster_nonground(xyz, visible & ~ground, cfg.min_cluster_size, cfg.cluster_selection_epsilon)
    segment = np.full(len(xyz), -1, dtype=np.int32)
    segment[ground] = cell_id[ground]
    if visible.any():
        offset = (int(radial[visible].max()) + 1) * n_angular(cfg)
        has = clusters >= 0
        segment[has] = clusters[has] + offset
    return ground, cell_id, segment
