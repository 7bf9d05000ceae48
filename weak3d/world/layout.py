"""Procedural street scenes: cross-section, ground, static furniture, traffic and the ego path.

Scene frame: x along the main road, y to the left, z up, road surface at z = 0. A scene is a main
road (1-2 lanes per direction, optional median, parking and bike lanes, curbs, verges, sidewalks),
usually a cross street, blocks of buildings or lawns, and traffic that moves in straight lines.
Every scene has a roadwork site near the ego path, so the rare classes occur in every scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from weak3d.classes import RAW_INDEX
from weak3d.world import objects as ob
from weak3d.world.ground import Ground
from weak3d.world.mesh import Mesh, concat, part, quad

REGION_X = (-140.0, 140.0)
REGION_Y = (-110.0, 110.0)


@dataclass
class Thing:
    """A movable object (annotated instance) moving in a straight line at constant speed."""

    inst: int
    raw: int
    mesh: Mesh  # local frame; ignored when make_mesh is set
    size: tuple[float, float, float]  # length, width, height
    x0: float
    y0: float
    yaw: float
    speed: float = 0.0
    attribute: str = ""
    make_mesh: Callable[[float], Mesh] | None = None  # time -> local mesh (walking people)

    def xy(self, t: float) -> tuple[float, float]:
        d = self.speed * t
        return self.x0 + d * np.cos(self.yaw), self.y0 + d * np.sin(self.yaw)


@dataclass
class EgoPath:
    """Ego motion along its lane: x(t) = x0 + v t + a t^2 / 2, a small lateral sway, pitch and roll."""

    x0: float
    y0: float
    v: float
    a: float
    sway: float
    sway_freq: float
    phase: float

    def pose(self, t: float) -> tuple[np.ndarray, float, float, float]:
        """Position (3,), yaw, pitch, roll at scene time t (seconds)."""
        x = self.x0 + self.v * t + 0.5 * self.a * t * t
        w = 2 * np.pi * self.sway_freq
        y = self.y0 + self.sway * np.sin(w * t + self.phase)
        dx = self.v + self.a * t
        dy = self.sway * w * np.cos(w * t + self.phase)
        yaw = float(np.arctan2(dy, max(dx, 0.1)))
        pitch = -0.01 * self.a + 0.003 * np.sin(3.1 * t + self.phase)
        roll = 0.004 * np.sin(2.3 * t + 2 * self.phase)
        return np.array([x, y, 0.0]), yaw, float(pitch), float(roll)


@dataclass
class Scene:
    stuff: Mesh
    things: list[Thing]
    ground: Ground
    ego: EgoPath
    description: str
    sun: np.ndarray  # unit vector toward the sun, scene frame
    meta: dict = field(default_factory=dict)


@dataclass
class _Section:
    """Main-road cross-section, per side (+1 = left, y > 0; -1 = right)."""

    lane_w: float
    n_lanes: int
    median_w: float
    median_kind: str
    curb_h: float
    bike_w: dict
    parking_w: dict
    verge_w: dict
    sidewalk_w: dict
    right_hand: bool

    def lanes_end(self, s: int) -> float:
        return self.median_w / 2 + self.n_lanes * self.lane_w

    def curb(self, s: int) -> float:
        return self.lanes_end(s) + self.bike_w[s] + self.parking_w[s]

    def sidewalk_in(self, s: int) -> float:
        return self.curb(s) + self.verge_w[s]

    def sidewalk_out(self, s: int) -> float:
        return self.sidewalk_in(s) + self.sidewalk_w[s]

    def lane_center(self, s: int, k: int) -> float:
        return s * (self.median_w / 2 + (k + 0.5) * self.lane_w)

    def direction(self, s: int) -> int:
        """Travel direction along x of the lanes on side s."""
        return (-s) if self.right_hand else s


class _Builder:
    """Accumulates stuff meshes and things while a scene is laid out."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.stuff: list[Mesh] = []
        self.things: list[Thing] = []
        self.boxes: list[tuple[float, float, float, float]] = []  # occupied x0, x1, y0, y1 (parked)

    def add_stuff(self, mesh: Mesh, yaw: float, x: float, y: float, z: float = 0.0) -> None:
        self.stuff.append(mesh.moved(yaw, x, y, z))

    def add_thing(
        self,
        built: tuple[Mesh, tuple],
        x: float,
        y: float,
        yaw: float,
        speed: float = 0.0,
        attribute: str = "",
        make_mesh: Callable[[float], Mesh] | None = None,
    ) -> Thing:
        mesh, size = built
        raw = int(np.bincount(mesh.cls, minlength=256).argmax())
        inst = len(self.things)
        # the annotation box is the mesh's bounds, centred on the object's position: builders give
        # nominal sizes, and some shapes (an excavator's boom) are not centred on their origin
        lo, hi = mesh.V.min(axis=0), mesh.V.max(axis=0)
        shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, 0.0])
        bounds = (float(hi[0] - lo[0]), float(hi[1] - lo[1]), float(hi[2]))
        # walkers swing their limbs: keep the nominal box where it is larger than this pose
        size = tuple(max(a, b) for a, b in zip(bounds, size, strict=True)) if make_mesh else bounds
        local = Mesh(mesh.V + shift, mesh.T, mesh.cls, mesh.mat, mesh.rgb, mesh.inst).with_instance(inst)
        thing = Thing(inst, raw, local, size, x, y, yaw, speed, attribute, None)
        if make_mesh is not None:

            def animated(t: float, f=make_mesh, i=inst, sh=shift) -> Mesh:
                m = f(t)
                return Mesh(m.V + sh, m.T, m.cls, m.mat, m.rgb, m.inst).with_instance(i)

            thing.make_mesh = animated
        self.things.append(thing)
        return thing

    def free(self, x0: float, x1: float, y0: float, y1: float) -> bool:
        return all(x1 < a or x0 > b or y1 < c or y0 > d for a, b, c, d in self.boxes)

    def occupy(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.boxes.append((min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)))


