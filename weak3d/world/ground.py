"""Ground surfaces from prioritised axis-aligned rectangles: roads, sidewalks with curbs, lawns.

Rectangles are painted in order (later wins) onto the grid of all their edges, so every boundary
is exact and straight; height steps between neighbouring cells become vertical faces (curbs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from weak3d.classes import RAW_INDEX
from weak3d.world.mesh import MATERIAL_INDEX, MATERIALS, Mesh, concat, empty_mesh


@dataclass
class Rect:
    x0: float
    x1: float
    y0: float
    y1: float
    cls: str
    mat: str
    z: float


@dataclass
class Ground:
    """The painted grid: cell edges xs, ys and per-cell class, material and height."""

    rects: list[Rect] = field(default_factory=list)
    xs: np.ndarray | None = None
    ys: np.ndarray | None = None
    cls: np.ndarray | None = None
    mat: np.ndarray | None = None
    z: np.ndarray | None = None

    def add(self, x0: float, x1: float, y0: float, y1: float, cls: str, mat: str, z: float) -> None:
        r = Rect(min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1), cls, mat, z)
        if self.rects:  # clip to the first rectangle, the region
            f = self.rects[0]
            r.x0, r.x1, r.y0, r.y1 = max(r.x0, f.x0), min(r.x1, f.x1), max(r.y0, f.y0), min(r.y1, f.y1)
            if r.x1 <= r.x0 or r.y1 <= r.y0:
                return
        self.rects.append(r)

    def paint(self) -> None:
        xs = np.unique(np.round([v for r in self.rects for v in (r.x0, r.x1)], 4))
        ys = np.unique(np.round([v for r in self.rects for v in (r.y0, r.y1)], 4))
        cx, cy = (xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2
        CX, CY = np.meshgrid(cx, cy, indexing="ij")
        cls = np.zeros(CX.shape, np.uint8)
        mat = np.zeros(CX.shape, np.uint8)
        z = np.full(CX.shape, np.nan)
        for r in self.rects:
            m = (CX > r.x0) & (CX < r.x1) & (CY > r.y0) & (CY < r.y1)
            cls[m], mat[m], z[m] = RAW_INDEX[r.cls], MATERIAL_INDEX[r.mat], r.z
        if np.isnan(z).any():
            raise ValueError("ground: the first rectangle must cover the whole region")
        self.xs, self.ys, self.cls, self.mat, self.z = xs, ys, cls, mat, z

    def cell_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i = np.clip(np.searchsorted(self.xs, x) - 1, 0, len(self.xs) - 2)
        j = np.clip(np.searchsorted(self.ys, y) - 1, 0, len(self.ys) - 2)
        return i, j

    def height_at(self, x, y) -> np.ndarray:
        i, j = self.cell_of(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return self.z[i, j]

    def class_at(self, x, y) -> np.ndarray:
        i, j = self.cell_of(np.asarray(x, np.float64), np.asarray(y, np.float64))
        return self.cls[i, j]

    def mesh(self) -> Mesh:
        """Top quads of all cells plus the vertical faces where neighbouring heights differ."""
        xs, ys, z = self.xs, self.ys, self.z
        nx, ny = z.shape
        I, J = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        I, J = I.ravel(), J.ravel()
        top = _quads(
            np.stack([xs[I], ys[J], z[I, J]], -1),
            np.stack([xs[I + 1], ys[J], z[I, J]], -1),
            np.stack([xs[I + 1], ys[J + 1], z[I, J]], -1),
            np.stack([xs[I], ys[J + 1], z[I, J]], -1),
            self.cls[I, J],
            self.mat[I, J],
        )
        parts = [top]
        # steps between x-neighbours, then y-neighbours; the face belongs to the higher cell
        for axis in (0, 1):
            za = z[:-1, :] if axis == 0 else z[:, :-1]
            zb = z[1:, :] if axis == 0 else z[:, 1:]
            ii, jj = np.nonzero(np.abs(za - zb) > 1e-6)
            if not len(ii):
                continue
            hi_a = za[ii, jj] > zb[ii, jj]
            hi_i = np.where(hi_a, ii, ii + 1) if axis == 0 else ii
            hi_j = jj if axis == 0 else np.where(hi_a, jj, jj + 1)
            z0 = np.minimum(za[ii, jj], zb[ii, jj])
            z1 = np.maximum(za[ii, jj], zb[ii, jj])
            hcls = self.cls[hi_i, hi_j]
            hmat = self.mat[hi_i, hi_j]
            hmat = np.where(hcls == RAW_INDEX["flat.sidewalk"], MATERIAL_INDEX["curb"], hmat).astype(np.uint8)
            if axis == 0:
                x = xs[ii + 1]
                a, b = ys[jj], ys[jj + 1]
                p = [
                    np.stack([x, a, z0], -1),
                    np.stack([x, b, z0], -1),
                    np.stack([x, b, z1], -1),
                    np.stack([x, a, z1], -1),
                ]
            else:
                y = ys[jj + 1]
                a, b = xs[ii], xs[ii + 1]
                p = [
                    np.stack([a, y, z0], -1),
                    np.stack([b, y, z0], -1),
                    np.stack([b, y, z1], -1),
                    np.stack([a, y, z1], -1),
                ]
            parts.append(_quads(*p, hcls, hmat))
        return concat(parts) if parts else empty_mesh()


def _quads(p0, p1, p2, p3, cls: np.ndarray, mat: np.ndarray) -> Mesh:
    n = len(p0)
    V = np.stack([p0, p1, p2, p3], 1).reshape(-1, 3)
    base = np.arange(n)[:, None] * 4
    T = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]])
    order = np.argsort(np.concatenate([np.arange(n), np.arange(n)]), kind="stable")
    T = T[order]
    tcls = np.repeat(cls, 2).astype(np.uint8)
    tmat = np.repeat(mat, 2).astype(np.uint8)
    rgb = np.array([MATERIALS[name].rgb for name in MATERIALS], np.uint8)[tmat]
    return Mesh(V, T.astype(np.int64), tcls, tmat, rgb, np.full(2 * n, -1, np.int32))
