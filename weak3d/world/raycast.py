"""Batched ray casting (open3d RaycastingScene) against a scene at one point in time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from weak3d.world.layout import Scene
from weak3d.world.mesh import Mesh, concat, empty_mesh, rotate_z


def _raycasting_scene(mesh: Mesh) -> o3d.t.geometry.RaycastingScene | None:
    if mesh.n_tris == 0:
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.V.astype(np.float32)), o3d.core.Tensor(mesh.T.astype(np.uint32)))
    return scene


@dataclass
class Hits:
    """Nearest hit per ray; attributes are gathered from the mesh that was hit."""

    t: np.ndarray  # (N,) float32, inf where nothing was hit
    hit: np.ndarray  # (N,) bool
    cls: np.ndarray  # (N,) uint8 raw class (0 where no hit)
    inst: np.ndarray  # (N,) int32 instance (-1 for stuff and misses)
    mat: np.ndarray  # (N,) uint8 material id
    rgb: np.ndarray  # (N, 3) uint8 albedo
    normal: np.ndarray  # (N, 3) float32 triangle normal (unoriented)
    prim: np.ndarray  # (N,) uint32 triangle index into Caster.mesh, n_tris where nothing was hit


def things_at(scene: Scene, t: float) -> Mesh:
    """All movable objects posed at scene time t (seconds)."""
    parts = []
    for th in scene.things:
        mesh = th.make_mesh(t) if th.make_mesh is not None else th.mesh
        x, y = th.xy(t)
        z = float(scene.ground.height_at(x, y))
        parts.append(
            Mesh(rotate_z(mesh.V, th.yaw) + (x, y, z), mesh.T, mesh.cls, mesh.mat, mesh.rgb, mesh.inst)
        )
    return concat(parts) if parts else empty_mesh()


class Caster:
    """Casts rays into the static stuff plus the things posed at the current time.

    One RaycastingScene per time step holding everything: building its BVH costs a few ms, far less
    than a second cast of a camera's 1.44M rays into a separate things-only scene.
    """

    def __init__(self, stuff: Mesh) -> None:
        self.stuff = stuff
        self._set(stuff)

    def _set(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self._scene = _raycasting_scene(mesh)
        # cls, mat, r, g, b packed in one 8-byte word per triangle (+ a zero row for misses), so a
        # camera's 1.44M hits need one gather instead of five
        packed = np.zeros((mesh.n_tris + 1, 8), np.uint8)
        packed[:-1, 0], packed[:-1, 1], packed[:-1, 2:5] = mesh.cls, mesh.mat, mesh.rgb
        self._packed = packed.view(np.uint64).ravel()
        self._inst = np.append(mesh.inst, np.int32(-1))
        self._planes: tuple[np.ndarray, np.ndarray] | None = None
        self._surfaces: np.ndarray | None = None

    def planes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit normal (m + 1, 3) and offset n.v0 (m + 1,) per triangle, float32; zero row last."""
        if self._planes is None:
            V = self.mesh.V[self.mesh.T]
            n = np.cross(V[:, 1] - V[:, 0], V[:, 2] - V[:, 0])
            n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
            c = np.einsum("ij,ij->i", n, V[:, 0])
            self._planes = (
                np.vstack([n, np.zeros((1, 3))]).astype(np.float32),
                np.append(c, 0.0).astype(np.float32),
            )
        return self._planes

    def surfaces(self) -> np.ndarray:
        """Surface id per triangle (+ one for misses): same plane, attributes and instance.

        The two triangles of a quad, or neighbouring ground cells of one kind, are one surface, so
        the adaptive camera trace need not cast rays along their shared edges.
        """
        if self._surfaces is None:
            n, c = self.planes()
            key = np.column_stack(
                [
                    np.round(n[:-1] * 1e4).astype(np.int64),
                    np.round(c[:-1] * 1e3).astype(np.int64),
                    self._packed[:-1].view(np.int64),
                    self.mesh.inst.astype(np.int64),
                ]
            )
            # a 64-bit hash of the key is enough to compare surfaces (wrapping arithmetic)
            mult = np.array(
                [
                    0x9E3779B97F4A7C15,
                    0xC2B2AE3D27D4EB4F,
                    0x165667B19E3779F9,
                    0x27D4EB2F165667C5,
                    0x94D049BB133111EB,
                    0xBF58476D1CE4E5B9,
                ],
                dtype=np.uint64,
            )
            with np.errstate(over="ignore"):
                h = (key.view(np.uint64) * mult).sum(axis=1, dtype=np.uint64)
            self._surfaces = np.append(h, np.uint64(0))  # misses: 0
        return self._surfaces

    def lookup(self, prim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class and material per triangle index (0, 0 for the miss index n_tris)."""
        rec = self._packed[prim].view(np.uint8).reshape(len(prim), 8)
        return rec[:, 0], rec[:, 1]

    def cast_prims(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit distance (inf on a miss) and triangle index (n_tris on a miss) per ray."""
        n = len(dirs)
        if self._scene is None:
            return np.full(n, np.inf, np.float32), np.zeros(n, np.uint32)
        rays = np.empty((n, 6), np.float32)
        rays[:, :3] = origins
        rays[:, 3:] = dirs
        ans = self._scene.cast_rays(o3d.core.Tensor(rays))
        return ans["t_hit"].numpy(), np.minimum(ans["primitive_ids"].numpy(), np.uint32(self.mesh.n_tris))

    def set_things(self, things: Mesh) -> None:
        self._set(concat([self.stuff, things]))

    def cast(self, origins: np.ndarray, dirs: np.ndarray, with_instances: bool = True) -> Hits:
        """origins (N, 3) or (3,), dirs (N, 3) in the scene frame; t is in units of |dir|."""
        n = len(dirs)
        rays = np.empty((n, 6), np.float32)
        rays[:, :3] = origins
        rays[:, 3:] = dirs
        if self._scene is None:
            return Hits(
                np.full(n, np.inf, np.float32),
                np.zeros(n, bool),
                np.zeros(n, np.uint8),
                np.full(n, -1, np.int32),
                np.zeros(n, np.uint8),
                np.zeros((n, 3), np.uint8),
                np.zeros((n, 3), np.float32),
                np.zeros(n, np.uint32),
            )
        ans = self._scene.cast_rays(o3d.core.Tensor(rays))
        t = ans["t_hit"].numpy()
        # misses carry INVALID_ID (2^32 - 1): clamp them onto the zero row
        prim = np.minimum(ans["primitive_ids"].numpy(), np.uint32(self.mesh.n_tris))
        rec = self._packed[prim].view(np.uint8).reshape(n, 8)
        inst = self._inst[prim] if with_instances else np.empty(0, np.int32)
        return Hits(
            t,
            prim < self.mesh.n_tris,
            rec[:, 0],
            inst,
            rec[:, 1],
            rec[:, 2:5],
            ans["primitive_normals"].numpy(),
            prim,
        )
