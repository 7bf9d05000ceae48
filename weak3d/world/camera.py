"""Camera rendering by ray casting: one ray per pixel through its centre, Lambertian shading.

Colour = per-triangle albedo x flat Lambertian shading (sky ambient + sun diffuse) x procedural
texture (hashed 3D value noise, paving seams), with aerial haze and a sky gradient. The same
cast gives the per-pixel raw class map, so image edges and class edges coincide exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weak3d.world.mesh import material_table
from weak3d.world.raycast import Caster

_TEX = material_table("texture")
_TEX_SCALE = material_table("texture_scale")
_TILES = material_table("tiles")
_SKY_HORIZON = np.array([0.86, 0.89, 0.93], np.float32)
_SKY_ZENITH = np.array([0.38, 0.56, 0.84], np.float32)
_HAZE = np.array([0.78, 0.82, 0.88], np.float32)


@dataclass
class CameraRays:
    """Per-pixel unit directions in the camera frame, computed once per intrinsic."""

    dirs: np.ndarray  # (H*W, 3) float32
    width: int
    height: int


_RAY_CACHE: dict[bytes, CameraRays] = {}


def camera_rays(K: np.ndarray, width: int, height: int) -> CameraRays:
    """Cached per intrinsic: every scene of a world shares the nominal intrinsics."""
    key = np.asarray(K, np.float64).tobytes() + bytes(f"{width}x{height}", "ascii")
    if key not in _RAY_CACHE:
        if len(_RAY_CACHE) > 12:
            _RAY_CACHE.clear()
        _RAY_CACHE[key] = _camera_rays(K, width, height)
    return _RAY_CACHE[key]


def _camera_rays(K: np.ndarray, width: int, height: int) -> CameraRays:
    # pixel centres at integer coordinates, as in the nuScenes/OpenCV projection uv = K p / z
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    x = (u - K[0, 2]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    d = np.stack([x, y, np.ones_like(x)], -1).reshape(-1, 3)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return CameraRays(d.astype(np.float32), width, height)


def _hash01(q: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell; q is (N, 3) int32."""
    u = q.view(np.uint32)
    h = u[:, 0] * np.uint32(73856093) ^ u[:, 1] * np.uint32(19349663) ^ u[:, 2] * np.uint32(83492791)
    h ^= h >> np.uint32(13)
    h *= np.uint32(1274126177)
    h ^= h >> np.uint32(16)
    return (h & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1.0 / 65536.0)