def build_scene(rng: np.random.Generator, duration: float, speed_range: tuple[float, float]) -> Scene:
    """Lay out one street scene; the ego drives for `duration` seconds from t = 0."""
    b = _Builder(rng)
    sec = _section(rng)
    has_cross = rng.random() < 0.75
    xc = float(rng.uniform(-35, 45)) if has_cross else 1e9
    hw_c = float(rng.uniform(3.2, 3.6) * (2 if rng.random() < 0.7 else 4) / 2)  # cross street half width
    sw_c = float(rng.uniform(2.0, 3.5))
    cross = (xc, hw_c, sw_c)

    # ego: in a lane of its direction, centred on the scene over its drive
    s_ego = -1 if sec.right_hand else 1
    k_ego = int(rng.integers(sec.n_lanes))
    v = float(rng.uniform(*speed_range))
    a = float(rng.uniform(-0.4, 0.4)) if v > 3 else 0.0
    ego_y = sec.lane_center(s_ego, k_ego) + rng.uniform(-0.25, 0.25)
    ego = EgoPath(
        x0=-v * duration / 2 + float(rng.uniform(-8, 8)),
        y0=float(ego_y),
        v=v,
        a=a,
        sway=float(rng.uniform(0.0, 0.15)),
        sway_freq=float(rng.uniform(0.05, 0.2)),
        phase=float(rng.uniform(0, 2 * np.pi)),
    )
    x_mid = ego.x0 + v * duration / 2

    ground = Ground()
    _paint_ground(rng, ground, sec, cross, x_mid)

    # roadwork site: parking lane if there is one, else the outer lane (closed to traffic)
    rw_side = int(rng.choice([-1, 1]))
    rw_x = x_mid + float(rng.uniform(-25, 35))
    if abs(rw_x - xc) < hw_c + sw_c + 18:
        rw_x = xc + np.sign(rw_x - xc + 1e-6) * (hw_c + sw_c + 18)
    rw_len = float(rng.uniform(16, 28))
    closed_lane = (rw_side, sec.n_lanes - 1) if sec.parking_w[rw_side] < 1 else None
    if closed_lane == (s_ego, k_ego):  # never block the ego: move the site across the road
        rw_side = -rw_side
        closed_lane = (rw_side, sec.n_lanes - 1) if sec.parking_w[rw_side] < 1 else None

    _markings(b, sec, cross)
    _buildings_and_frontage(rng, b, ground, sec, cross)
    _furniture(rng, b, sec, cross)
    _roadwork(rng, b, sec, rw_side, rw_x, rw_len, closed_lane)
    bus_stop = _bus_stop(rng, b, sec, cross, x_mid, rw_side, rw_x, rw_len)
    _ensure_rare(rng, b, sec, cross, x_mid)
    _parked(rng, b, sec, cross, bus_stop)
    _traffic(rng, b, sec, cross, ego, s_ego, k_ego, closed_lane, duration)
    _people(rng, b, sec, cross, x_mid)
    things = _clear_ego(b.things, ego, duration)

    stuff = concat([ground.mesh()] + b.stuff)
    sun_az, sun_el = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(25), np.radians(65))
    sun = np.array([np.cos(sun_el) * np.cos(sun_az), np.cos(sun_el) * np.sin(sun_az), np.sin(sun_el)])
    desc = (
        f"{'right' if sec.right_hand else 'left'}-hand traffic, {sec.n_lanes} lane(s) per direction"
        f"{', median' if sec.median_w else ''}{', intersection' if has_cross else ''}, roadwork, "
        f"{len(things)} objects"
    )
    return Scene(stuff, things, ground, ego, desc, sun, {"cross_x": xc})


# --- cross-section and ground ---


def _section(rng: np.random.Generator) -> _Section:
    n_lanes = 1 if rng.random() < 0.45 else 2
    median = rng.random() < (0.2 if n_lanes == 1 else 0.6)
    kinds = ["island", "grass", "painted"]
    side = {}
    for key, lo, hi, p in (("bike", 1.4, 1.8, 0.3), ("parking", 2.2, 2.6, 0.65), ("verge", 0.8, 2.6, 0.45)):
        side[key] = {s: float(rng.uniform(lo, hi)) if rng.random() < p else 0.0 for s in (-1, 1)}
    if not any(side["parking"].values()):  # at least one parking lane: parked trucks, buses at stops
        side["parking"][int(rng.choice([-1, 1]))] = float(rng.uniform(2.2, 2.6))
    return _Section(
        lane_w=float(rng.uniform(3.0, 3.6)),
        n_lanes=n_lanes,
        median_w=float(rng.uniform(1.2, 4.0)) if median else 0.0,
        median_kind=str(rng.choice(kinds, p=[0.45, 0.35, 0.2])),
        curb_h=float(rng.uniform(0.1, 0.18)),
        bike_w=side["bike"],
        parking_w=side["parking"],
        verge_w=side["verge"],
        sidewalk_w={s: float(rng.uniform(1.8, 4.5)) for s in (-1, 1)},
        right_hand=bool(rng.random() < 0.6),
    )


def _grass(rng: np.random.Generator) -> str:
    return str(rng.choice(["grass", "grass", "dry_grass", "soil"]))


