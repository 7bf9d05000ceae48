"""Plane RANSAC in numba: open3d's PointCloud.segment_plane procedure with other random draws.

Why: on one core open3d's seeded RANSAC is the slowest part of pre-segmentation (ransac_n=10 makes
its early stop rare, so most fits run all 1000 iterations over every point of the cell). This runs
the same procedure (ransac_n distinct random points per iteration, least-squares plane through them
from the covariance determinants, inliers at distance < threshold, best by inlier count then RMSE,
early stop at the same probability, final refit on the best inliers), but its samples come from
numba's generator, not open3d's, so individual fits differ from open3d's about as much as open3d's
own fits differ between seeds (bench/stage_throughput.py measures both). The default since that
measurement (presegment.ransac: numba; config/schema.yaml says why); same seed, same fit.

Speed, without changing which hypothesis wins: hypotheses are counted on float32 copies of the
points (8 SIMD lanes), counting stops once a hypothesis cannot reach the best count any more, and
the RMSE is only computed for a count that ties or beats the best.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _plane_through(px: np.ndarray, py: np.ndarray, pz: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Least-squares plane (a, b, c, d) with unit normal through points `idx`; zeros if degenerate."""
    k = len(idx)
    cx = cy = cz = 0.0
    for i in idx:
        cx += px[i]
        cy += py[i]
        cz += pz[i]
    cx /= k
    cy /= k
    cz /= k
    xx = xy = xz = yy = yz = zz = 0.0
    for i in idx:
        x, y, z = px[i] - cx, py[i] - cy, pz[i] - cz
        xx += x * x
        xy += x * y
        xz += x * z
        yy += y * y
        yz += y * z
        zz += z * z
    det_x = yy * zz - yz * yz
    det_y = xx * zz - xz * xz
    det_z = xx * yy - xy * xy
    det_max = max(det_x, det_y, det_z)
    out = np.zeros(4)
    if not det_max > 0.0:
        return out
    if det_max == det_x:
        a, b, c = det_x, xz * yz - xy * zz, xy * yz - xz * yy
    elif det_max == det_y:
        a, b, c = xz * yz - xy * zz, det_y, xy * xz - yz * xx
    else:
        a, b, c = xy * yz - xz * yy, xy * xz - yz * xx, det_z
    norm = np.sqrt(a * a + b * b + c * c)
    out[0], out[1], out[2] = a / norm, b / norm, c / norm
    out[3] = -(out[0] * cx + out[1] * cy + out[2] * cz)
    return out


# Points are counted in blocks of this many; after each block a hypothesis that can no longer
# reach the best count stops (it could not have won: the result is the same as counting all).
BLOCK = 512


@njit(cache=True)
def _count(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: float, b: float, c: float, e: float, th: float
) -> int:
    """Points (float32 views) within `th` of the plane. Branch-free over range(len(...)), so that the
    compiler vectorises it (8 float32 lanes)."""
    count = 0
    for i in range(len(px)):
        count += abs(a * px[i] + b * py[i] + c * pz[i] + e) < th
    return count


@njit(cache=True)
def _sq_error(
    px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: float, b: float, c: float, e: float, th: float
) -> float:
    """Sum of squared distances of the points within `th` (only for a count that ties or wins)."""
    err = 0.0
    for i in range(len(px)):
        d = abs(a * px[i] + b * py[i] + c * pz[i] + e)
        err += float(d) * float(d) if d < th else 0.0
    return err


@njit(cache=True)
def _inliers(px: np.ndarray, py: np.ndarray, pz: np.ndarray, plane: np.ndarray, th: float) -> np.ndarray:
    d = np.abs(plane[0] * px + plane[1] * py + plane[2] * pz + plane[3])
    return np.flatnonzero(d < th)


@njit(cache=True)
def ransac_plane(
    p: np.ndarray, seed: int, th: float, ransac_n: int, iterations: int, probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """(plane (a, b, c, d) with unit normal, inlier indices) of points p (m, 3), m >= ransac_n.

    Samples and planes are float64; hypotheses are scored on float32 copies of the points centred
    on their mean (|coordinates| of a few metres, so float32 distances are good to ~1e-6 m; only
    points within that of the threshold can count differently than in float64). The final refit
    and inliers are float64.
    """
    m = p.shape[0]
    px = np.ascontiguousarray(p[:, 0])
    py = np.ascontiguousarray(p[:, 1])
    pz = np.ascontiguousarray(p[:, 2])
    mx, my, mz = px.mean(), py.mean(), pz.mean()
    fx = (px - mx).astype(np.float32)
    fy = (py - my).astype(np.float32)
    fz = (pz - mz).astype(np.float32)
    th32 = np.float32(th)
    np.random.seed(seed)
    best = np.zeros(4)
    best_count = 0
    best_rmse = np.inf
    limit = iterations
    sample = np.empty(ransac_n, np.int64)
    it = 0
    while it < limit:
        it += 1
        k = 0
        while k < ransac_n:  # distinct indices
            r = np.random.randint(0, m)
            dup = False
            for q in range(k):
                if sample[q] == r:
                    dup = True
                    break
            if not dup:
                sample[k] = r
                k += 1
        plane = _plane_through(px, py, pz, sample)
        if plane[0] == 0.0 and plane[1] == 0.0 and plane[2] == 0.0:
            continue
        a, b, c = np.float32(plane[0]), np.float32(plane[1]), np.float32(plane[2])
        e = np.float32(plane[3] + plane[0] * mx + plane[1] * my + plane[2] * mz)  # centred frame
        count = 0
        for s in range(0, m, BLOCK):
            count += _count(fx[s : s + BLOCK], fy[s : s + BLOCK], fz[s : s + BLOCK], a, b, c, e, th32)
            if count + (m - s - BLOCK) < best_count:
                break
        if count == 0 or count < best_count:
            continue
        rmse = np.sqrt(_sq_error(fx, fy, fz, a, b, c, e, th32) / count)
        if count > best_count or rmse < best_rmse:
            best, best_count, best_rmse = plane, count, rmse
            miss = 1.0 - (count / m) ** ransac_n  # chance that a sample is not all inliers
            if miss <= 0.0:
                limit = it
            elif miss < 1.0:
                need = np.log(1.0 - probability) / np.log(miss)
                if need < limit:
                    limit = int(np.ceil(need))
    if best_count == 0:
        return np.zeros(4), np.empty(0, np.int64)
    refit = _plane_through(px, py, pz, _inliers(px, py, pz, best, th))
    if refit[0] != 0.0 or refit[1] != 0.0 or refit[2] != 0.0:
        best = refit
    return best, _inliers(px, py, pz, best, th)
