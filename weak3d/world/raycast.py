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