def _paint_ground(rng: np.random.Generator, g: Ground, sec: _Section, cross, x_mid: float) -> None:
    (X0, X1), (Y0, Y1) = REGION_X, REGION_Y
    xc, hw, sw = cross
    h = sec.curb_h
    g.add(X0, X1, Y0, Y1, "flat.terrain", "grass", h + 0.04)
    plaza_side = int(rng.choice([-1, 1]))
    for s in (-1, 1):
        yo = sec.sidewalk_out(s)
        # frontage: lawns, paved forecourts, sidewalk continuation, varying per block; one paved
        # forecourt (flat.other) always faces the ego's drive
        x = X0
        while x < X1:
            L = float(rng.uniform(15, 45))
            kind = rng.choice(["terrain", "sidewalk", "other"], p=[0.45, 0.3, 0.25])
            if s == plaza_side and x <= x_mid < x + L:
                kind = "other"
            cls, mat = {
                "terrain": ("flat.terrain", _grass(rng)),
                "sidewalk": ("flat.sidewalk", "concrete"),
                "other": ("flat.other", "paving"),
            }[str(kind)]
            dz = 0.04 if cls == "flat.terrain" else (0.0 if cls == "flat.sidewalk" else 0.02)
            g.add(x, x + L, s * yo, s * (yo + 12), cls, mat, h + dz)
            x += L
        g.add(X0, X1, s * sec.sidewalk_in(s), s * yo, "flat.sidewalk", "concrete", h)
        if sec.verge_w[s]:
            g.add(X0, X1, s * sec.curb(s), s * sec.sidewalk_in(s), "flat.terrain", _grass(rng), h + 0.03)
    if xc < 1e8:
        for sx in (-1, 1):
            g.add(xc + sx * hw, xc + sx * (hw + sw), Y0, Y1, "flat.sidewalk", "concrete", h)
        g.add(xc - hw, xc + hw, Y0, Y1, "flat.driveable_surface", "asphalt", 0.0)
    g.add(X0, X1, -sec.curb(-1), sec.curb(1), "flat.driveable_surface", "asphalt", 0.0)
    for x in rng.uniform(X0, X1, 4):  # repaired asphalt patches: same class, different look
        y = rng.uniform(-sec.lanes_end(-1), sec.lanes_end(1))
        g.add(
            x, x + rng.uniform(2, 8), y, y + rng.uniform(1, 3), "flat.driveable_surface", "asphalt_patch", 0.0
        )
    if sec.median_w:
        cls, mat, z = {
            "island": ("flat.other", "paving", h),
            "grass": ("flat.terrain", _grass(rng), h + 0.03),
            "painted": ("flat.driveable_surface", "asphalt", 0.0),
        }[sec.median_kind]
        m = sec.median_w / 2
        gap = hw + sw if xc < 1e8 else 0.0
        for xa, xb in ((X0, xc - gap), (xc + gap, X1)) if xc < 1e8 else ((X0, X1),):
            if xb > xa:
                g.add(xa, xb, -m, m, cls, mat, z)
        if xc < 1e8 and sec.median_kind != "painted":
            # traffic-island noses at the intersection
            for sx in (-1, 1):
                g.add(xc + sx * (gap + 0.01), xc + sx * (gap + 3), -m, m, "flat.other", "concrete", h)
    g.paint()


def _markings(b: _Builder, sec: _Section, cross) -> None:
    """Lane paint: same class as the road, brighter to the camera and to the LiDAR."""
    xc, hw, sw = cross
    z = 0.012
    X0, X1 = REGION_X
    segs = [(X0, xc - hw - sw), (xc + hw + sw, X1)] if xc < 1e8 else [(X0, X1)]
    raw = "flat.driveable_surface"

    def stripe(xa: float, xb: float, y: float, w: float, mat: str = "paint") -> None:
        if xb - xa > 0.05:
            b.stuff.append(
                part(
                    *quad((xa, y - w / 2, z), (xb, y - w / 2, z), (xb, y + w / 2, z), (xa, y + w / 2, z)),
                    raw,
                    mat,
                )
            )

    for xa, xb in segs:
        if sec.median_w == 0:
            for off in (-0.1, 0.1):
                stripe(xa, xb, off, 0.1, "paint_yellow")
        for s in (-1, 1):
            for k in range(1, sec.n_lanes):
                y = s * (sec.median_w / 2 + k * sec.lane_w)
                for x in np.arange(xa, xb - 3, 9.0):
                    stripe(x, x + 3, y, 0.12)
            if sec.bike_w[s] or sec.parking_w[s]:
                stripe(xa, xb, s * sec.lanes_end(s), 0.12)
            if sec.bike_w[s] and sec.parking_w[s]:
                stripe(xa, xb, s * (sec.lanes_end(s) + sec.bike_w[s]), 0.12)
    if xc < 1e8:
        # zebra crossings over the main road and stop lines
        for sx in (-1, 1):
            x_mid = xc + sx * (hw + sw / 2)
            for y in np.arange(-sec.curb(-1) + 0.3, sec.curb(1) - 0.3, 1.0):
                b.stuff.append(
                    part(
                        *quad(
                            (x_mid - 1.5, y, z),
                            (x_mid + 1.5, y, z),
                            (x_mid + 1.5, y + 0.5, z),
                            (x_mid - 1.5, y + 0.5, z),
                        ),
                        raw,
                        "paint",
                    )
                )
        for s in (-1, 1):
            x_stop = xc + sec.direction(s) * -(hw + sw + 0.6)
            y0, y1 = sorted((s * sec.median_w / 2, s * sec.lanes_end(s)))
            b.stuff.append(
                part(
                    *quad(
                        (x_stop - 0.2, y0, z),
                        (x_stop + 0.2, y0, z),
                        (x_stop + 0.2, y1, z),
                        (x_stop - 0.2, y1, z),
                    ),
                    raw,
                    "paint",
                )
            )


# --- buildings, frontage furniture and vegetation ---


