"""Triangle meshes with per-triangle class, instance and material, and the primitives built from them.

A Mesh is plain arrays, so concatenating hundreds of parts and moving them per time step stays
vectorised. Winding order is not relied on anywhere: the renderer faces every normal to the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weak3d.classes import RAW_INDEX


@dataclass(frozen=True)
class Material:
    """Appearance to the camera and to the LiDAR."""

    rgb: tuple[int, int, int]
    reflectivity: float  # LiDAR intensity at normal incidence, 0..255 like nuScenes
    roughness: float = 0.0  # extra range noise (m): grass and leaves are not flat surfaces
    dropout: float = 0.0  # probability of no return (glass, dark paint)
    transmission: float = 0.0  # probability a LiDAR ray passes through (glass, mesh fences)
    penetration: float = 0.0  # mean extra depth (m) a ray travels into foliage before returning
    texture: float = 0.1  # relative brightness variation in the image
    texture_scale: float = 0.3  # metres per texture cell
    tiles: float = 0.0  # >0: paving-slab seams of this size (m)


MATERIALS: dict[str, Material] = {
    "asphalt": Material((72, 72, 76), 9, texture=0.12, texture_scale=0.08),
    "asphalt_patch": Material((52, 52, 55), 6, texture=0.1, texture_scale=0.15),
    "paint": Material((225, 225, 215), 70, texture=0.06),
    "paint_yellow": Material((215, 180, 50), 60, texture=0.06),
    "concrete": Material((165, 160, 150), 22, texture=0.1, texture_scale=0.05, tiles=1.2),
    "curb": Material((180, 178, 170), 25, texture=0.08),
    "paving": Material((150, 120, 105), 18, texture=0.12, texture_scale=0.1, tiles=0.6),
    "grass": Material((78, 118, 52), 12, roughness=0.03, texture=0.3, texture_scale=0.25),
    "dry_grass": Material((128, 122, 70), 14, roughness=0.03, texture=0.3, texture_scale=0.3),
    "soil": Material((112, 90, 68), 10, roughness=0.02, texture=0.25, texture_scale=0.2),
    "leaves": Material(
        (52, 96, 42), 16, roughness=0.05, dropout=0.1, penetration=0.35, texture=0.35, texture_scale=0.25
    ),
    "hedge": Material(
        (46, 84, 40), 14, roughness=0.04, dropout=0.05, penetration=0.15, texture=0.3, texture_scale=0.15
    ),
    "bark": Material((88, 70, 55), 12, roughness=0.01, texture=0.2, texture_scale=0.1),
    "facade": Material((190, 180, 165), 28, texture=0.08, texture_scale=0.5),
    "brick": Material((150, 82, 62), 20, texture=0.15, texture_scale=0.12),
    "window": Material((70, 88, 105), 6, dropout=0.45, texture=0.05),
    "roof": Material((95, 90, 88), 15, texture=0.1),
    "metal": Material((125, 128, 132), 35, texture=0.06),
    "dark_metal": Material((55, 58, 60), 18, texture=0.05),
    "sign_face": Material((230, 230, 230), 220, texture=0.03),
    "chainlink": Material((140, 142, 140), 25, transmission=0.7, texture=0.2, texture_scale=0.05),
    "wood": Material((120, 92, 60), 18, texture=0.15, texture_scale=0.1),
    "paint_car": Material((200, 200, 200), 20, dropout=0.03, texture=0.03, texture_scale=1.0),
    "glass": Material((40, 48, 56), 5, dropout=0.35, transmission=0.45, texture=0.03),
    "tyre": Material((28, 28, 30), 4, dropout=0.1, texture=0.05),
    "lamp": Material((235, 220, 190), 120, texture=0.02),
    "reflector": Material((210, 40, 30), 200, texture=0.02),
    "cloth": Material((90, 90, 110), 12, texture=0.15, texture_scale=0.05),
    "skin": Material((200, 160, 130), 14, texture=0.05),
    "hivis": Material((225, 230, 40), 150, texture=0.05),
    "cone_orange": Material((235, 95, 25), 40, texture=0.04),
    "cone_band": Material((240, 240, 240), 200, texture=0.02),
    "plastic_red": Material((200, 40, 35), 30, texture=0.05),
    "plastic_white": Material((230, 230, 225), 45, texture=0.05),
    "yellow_machine": Material((230, 175, 30), 32, texture=0.06),
    "debris": Material((120, 110, 95), 15, roughness=0.02, texture=0.3, texture_scale=0.05),
}
MATERIAL_NAMES: tuple[str, ...] = tuple(MATERIALS)
MATERIAL_INDEX: dict[str, int] = {name: i for i, name in enumerate(MATERIAL_NAMES)}


def material_table(field: str) -> np.ndarray:
    """One float32 value per material id, for vectorised lookups by triangle material."""
    return np.array([getattr(MATERIALS[n], field) for n in MATERIAL_NAMES], dtype=np.float32)


@dataclass
class Mesh:
    """Vertices (n, 3) float64 and triangles (m, 3) int64 with per-triangle attributes."""

    V: np.ndarray
    T: np.ndarray
    cls: np.ndarray  # (m,) uint8 raw lidarseg index
    mat: np.ndarray  # (m,) uint8 material id
    rgb: np.ndarray  # (m, 3) uint8 albedo (material colour, or a per-instance paint colour)
    inst: np.ndarray  # (m,) int32 instance id, -1 for stuff

    @property
    def n_tris(self) -> int:
        return len(self.T)

    def with_instance(self, inst: int) -> Mesh:
        return Mesh(self.V, self.T, self.cls, self.mat, self.rgb, np.full(len(self.T), inst, np.int32))

    def with_class(self, raw: int) -> Mesh:
        return Mesh(self.V, self.T, np.full(len(self.T), raw, np.uint8), self.mat, self.rgb, self.inst)

    def moved(self, yaw: float, tx: float, ty: float, tz: float = 0.0) -> Mesh:
        """Rotate about z by yaw, then translate."""
        return Mesh(rotate_z(self.V, yaw) + (tx, ty, tz), self.T, self.cls, self.mat, self.rgb, self.inst)


def empty_mesh() -> Mesh:
    return Mesh(
        np.zeros((0, 3)),
        np.zeros((0, 3), np.int64),
        np.zeros(0, np.uint8),
        np.zeros(0, np.uint8),
        np.zeros((0, 3), np.uint8),
        np.zeros(0, np.int32),
    )


def rotate_z(V: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.array(V, dtype=np.float64, copy=True)
    out[:, 0] = c * V[:, 0] - s * V[:, 1]
    out[:, 1] = s * V[:, 0] + c * V[:, 1]
    return out


def part(
    V: np.ndarray, T: np.ndarray, cls: str | int, mat: str, rgb: tuple | np.ndarray | None = None
) -> Mesh:
    """Wrap raw geometry with one class and material (optionally an albedo override)."""
    raw = RAW_INDEX[cls] if isinstance(cls, str) else int(cls)
    m = len(T)
    colour = np.asarray(MATERIALS[mat].rgb if rgb is None else rgb, dtype=np.float64)
    return Mesh(
        np.asarray(V, dtype=np.float64),
        np.asarray(T, dtype=np.int64),
        np.full(m, raw, np.uint8),
        np.full(m, MATERIAL_INDEX[mat], np.uint8),
        np.tile(np.clip(colour, 0, 255).astype(np.uint8), (m, 1)),
        np.full(m, -1, np.int32),
    )


def concat(meshes: list[Mesh]) -> Mesh:
    meshes = [m for m in meshes if m.n_tris]
    if not meshes:
        return empty_mesh()
    offsets = np.cumsum([0] + [len(m.V) for m in meshes[:-1]])
    return Mesh(
        np.concatenate([m.V for m in meshes]),
        np.concatenate([m.T + o for m, o in zip(meshes, offsets, strict=False)]),
        np.concatenate([m.cls for m in meshes]),
        np.concatenate([m.mat for m in meshes]),
        np.concatenate([m.rgb for m in meshes]),
        np.concatenate([m.inst for m in meshes]),
    )


# --- primitives: each returns (V, T) ---

_BOX_T = np.array(
    [
        [0, 2, 1],
        [0, 3, 2],
        [4, 5, 6],
        [4, 6, 7],
        [0, 1, 5],
        [0, 5, 4],
        [1, 2, 6],
        [1, 6, 5],
        [2, 3, 7],
        [2, 7, 6],
        [3, 0, 4],
        [3, 4, 7],
    ],
    dtype=np.int64,
)


def box(center: tuple[float, float, float], size: tuple[float, float, float], yaw: float = 0.0):
    """Box of size (sx, sy, sz) centred at center, rotated about z by yaw."""
    sx, sy, sz = (s / 2 for s in size)
    V = np.array(
        [
            [-sx, -sy, -sz],
            [sx, -sy, -sz],
            [sx, sy, -sz],
            [-sx, sy, -sz],
            [-sx, -sy, sz],
            [sx, -sy, sz],
            [sx, sy, sz],
            [-sx, sy, sz],
        ]
    )
    return rotate_z(V, yaw) + center, _BOX_T


def box_between(z0: float, z1: float, x0: float, x1: float, y0: float, y1: float):
    return box(((x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2), (x1 - x0, y1 - y0, z1 - z0))


def prism_xz(profile: list[tuple[float, float]], y0: float, y1: float):
    """Convex polygon in the x-z plane extruded from y0 to y1 (vehicle side silhouettes)."""
    P = np.asarray(profile, dtype=np.float64)
    n = len(P)
    V = np.concatenate(
        [
            np.column_stack([P[:, 0], np.full(n, y0), P[:, 1]]),
            np.column_stack([P[:, 0], np.full(n, y1), P[:, 1]]),
        ]
    )
    tris = [[0, i, i + 1] for i in range(1, n - 1)] + [[n, n + i + 1, n + i] for i in range(1, n - 1)]
    for i in range(n):
        j = (i + 1) % n
        tris += [[i, j, n + j], [i, n + j, n + i]]
    return V, np.array(tris, dtype=np.int64)


def frustum(r0: float, r1: float, h: float, segments: int = 12, caps: bool = True):
    """Cylinder (r0 == r1) or cone frustum along +z from z=0 to z=h, centred on the z axis."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring0 = np.column_stack([r0 * np.cos(a), r0 * np.sin(a), np.zeros(segments)])
    ring1 = np.column_stack([r1 * np.cos(a), r1 * np.sin(a), np.full(segments, h)])
    V = np.concatenate([ring0, ring1, [[0, 0, 0], [0, 0, h]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    T = [np.column_stack([i, j, segments + j]), np.column_stack([i, segments + j, segments + i])]
    if caps:
        c0, c1 = 2 * segments, 2 * segments + 1
        T += [
            np.column_stack([np.full(segments, c0), j, i]),
            np.column_stack([np.full(segments, c1), segments + i, segments + j]),
        ]
    return V, np.concatenate(T).astype(np.int64)


def cylinder_y(center: tuple[float, float, float], radius: float, width: float, segments: int = 12):
    """Cylinder with its axis along y (wheels)."""
    V, T = frustum(radius, radius, width, segments)
    V = V[:, [0, 2, 1]] - (0, width / 2, 0)  # swap y and z: axis now along y
    return V + center, T


def ellipsoid(
    center,
    radii,
    rng: np.random.Generator | None = None,
    jitter: float = 0.0,
    rings: int = 6,
    segments: int = 10,
):
    """UV ellipsoid; jitter > 0 roughens it (tree crowns, bushes)."""
    th = np.linspace(0, np.pi, rings + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    TH, PH = np.meshgrid(th, ph, indexing="ij")
    unit = np.column_stack(
        [(np.sin(TH) * np.cos(PH)).ravel(), (np.sin(TH) * np.sin(PH)).ravel(), np.cos(TH).ravel()]
    )
    unit = np.concatenate([unit, [[0, 0, 1], [0, 0, -1]]])
    if rng is not None and jitter > 0:
        unit = unit * (1 + rng.uniform(-jitter, jitter, (len(unit), 1)))
    V = unit * np.asarray(radii) + np.asarray(center)
    tris = []
    for r in range(rings - 2):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            tris += [[a, b, b + segments], [a, b + segments, a + segments]]
    top, bot = len(unit) - 2, len(unit) - 1
    last = (rings - 2) * segments
    for s in range(segments):
        tris.append([top, (s + 1) % segments, s])
        tris.append([bot, last + s, last + (s + 1) % segments])
    return V, np.array(tris, dtype=np.int64)


def quad(p0, p1, p2, p3):
    return np.array([p0, p1, p2, p3], dtype=np.float64), np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)


def ring_of_boxes(radius: float, thickness: float, width: float, n: int = 12):
    """A thin ring in the x-z plane (bicycle wheels: a tyre, no solid disc)."""
    Vs, Ts, off = [], [], 0
    seg = 2 * np.pi * radius / n * 1.05
    for k in range(n):
        a = 2 * np.pi * k / n
        V, T = box((0, 0, 0), (seg, width, thickness))
        # rotate in x-z plane so the segment is tangent to the circle
        c, s = np.cos(a), np.sin(a)
        R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        V = V @ R.T + (radius * np.sin(a), 0, radius * np.cos(a))
        Vs.append(V)
        Ts.append(T + off)
        off += len(V)
    return np.concatenate(Vs), np.concatenate(Ts)