def _triangle_colours(caster: Caster, eye: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """Flat-shaded colour per triangle (+ a zero row for misses), float32 (m + 1, 3).

    Triangles are planar, so Lambertian shading is per triangle: computing it on ~50k triangles
    instead of 1.44M pixels. Normals are turned toward the camera: winding order is not trusted.
    """
    m = caster.mesh
    nrm, c = caster.planes()
    nrm = nrm[:-1].astype(np.float64)
    away = (nrm @ eye - c[:-1]) < 0  # camera behind the plane as oriented: flip
    nrm[away] *= -1
    shade = 0.42 + 0.18 * nrm[:, 2] + 0.7 * np.maximum(nrm @ sun, 0.0)
    out = np.zeros((m.n_tris + 1, 3), np.float32)
    out[:-1] = m.rgb * shade[:, None]
    return out


def _trace(caster: Caster, o: np.ndarray, d: np.ndarray, height: int, width: int):
    """Hit distance and triangle per pixel, casting about a third of the rays.

    Rays are cast on every second row and column first. Where the four samples around a pixel
    hit the same surface (one plane, material and instance: a quad, a facade, a stretch of road)
    or all miss, the pixel's ray lies inside their cone and hits that surface too, so its distance
    is an exact ray-plane intersection; only the remaining pixels (boundaries) are cast. The
    price: something thinner than two pixels that falls entirely between samples (a pole beyond
    ~60 m) can vanish from the image.
    """
    n_tris = caster.mesh.n_tris
    ys = np.arange(0, height, 2)
    xs = np.arange(0, width, 2)
    ys = ys if ys[-1] == height - 1 else np.append(ys, height - 1)
    xs = xs if xs[-1] == width - 1 else np.append(xs, width - 1)
    D = d.reshape(height, width, 3)
    _, pc = caster.cast_prims(o, D[ys][:, xs].reshape(-1, 3))
    pc = pc.reshape(len(ys), len(xs))
    sc = caster.surfaces()[pc]
    same = (sc[:-1, :-1] == sc[:-1, 1:]) & (sc[:-1, :-1] == sc[1:, :-1]) & (sc[:-1, :-1] == sc[1:, 1:])
    ri = np.minimum(np.arange(height) // 2, len(ys) - 2)
    ci = np.minimum(np.arange(width) // 2, len(xs) - 2)
    uniform = same[ri][:, ci].ravel()
    prim = pc[:-1, :-1][ri][:, ci].ravel()
    t = np.full(height * width, np.inf, np.float32)
    # interior pixels: intersect the ray with the plane of the triangle all four samples hit
    inner = np.nonzero(uniform & (prim < n_tris))[0]
    normal, offset = caster.planes()
    p_in = prim[inner]
    nrm = normal[p_in]
    denom = np.einsum("ij,ij->i", nrm, d[inner])
    t[inner] = (offset[p_in] - nrm @ o) / np.where(np.abs(denom) > 1e-9, denom, np.float32(1e-9))
    # boundary pixels: cast
    edge = np.nonzero(~uniform)[0]
    t_e, p_e = caster.cast_prims(o, d[edge])
    t[edge] = t_e
    prim[edge] = p_e
    return t, prim


def render(
    caster: Caster, rays: CameraRays, cam_to_scene: np.ndarray, sun: np.ndarray, noise: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (H, W, 3) and raw class map uint8 (H, W); `noise` is a (H*W,) float32 grain."""
    R, o = cam_to_scene[:3, :3].astype(np.float32), cam_to_scene[:3, 3].astype(np.float32)
    dc = rays.dirs
    # explicit 3x3 product: a BLAS call here would spawn threads that fight the worker processes
    d = dc[:, :1] * R[:, 0] + dc[:, 1:2] * R[:, 1] + dc[:, 2:3] * R[:, 2]
    t_hit, prim = _trace(caster, o, d, rays.height, rays.width)
    cls, mat = caster.lookup(prim)
    hit = prim < caster.mesh.n_tris
    t = np.where(hit, t_hit, np.float32(0.0))
    p = d * t[:, None]
    p += o

    # texture: two octaves of hashed value noise in world space, so it sticks to surfaces
    inv = (1.0 / _TEX_SCALE)[mat][:, None]
    q = np.floor(p * inv).astype(np.int32)
    n1 = _hash01(q)
    n2 = _hash01(q >> 2)
    tex = 1.0 + _TEX[mat] * ((n1 - 0.5) * 1.2 + (n2 - 0.5) * 0.8)
    tiles = _TILES[mat]
    tiled = np.nonzero(tiles > 0)[0]
    if len(tiled):
        tp = p[tiled, :2] / tiles[tiled, None]
        seam = np.min(np.abs(tp - np.round(tp)), axis=1) < 0.025
        tex[tiled[seam]] *= np.float32(0.72)

    # per-pixel factors first (1-D), then two (N, 3) operations: shaded albedo * a + haze * b
    grain = noise + np.float32(1.0)
    haze = 1.0 - np.exp(-t / np.float32(420.0))
    a = tex * (1 - haze) * grain
    b = haze * grain * np.float32(255.0)
    col = _triangle_colours(caster, cam_to_scene[:3, 3], sun)[prim]
    col *= a[:, None]
    col += _HAZE * b[:, None]

    miss = np.nonzero(~hit)[0]
    if len(miss):
        up = np.clip(d[miss, 2] * 2.2, 0, 1)[:, None]
        col[miss] = (_SKY_HORIZON * (1 - up) + _SKY_ZENITH * up) * (grain[miss, None] * np.float32(255.0))
    rgb = np.clip(col, 0, 255).astype(np.uint8).reshape(rays.height, rays.width, 3)
    return rgb, cls.reshape(rays.height, rays.width)