def _blocks(cross, margin: float) -> list[tuple[float, float]]:
    xc, hw, sw = cross
    X0, X1 = REGION_X
    if xc > 1e8:
        return [(X0, X1)]
    return [(X0, xc - hw - sw - margin), (xc + hw + sw + margin, X1)]


def _buildings_and_frontage(rng: np.random.Generator, b: _Builder, g: Ground, sec: _Section, cross) -> None:
    xc, hw, sw = cross
    for s in (-1, 1):
        y_front = sec.sidewalk_out(s) + rng.uniform(0.0, 6.0)
        for xa, xb in _blocks(cross, 1.0):
            x = xa + rng.uniform(0, 3)
            while x < xb - 6:
                gap = rng.uniform(0, 9) if rng.random() < 0.6 else 0.0
                if gap > 2.5:
                    _gap_fill(rng, b, s, x, x + gap, y_front)
                x += gap
                L = float(min(rng.uniform(8, 38), xb - x))
                if L < 5:
                    break
                D = float(rng.uniform(10, 24))
                H = float(np.clip(rng.lognormal(np.log(11), 0.55), 4, 45))
                yb = y_front + rng.uniform(0, 2.5)
                base = g.height_at(x + L / 2, s * (yb + 0.5))
                b.add_stuff(ob.building(rng, L, D, H, front_y=-s), 0.0, x, s * yb, float(base) - 0.02)
                x += L
        # side-street facades, behind the main-street blocks, facing the cross street
        if xc < 1e8:
            for sx in (-1, 1):
                y = sec.sidewalk_out(s) + rng.uniform(28, 36)
                while y < REGION_Y[1] - 20:
                    L = float(rng.uniform(10, 30))
                    D = float(rng.uniform(10, 20))
                    H = float(np.clip(rng.lognormal(np.log(10), 0.5), 4, 40))
                    x_face = xc + sx * (hw + sw + rng.uniform(0.5, 4))
                    # local x runs along the facade; yaw +-90 deg turns it along y, body away from the street
                    y_start = (y if s > 0 else -y - L) if sx > 0 else (y + L if s > 0 else -y)
                    b.add_stuff(
                        ob.building(rng, L, D, H, front_y=1.0), sx * np.pi / 2, x_face, y_start, sec.curb_h
                    )
                    y += L + rng.uniform(0, 8)
        # trees and bushes on verges, tree pits on sidewalks, lawn vegetation
        x = REGION_X[0] + rng.uniform(0, 8)
        pits = sec.verge_w[s] == 0 and rng.random() < 0.6
        while x < REGION_X[1]:
            if abs(x - xc) > hw + sw + 2:
                if sec.verge_w[s]:
                    y = s * (sec.curb(s) + sec.verge_w[s] / 2)
                    if rng.random() < 0.7:
                        b.add_stuff(ob.tree(rng), 0.0, x, y, sec.curb_h)
                    elif rng.random() < 0.6:
                        b.add_stuff(ob.bush(rng), rng.uniform(0, 6), x, y, sec.curb_h)
                elif pits:
                    y = s * (sec.sidewalk_in(s) + 0.8)
                    b.add_stuff(ob.tree(rng), 0.0, x, y, sec.curb_h)
                    b.stuff.append(
                        part(
                            *quad(
                                (x - 0.6, y - 0.6, sec.curb_h + 0.01),
                                (x + 0.6, y - 0.6, sec.curb_h + 0.01),
                                (x + 0.6, y + 0.6, sec.curb_h + 0.01),
                                (x - 0.6, y + 0.6, sec.curb_h + 0.01),
                            ),
                            "flat.terrain",
                            "soil",
                        )
                    )
            x += rng.uniform(6, 14)
        for _ in range(rng.integers(6, 16)):  # lawns and forecourts
            x = rng.uniform(*REGION_X)
            y = s * (sec.sidewalk_out(s) + rng.uniform(0.8, 8))
            if abs(x - xc) < hw + sw + 1:
                continue
            cls = g.class_at(x, y)
            z = float(g.height_at(x, y))
            if cls == RAW_INDEX["flat.terrain"]:
                fn = ob.tree if rng.random() < 0.35 else ob.bush
                b.add_stuff(fn(rng), rng.uniform(0, 6), x, y, z)
            elif rng.random() < 0.3:
                b.add_stuff(ob.small_static(rng, "bench"), 0.0, x, y, z)
    if sec.median_w > 1.5 and sec.median_kind == "grass":
        for x in np.arange(REGION_X[0], REGION_X[1], rng.uniform(8, 20)):
            if abs(x - xc) > hw + sw + 4:
                fn = ob.tree if rng.random() < 0.4 else ob.bush
                b.add_stuff(fn(rng), rng.uniform(0, 6), x, rng.uniform(-0.2, 0.2), sec.curb_h)


def _gap_fill(rng: np.random.Generator, b: _Builder, s: int, xa: float, xb: float, y_front: float) -> None:
    """Between buildings: a fence or wall along the frontage, bushes behind it."""
    kind = rng.choice(["chainlink", "picket", "wall", "hedge"])
    y = s * (y_front + 0.3)
    if kind == "wall":
        b.add_stuff(ob.wall(xb - xa, float(rng.uniform(0.6, 2.4)), float(rng.uniform(0.2, 0.4))), 0.0, xa, y)
    elif kind == "hedge":
        for x in np.arange(xa + 0.6, xb - 0.5, 1.2):
            b.add_stuff(ob.bush(rng), 0.0, x, y)
    else:
        b.add_stuff(ob.fence(xb - xa, float(rng.uniform(1.2, 2.2)), str(kind)), 0.0, xa, y)
    for _ in range(rng.integers(0, 3)):
        b.add_stuff(
            ob.tree(rng) if rng.random() < 0.5 else ob.bush(rng),
            0.0,
            rng.uniform(xa, xb),
            s * (y_front + rng.uniform(2, 6)),
        )


