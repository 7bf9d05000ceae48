"""A spinning 32-beam LiDAR like nuScenes' LIDAR_TOP (Velodyne HDL-32E at 20 Hz).

Every ray gives one point, as in the nuScenes files (32 x 1084 points per sweep there): rays
without a return (sky, dropouts on glass, dark or distant surfaces) are written as points within
half a metre of the sensor and labelled noise, the way they appear in real sweeps. Points are in
the LiDAR frame, ordered by azimuth column then ring, ring 0 the lowest beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weak3d.classes import RAW_INDEX
from weak3d.world.mesh import material_table
from weak3d.world.raycast import Caster

_REFL = material_table("reflectivity")
_ROUGH = material_table("roughness")
_DROP = material_table("dropout")
_TRANS = material_table("transmission")
_PEN = material_table("penetration")

EGO = RAW_INDEX["vehicle.ego"]
NOISE = RAW_INDEX["noise"]
# Ego roof below the sensor, in the LiDAR frame (x right, y forward): lower beams hit it.
_ROOF_Z = -0.33
_ROOF_X = (-0.6, 0.6)
_ROOF_Y = (-1.3, 0.45)


@dataclass(frozen=True)
class LidarModel:
    beams: int = 32
    azimuth_steps: int = 1085
    elev_min: float = -30.67
    elev_max: float = 10.67
    max_range: float = 100.0
    range_noise: float = 0.02

    def directions(self, phase: float, elev_jitter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit ray directions (N, 3) in the LiDAR frame and ring ids, azimuth-major order."""
        el = np.radians(np.linspace(self.elev_min, self.elev_max, self.beams) + elev_jitter)
        az = phase + np.arange(self.azimuth_steps) * (2 * np.pi / self.azimuth_steps)
        A, E = np.meshgrid(az, el, indexing="ij")
        d = np.stack([np.cos(E) * np.cos(A), np.cos(E) * np.sin(A), np.sin(E)], -1).reshape(-1, 3)
        ring = np.tile(np.arange(self.beams), self.azimuth_steps)
        return d, ring


@dataclass
class Sweep:
    points: np.ndarray  # (N, 5) float32 x, y, z, intensity, ring (LiDAR frame)
    labels: np.ndarray  # (N,) uint8 raw lidarseg index
    inst: np.ndarray  # (N,) int32 thing instance, -1 otherwise


def simulate_sweep(
    model: LidarModel,
    caster: Caster,
    lidar_to_scene: np.ndarray,
    rng: np.random.Generator,
    elev_jitter: np.ndarray,
) -> Sweep:
    """One sweep; `caster` must already hold the things posed at the sweep time."""
    d_l, ring = model.directions(float(rng.uniform(0, 2 * np.pi)), elev_jitter)
    n = len(d_l)
    R, o = lidar_to_scene[:3, :3], lidar_to_scene[:3, 3]
    d_s = d_l @ R.T
    h = caster.cast(o, d_s)
    t = h.t.astype(np.float64)

    # see-through materials (glass, chain-link): some rays continue to whatever is behind
    through = h.hit & (rng.random(n) < _TRANS[h.mat])
    if through.any():
        idx = np.nonzero(through)[0]
        start = o + d_s[idx] * (t[idx, None] + 0.03)
        h2 = caster.cast(start, d_s[idx])
        t[idx] = t[idx] + 0.03 + h2.t
        for name in ("hit", "cls", "inst", "mat", "normal"):
            getattr(h, name)[idx] = getattr(h2, name)

    cos_inc = np.abs(np.einsum("ij,ij->i", h.normal, d_s))
    refl = _REFL[h.mat]
    ret = h.hit & (t <= model.max_range)
    # dropouts: material-specific, more at grazing angles and for weak returns far away
    weak = np.clip((t / model.max_range) ** 2 * (1.2 - refl / 60.0), 0, 0.9)
    p_drop = 0.004 + _DROP[h.mat] + 0.15 * (1 - cos_inc) ** 4 + weak
    ret &= rng.random(n) >= p_drop

    # range noise, rough surfaces, foliage that lets the beam in before it returns
    noise = rng.normal(0, 1, n) * np.sqrt(model.range_noise**2 + _ROUGH[h.mat] ** 2)
    pen = _PEN[h.mat]
    depth = np.where(pen > 0, np.minimum(rng.exponential(1.0, n) * pen, 1.5), 0.0)
    r = np.where(ret, t + noise + depth, 0.0)
    labels = np.where(ret, h.cls, NOISE).astype(np.uint8)
    inst = np.where(ret, h.inst, -1).astype(np.int32)
    intensity = refl * (0.3 + 0.7 * cos_inc) * np.exp(-t / 300.0) + rng.normal(0, 1.5, n)

    # the ego roof below the sensor (LiDAR frame: no need to go through the scene)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_roof = np.where(d_l[:, 2] < -1e-3, _ROOF_Z / d_l[:, 2], np.inf)
    px, py = d_l[:, 0] * t_roof, d_l[:, 1] * t_roof
    on_roof = (px > _ROOF_X[0]) & (px < _ROOF_X[1]) & (py > _ROOF_Y[0]) & (py < _ROOF_Y[1])
    on_roof &= ~(ret & (r < t_roof))
    r = np.where(on_roof, t_roof + rng.normal(0, 0.01, n), r)
    labels[on_roof] = EGO
    inst[on_roof] = -1
    intensity = np.where(on_roof, rng.uniform(5, 60, n), intensity)
    ret |= on_roof

    # spurious returns (dust, multipath): a point somewhere in front of the true one
    spurious = rng.random(n) < 0.0008
    far = np.maximum(np.where(ret, r, 30.0), 1.5)
    r = np.where(spurious, 1.0 + rng.random(n) * (far - 1.0), r)
    labels[spurious] = NOISE
    inst[spurious] = -1

    # no return: nuScenes keeps the ray as a point near the sensor
    miss = ~ret & ~spurious
    r = np.where(miss, rng.uniform(0.005, 0.45, n), r)
    intensity = np.where(miss, rng.integers(0, 20, n), intensity)

    pts = np.empty((n, 5), np.float32)
    pts[:, :3] = d_l * r[:, None]
    pts[:, 3] = np.clip(np.round(intensity), 0, 255)
    pts[:, 4] = ring
    return Sweep(pts, labels, inst)