def _furniture(rng: np.random.Generator, b: _Builder, sec: _Section, cross) -> None:
    """Street lights, signs, traffic lights, bollards, hydrants, bins, racks: thin structures."""
    xc, hw, sw = cross
    h = sec.curb_h
    for s in (-1, 1):
        y_edge = s * (sec.sidewalk_in(s) + 0.35)
        for x in np.arange(REGION_X[0] + rng.uniform(0, 20), REGION_X[1], rng.uniform(22, 34)):
            if abs(x - xc) > hw + sw + 1:
                b.add_stuff(ob.street_light(rng, arm_dir=-s), 0.0, x, y_edge, h)
        for x in rng.uniform(*REGION_X, rng.integers(4, 10)):
            if abs(x - xc) > hw + sw + 1:
                b.add_stuff(ob.sign(rng), (np.pi if sec.direction(s) < 0 else 0.0), x, y_edge + s * 0.2, h)
        y_mid = s * (sec.sidewalk_in(s) + sec.sidewalk_w[s] * 0.6)
        for x in rng.uniform(*REGION_X, rng.integers(3, 9)):
            if abs(x - xc) < hw + sw + 1:
                continue
            kind = str(rng.choice(["bollard", "hydrant", "utility_box", "bench", "bicycle_rack"]))
            y = y_edge if kind in ("bollard", "hydrant") else y_mid
            b.add_stuff(
                ob.small_static(rng, kind), 0.0 if kind != "bench" else (0.0 if s < 0 else np.pi), x, y, h
            )
        if rng.random() < 0.35:
            x = rng.uniform(*REGION_X)
            if abs(x - xc) > hw + sw + 1:
                b.add_stuff(ob.small_static(rng, "other"), 0.0, x, s * (sec.sidewalk_out(s) + 1.5), h)
    if xc < 1e8:
        for s in (-1, 1):
            for sx in (-1, 1):
                x = xc + sx * (hw + 0.5)
                y = s * (sec.curb(s) + 0.5)
                arm = sec.lanes_end(s) - sec.median_w / 2 + 0.5
                # arm reaches over the lanes toward the road centre
                b.add_stuff(ob.traffic_light(rng, arm), -np.pi / 2 if s > 0 else np.pi / 2, x, y, h)


def _roadwork(
    rng: np.random.Generator, b: _Builder, sec: _Section, s: int, x0: float, length: float, closed_lane
) -> None:
    """A fenced-off stretch: cones on the traffic side, barriers at the ends, a machine and workers."""
    if closed_lane is None:
        y_in, y_out = s * sec.lanes_end(s) + s * sec.bike_w[s], s * sec.curb(s)
    else:
        y_in = sec.lane_center(s, closed_lane[1]) - s * sec.lane_w / 2
        y_out = s * sec.curb(s)
    yc = (y_in + y_out) / 2
    y_cones = y_in + s * 0.3
    for x in np.arange(x0, x0 + length, rng.uniform(1.8, 3.0)):
        b.add_thing(ob.traffic_cone(rng), x + rng.uniform(-0.15, 0.15), y_cones, rng.uniform(0, np.pi))
    for xe in (x0 - 1.2, x0 + length + 1.2):
        n = max(1, int(abs(y_out - y_in) / 2.0))
        for k in range(n):
            y = y_in + (k + 0.5) * (y_out - y_in) / n
            b.add_thing(ob.barrier(rng), xe, y, np.pi / 2 + rng.uniform(-0.1, 0.1))
    for x in np.arange(x0 + 2, x0 + length - 2, 2.4)[: rng.integers(1, 5)]:
        b.add_thing(ob.barrier(rng), x, y_cones + s * 0.7, rng.uniform(-0.05, 0.05))
    machine = ob.construction_vehicle(rng)
    L = machine[1][0]
    b.add_thing(
        machine,
        x0 + length / 2 + rng.uniform(-2, 2),
        yc,
        float(rng.choice([0.0, np.pi])) + rng.uniform(-0.2, 0.2),
        attribute="vehicle.parked",
    )
    b.occupy(x0 - 2, x0 + length + 2, min(y_in, y_out) - 0.5, max(y_in, y_out) + 0.5)
    for _ in range(rng.integers(1, 4)):
        x = x0 + rng.uniform(1, length - 1)
        if abs(x - (x0 + length / 2)) < L / 2 + 0.6:
            x = x0 + (1.0 if rng.random() < 0.5 else length - 1.0)
        moving = rng.random() < 0.4
        _add_person(
            rng,
            b,
            "human.pedestrian.construction_worker",
            x,
            yc + rng.uniform(-0.6, 0.6),
            rng.uniform(0, 2 * np.pi),
            0.6 if moving else 0.0,
        )
    for _ in range(rng.integers(1, 3)):
        b.add_thing(
            ob.debris(rng), x0 + rng.uniform(1, length - 1), yc + rng.uniform(-0.8, 0.8), rng.uniform(0, 3)
        )
    if rng.random() < 0.5:
        b.add_thing(ob.pushable(rng), x0 + rng.uniform(1, length - 1), y_out - s * 0.5, 0.0)


def _bus_stop(
    rng: np.random.Generator,
    b: _Builder,
    sec: _Section,
    cross,
    x_mid: float,
    rw_side: int,
    rw_x: float,
    rw_len: float,
):
    """Shelter on the sidewalk; often a bus stopped at the curb. Returns (side, x0, x1) or None."""
    xc, hw, sw = cross
    if rng.random() > 0.6:
        return None
    s = int(rng.choice([k for k in (-1, 1) if sec.parking_w[k]]))
    for _ in range(10):
        x = x_mid + rng.uniform(-45, 45)
        far_rw = s != rw_side or abs(x - (rw_x + rw_len / 2)) > rw_len / 2 + 16
        if abs(x - xc) > hw + sw + 16 and far_rw:
            break
    else:
        return None
    d = sec.direction(s)
    y_sh = s * (sec.sidewalk_out(s) - 1.6)
    b.add_stuff(ob.bus_shelter(rng), 0.0 if s > 0 else np.pi, x, y_sh, sec.curb_h)
    for _ in range(rng.integers(1, 5)):
        _add_person(
            rng,
            b,
            "human.pedestrian.adult",
            x + rng.uniform(-3, 3),
            y_sh - s * rng.uniform(0.3, 1.2),
            rng.uniform(0, 2 * np.pi),
            0.0,
        )
    if rng.random() < 0.75:
        built = ob.bus(rng, bendy=rng.random() < 0.25)
        L = built[1][0]
        y = s * (sec.curb(s) - 1.35)
        b.add_thing(built, x + d * 2, y, 0.0 if d > 0 else np.pi, attribute="vehicle.stopped")
        b.occupy(x + d * 2 - L / 2 - 1, x + d * 2 + L / 2 + 1, y - 1.3, y + 1.3)
    return (s, x - 12, x + 12)


def _parked_vehicle(rng: np.random.Generator):
    r = rng.random()
    if r < 0.62:
        return ob.car(rng, str(rng.choice(ob.CAR_KINDS, p=[0.45, 0.25, 0.2, 0.1])))
    if r < 0.72:
        return ob.pickup(rng)
    if r < 0.78:
        return ob.box_truck(rng)
    if r < 0.81:
        return "tractor_trailer"
    if r < 0.84:
        return ob.car(
            rng,
            "van",
            raw="vehicle.emergency.police" if rng.random() < 0.5 else "vehicle.emergency.ambulance",
            paint=np.array([240, 240, 240.0]),
        )
    if r < 0.92:
        return "motorcycles"
    return None


def _add_tractor_trailer(
    rng: np.random.Generator, b: _Builder, x_front: float, y: float, d: int, speed: float, attribute: str
) -> float:
    """Tractor and trailer as two instances, coupled; returns the total length."""
    tr, tl = ob.tractor(rng), ob.trailer(rng)
    Lt, Ll = tr[1][0], tl[1][0]
    yaw = 0.0 if d > 0 else np.pi
    b.add_thing(tr, x_front - d * Lt / 2, y, yaw, speed, attribute)
    b.add_thing(tl, x_front - d * (Lt - 1.6 + Ll / 2), y, yaw, speed, attribute)
    return Lt - 1.6 + Ll


def _parked(rng: np.random.Generator, b: _Builder, sec: _Section, cross, bus_stop) -> None:
    """Parking lanes filled at random; also motorcycles in groups, the odd truck, trailer, police car."""
    xc, hw, sw = cross
    for s in (-1, 1):
        if not sec.parking_w[s]:
            continue
        d = sec.direction(s)
        y = s * (sec.curb(s) - sec.parking_w[s] / 2)
        x = REGION_X[0] + rng.uniform(0, 6)
        occupancy = rng.uniform(0.45, 0.9)
        while x < REGION_X[1] - 20:
            if abs(x - xc) < hw + sw + 8 or (bus_stop and bus_stop[0] == s and bus_stop[1] < x < bus_stop[2]):
                x += 6.0
                continue
            if rng.random() > occupancy:
                x += rng.uniform(5.5, 7.5)
                continue
            choice = _parked_vehicle(rng)
            if choice is None:
                x += 6.0
                continue
            if isinstance(choice, str) and choice == "tractor_trailer":
                if b.free(x - 1, x + 22, y - 1.3, y + 1.3):
                    front = x + 20 if d > 0 else x  # the whole rig fits in [x, x + 20]
                    Ltot = _add_tractor_trailer(rng, b, front, y, d, 0.0, "vehicle.parked")
                    b.occupy(x - 0.5, x + Ltot + 0.5, y - 1.3, y + 1.3)
                x += 22.0
                continue
            if isinstance(choice, str):  # a row of motorcycles parked across the lane
                for k in range(rng.integers(2, 5)):
                    xm = x + k * 1.0
                    if b.free(xm - 0.4, xm + 0.4, y - 1.1, y + 1.1):
                        b.add_thing(
                            ob.two_wheeler(rng, True, False),
                            xm,
                            y,
                            s * np.pi / 2 + rng.uniform(-0.2, 0.2),
                            attribute="cycle.without_rider",
                        )
                        b.occupy(xm - 0.4, xm + 0.4, y - 1.1, y + 1.1)
                x += 5.0
                continue
            L = choice[1][0]
            xm = x + L / 2
            yy = y + rng.uniform(-0.2, 0.2)
            if b.free(x, x + L, yy - 1.0, yy + 1.0):
                b.add_thing(
                    choice,
                    xm,
                    yy,
                    (0.0 if d > 0 else np.pi) + rng.uniform(-0.04, 0.04),
                    attribute="vehicle.parked",
                )
                b.occupy(x, x + L, yy - 1.0, yy + 1.0)
            x += L + rng.uniform(0.6, 2.5)


def _traffic(
    rng: np.random.Generator,
    b: _Builder,
    sec: _Section,
    cross,
    ego: EgoPath,
    s_ego: int,
    k_ego: int,
    closed_lane,
    duration: float,
) -> None:
    """Vehicles in every open lane; the ego's lane moves at the ego's speed (traffic flow)."""
    xc, hw, sw = cross
    for s in (-1, 1):
        d = sec.direction(s)
        for k in range(sec.n_lanes):
            if closed_lane == (s, k):
                continue
            y = sec.lane_center(s, k)
            ego_lane = (s, k) == (s_ego, k_ego)
            speed = ego.v if ego_lane else float(rng.uniform(5, 13))
            if not ego_lane and rng.random() < 0.15:
                speed = 0.0  # a queue at a light
            x = REGION_X[0] + rng.uniform(0, 15)
            while x < REGION_X[1]:
                r = rng.random()
                if r < 0.74:
                    built = ob.car(rng, str(rng.choice(ob.CAR_KINDS, p=[0.45, 0.25, 0.22, 0.08])))
                elif r < 0.8:
                    built = ob.pickup(rng)
                elif r < 0.86:
                    built = ob.box_truck(rng)
                elif r < 0.9:
                    built = ob.bus(rng, bendy=rng.random() < 0.2)
                elif r < 0.93:
                    built = None  # tractor-trailer
                elif r < 0.97:
                    built = ob.two_wheeler(rng, True, True)
                else:
                    built = ob.construction_vehicle(rng)
                L = built[1][0] if built is not None else 20.0
                gap = rng.uniform(4, 10) if speed == 0 else rng.uniform(8, 40)
                xe = ego.x0
                if ego_lane and x - 14 < xe < x + L + 14:
                    x = xe + 14 + rng.uniform(0, 5)
                    continue
                attr = "vehicle.moving" if speed > 0 else "vehicle.stopped"
                if built is None:
                    front = x + L if d > 0 else x
                    _add_tractor_trailer(rng, b, front, y, d, speed, attr)
                else:
                    if built[0].cls[0] == RAW_INDEX["vehicle.motorcycle"]:
                        attr = "cycle.with_rider"
                    b.add_thing(
                        built, x + L / 2, y + rng.uniform(-0.3, 0.3), 0.0 if d > 0 else np.pi, speed, attr
                    )
                x += L + gap
    if xc < 1e8:  # stopped queues on the cross street, both directions
        for s in (-1, 1):
            lane_x = xc + (s * hw / 2 if sec.right_hand else -s * hw / 2)
            y = s * (sec.curb(s) + 1.5)
            for _ in range(rng.integers(0, 4)):
                built = (
                    ob.car(rng, str(rng.choice(ob.CAR_KINDS))) if rng.random() < 0.85 else ob.box_truck(rng)
                )
                L = built[1][0]
                b.add_thing(built, lane_x, y + s * L / 2, -s * np.pi / 2, 0.0, "vehicle.stopped")
                y += s * (L + rng.uniform(1.5, 3.5))
    for s in (-1, 1):  # cyclists in bike lanes
        if sec.bike_w[s]:
            d = sec.direction(s)
            for _ in range(rng.integers(0, 3)):
                x = rng.uniform(-60, 60)
                y = s * (sec.lanes_end(s) + sec.bike_w[s] / 2)
                v = rng.uniform(3, 6)
                _add_cyclist(rng, b, x, y, 0.0 if d > 0 else np.pi, v)


def _add_cyclist(rng: np.random.Generator, b: _Builder, x: float, y: float, yaw: float, v: float) -> None:
    seed = int(rng.integers(2**31))
    cad = rng.uniform(1.2, 1.6)

    def make(t: float) -> Mesh:
        return ob.two_wheeler(np.random.default_rng(seed), False, True, phase=cad * 2 * np.pi * t)[0]

    b.add_thing(
        ob.two_wheeler(np.random.default_rng(seed), False, True), x, y, yaw, v, "cycle.with_rider", make
    )


def _add_person(
    rng: np.random.Generator, b: _Builder, raw: str, x: float, y: float, yaw: float, speed: float
) -> None:
    """A person; walkers swing their limbs with a gait phase that advances with distance."""
    seed = int(rng.integers(2**31))
    colours = (ob._pick(rng, ob.CLOTH_COLOURS), ob._pick(rng, ob.CLOTH_COLOURS))
    height = None if raw != "human.pedestrian.child" else float(rng.uniform(1.05, 1.35))
    if height is None:
        height = float(rng.uniform(1.55, 1.92))
    phase0 = rng.uniform(0, 2 * np.pi)
    moving = speed > 0
    attr = "pedestrian.moving" if moving else "pedestrian.standing"

    def make(t: float) -> Mesh:
        phase = phase0 + 2 * np.pi * speed * t / 1.4
        return ob.pedestrian(np.random.default_rng(seed), raw, phase, moving, height, colours)[0]

    built = ob.pedestrian(np.random.default_rng(seed), raw, phase0, moving, height, colours)
    b.add_thing(built, x, y, yaw, speed, attr, make if moving else None)


def _people(rng: np.random.Generator, b: _Builder, sec: _Section, cross, x_mid: float) -> None:
    """Pedestrians walking along sidewalks, standing groups, crossers, bikes at racks, oddities."""
    xc, hw, sw = cross
    for s in (-1, 1):
        y_lo, y_hi = sec.sidewalk_in(s) + 0.6, sec.sidewalk_out(s) - 0.4
        for _ in range(rng.integers(4, 13)):
            x = x_mid + rng.uniform(-70, 70)
            y = s * rng.uniform(y_lo, max(y_lo, y_hi))
            walking = rng.random() < 0.65
            raw = "human.pedestrian.child" if rng.random() < 0.1 else "human.pedestrian.adult"
            if rng.random() < 0.03:
                raw = "human.pedestrian.police_officer"
            yaw = (0.0 if rng.random() < 0.5 else np.pi) + (
                rng.uniform(-0.1, 0.1) if walking else rng.uniform(-3, 3)
            )
            _add_person(rng, b, raw, x, y, yaw, float(rng.uniform(1.0, 1.6)) if walking else 0.0)
            if not walking and rng.random() < 0.4:  # a standing group
                _add_person(
                    rng,
                    b,
                    "human.pedestrian.adult",
                    x + rng.uniform(0.6, 1.0),
                    y + rng.uniform(-0.5, 0.5),
                    rng.uniform(0, 2 * np.pi),
                    0.0,
                )
        for _ in range(rng.integers(1, 5)):  # parked bicycles near the frontage
            x = x_mid + rng.uniform(-50, 50)
            if abs(x - xc) < hw + sw + 1:
                continue
            y = s * (sec.sidewalk_out(s) - 0.5)
            b.add_thing(
                ob.two_wheeler(rng, False, False),
                x,
                y,
                s * np.pi / 2 + rng.uniform(-0.3, 0.3),
                attribute="cycle.without_rider",
            )
        for _ in range(rng.integers(0, 4)):  # wheelie bins at the curb
            x = x_mid + rng.uniform(-60, 60)
            b.add_thing(ob.pushable(rng), x, s * (sec.sidewalk_in(s) + 0.5), rng.uniform(-0.3, 0.3))
    if xc < 1e8:  # people crossing the side street on the zebra
        for _ in range(rng.integers(0, 4)):
            s = int(rng.choice([-1, 1]))
            y = s * (sec.sidewalk_in(s) + sec.sidewalk_w[s] / 2)
            x = xc + rng.uniform(-hw, hw)
            _add_person(
                rng,
                b,
                "human.pedestrian.adult",
                x,
                y + rng.uniform(-0.5, 0.5),
                float(rng.choice([0.0, np.pi])),
                float(rng.uniform(1.1, 1.5)),
            )
    s = int(rng.choice([-1, 1]))
    y = s * (sec.sidewalk_in(s) + sec.sidewalk_w[s] / 2)
    if rng.random() < 0.3:
        b.add_thing(ob.stroller(rng), x_mid + rng.uniform(-40, 40), y, 0.0, 1.0, "pedestrian.moving")
    if rng.random() < 0.2:
        b.add_thing(ob.animal(rng), x_mid + rng.uniform(-40, 40), y, rng.uniform(0, 6), 0.0)


def _ensure_rare(rng: np.random.Generator, b: _Builder, sec: _Section, cross, x_mid: float) -> None:
    """Guarantee a bus, a truck, a trailer, motorcycles and bicycles within ~40 m of the ego path."""

    def near(raw_names: tuple[str, ...]) -> int:
        ids = {RAW_INDEX[n] for n in raw_names}
        return sum(1 for t in b.things if t.raw in ids and abs(t.x0 - x_mid) < 45)

    xc, hw, sw = cross
    sides = [s for s in (-1, 1) if sec.parking_w[s]]

    def free_spot(L: float) -> tuple[float, float, int] | None:
        """A free stretch of parking lane near the ego's drive (x, y, side)."""
        for _ in range(40):
            s = int(rng.choice(sides))
            y = s * (sec.curb(s) - 1.3)
            x = x_mid + rng.uniform(-40, 40)
            if b.free(x - L / 2 - 1, x + L / 2 + 1, y - 1.4, y + 1.4) and abs(x - xc) > hw + sw + L / 2:
                return x, y, s
        return None

    # placed before the parking lanes are filled, so a spot is always found
    if not near(("vehicle.bus.rigid", "vehicle.bus.bendy")):
        built = ob.bus(rng)
        L = built[1][0]
        spot = free_spot(L)
        if spot is not None:
            x, y, s = spot
            b.add_thing(built, x, y, 0.0 if sec.direction(s) > 0 else np.pi, 0.0, "vehicle.stopped")
            b.occupy(x - L / 2, x + L / 2, y - 1.3, y + 1.3)
    if not near(("vehicle.trailer",)) or not near(("vehicle.truck",)):
        spot = free_spot(22)
        if spot is not None:
            x, y, s = spot
            dd = sec.direction(s)
            L = _add_tractor_trailer(rng, b, x + dd * 11, y, dd, 0.0, "vehicle.parked")
            b.occupy(x - L / 2, x + L / 2, y - 1.3, y + 1.3)
    if near(("vehicle.motorcycle",)) < 2 or near(("vehicle.bicycle",)) < 2:
        for motor in (True, False):
            for _ in range(2):
                ss = int(rng.choice([-1, 1]))
                x = x_mid + rng.uniform(-30, 30)
                if abs(x - xc) < hw + sw + 1:
                    x += 2 * (hw + sw)
                y = ss * (sec.sidewalk_out(ss) - 0.6)
                b.add_thing(
                    ob.two_wheeler(rng, motor, False),
                    x,
                    y,
                    ss * np.pi / 2 + rng.uniform(-0.3, 0.3),
                    attribute="cycle.without_rider",
                )


def _clear_ego(things: list[Thing], ego: EgoPath, duration: float) -> list[Thing]:
    """Drop objects that would intersect the ego vehicle at any time, then renumber instances."""
    keep = []
    ts = np.linspace(0, duration, 12)
    ego_xy = np.array([ego.pose(t)[0][:2] for t in ts])
    for th in things:
        xy = np.array([th.xy(t) for t in ts])
        rad = 0.5 * np.hypot(th.size[0], th.size[1]) + 2.6
        if np.all(np.hypot(*(xy - ego_xy).T) > rad):
            keep.append(th)
    for i, th in enumerate(keep):
        if th.inst != i:
            th.mesh = th.mesh.with_instance(i)
            if th.make_mesh is not None:
                th.make_mesh = lambda t, f=th.make_mesh, i=i: f(t).with_instance(i)
            th.inst = i
    return keep
