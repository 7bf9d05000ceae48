"""Object library: vehicles, people, road furniture and vegetation as labelled composite meshes.

Every builder returns a Mesh in the object's own frame (x forward, y left, z up, origin on the
ground under the box centre) and the annotation box size (length, width, height). Sizes follow
nuScenes statistics; shapes are coarse on purpose, but the confusions real data has are kept:
pickups (truck) against SUVs (car), box trucks against buses and trailers, yellow trucks
against construction machines, riders that belong to their bicycle or motorcycle.
"""

from __future__ import annotations

import numpy as np

from weak3d.world.mesh import (
    Mesh,
    box,
    box_between,
    concat,
    cylinder_y,
    ellipsoid,
    frustum,
    part,
    prism_xz,
    ring_of_boxes,
)

Size = tuple[float, float, float]

CAR_COLOURS = np.array(
    [
        (235, 235, 235),
        (20, 20, 24),
        (128, 130, 134),
        (185, 188, 192),
        (150, 20, 25),
        (25, 45, 110),
        (200, 200, 190),
        (60, 70, 60),
        (90, 60, 40),
        (230, 190, 40),
        (40, 40, 45),
        (210, 210, 215),
    ],
    dtype=np.float64,
)
CLOTH_COLOURS = np.array(
    [
        (30, 30, 35),
        (60, 70, 110),
        (150, 150, 155),
        (200, 200, 205),
        (120, 30, 30),
        (40, 80, 50),
        (170, 140, 100),
        (90, 60, 110),
        (230, 230, 230),
    ],
    dtype=np.float64,
)


def _pick(rng: np.random.Generator, colours: np.ndarray) -> np.ndarray:
    c = colours[rng.integers(len(colours))]
    return np.clip(c * rng.uniform(0.85, 1.12), 0, 255)


def _rot_y(V: np.ndarray, pitch: float) -> np.ndarray:
    c, s = np.cos(pitch), np.sin(pitch)
    return V @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T


def _wheels(raw: str, xs: list[float], half_track: float, r: float, w: float) -> list[Mesh]:
    return [part(*cylinder_y((x, s * half_track, r), r, w), raw, "tyre") for x in xs for s in (-1, 1)]


# --- cars, pickups, vans ---

CAR_KINDS = ("sedan", "hatchback", "suv", "van")


def car(
    rng: np.random.Generator, kind: str = "sedan", raw: str = "vehicle.car", paint: np.ndarray | None = None
) -> tuple[Mesh, Size]:
    """Passenger car (also police cars and ambulances through `raw` and `paint`)."""
    L, W, H, zb, hood = {
        "sedan": (rng.uniform(4.3, 4.95), rng.uniform(1.75, 1.88), rng.uniform(1.40, 1.52), 0.88, 1.1),
        "hatchback": (rng.uniform(3.7, 4.2), rng.uniform(1.68, 1.8), rng.uniform(1.45, 1.58), 0.9, 0.85),
        "suv": (rng.uniform(4.5, 4.95), rng.uniform(1.85, 1.98), rng.uniform(1.68, 1.85), 1.05, 1.0),
        "van": (rng.uniform(4.8, 5.3), rng.uniform(1.9, 2.0), rng.uniform(1.9, 2.05), 1.05, 0.55),
    }[kind]
    paint = _pick(rng, CAR_COLOURS) if paint is None else paint
    r = 0.31 if kind in ("sedan", "hatchback") else 0.36
    body = prism_xz(
        [
            (-L / 2, 0.3),
            (L / 2, 0.3),
            (L / 2, zb - 0.2),
            (L / 2 - 0.25, zb),
            (-L / 2 + 0.15, zb),
            (-L / 2, zb - 0.12),
        ],
        -W / 2,
        W / 2,
    )
    front = L / 2 - hood
    rear = -L / 2 + (0.15 if kind in ("hatchback", "van", "suv") else 0.65)
    slope_f = min(0.75, (H - zb) * 0.9)
    slope_r = 0.25 if kind != "sedan" else 0.45
    cabin = prism_xz(
        [(rear, zb), (front, zb), (front - slope_f, H - 0.03), (rear + slope_r, H - 0.03)],
        -W / 2 + 0.08,
        W / 2 - 0.08,
    )
    roof = box_between(H - 0.04, H, rear + slope_r + 0.05, front - slope_f - 0.05, -W / 2 + 0.1, W / 2 - 0.1)
    parts = [
        part(*body, raw, "paint_car", paint),
        part(*cabin, raw, "glass"),
        part(*roof, raw, "paint_car", paint),
        part(*box((L / 2 - 0.02, W / 2 - 0.25, zb - 0.25), (0.06, 0.3, 0.12)), raw, "lamp"),
        part(*box((L / 2 - 0.02, -W / 2 + 0.25, zb - 0.25), (0.06, 0.3, 0.12)), raw, "lamp"),
        part(*box((-L / 2 + 0.02, 0, zb - 0.3), (0.05, W - 0.3, 0.1)), raw, "reflector"),
    ]
    parts += _wheels(raw, [L / 2 - 0.85, -L / 2 + 0.8], W / 2 - 0.14, r, 0.22)
    return concat(parts), (L, W, H)


def pickup(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Pickup truck: vehicle.truck in nuScenes, with a car-like front."""
    raw = "vehicle.truck"
    L, W, H = rng.uniform(5.2, 5.9), rng.uniform(1.9, 2.02), rng.uniform(1.78, 1.92)
    paint = _pick(rng, CAR_COLOURS)
    zb = 1.1
    body = prism_xz(
        [(-L / 2, 0.42), (L / 2, 0.42), (L / 2, zb - 0.2), (L / 2 - 0.2, zb), (-L / 2, zb)], -W / 2, W / 2
    )
    cab_r, cab_f = -0.3, L / 2 - 1.25
    cabin = prism_xz(
        [(cab_r, zb), (cab_f, zb), (cab_f - 0.6, H - 0.03), (cab_r, H - 0.03)], -W / 2 + 0.08, W / 2 - 0.08
    )
    bed_h = zb + rng.uniform(0.35, 0.5)
    parts = [
        part(*body, raw, "paint_car", paint),
        part(*cabin, raw, "glass"),
        part(
            *box_between(H - 0.04, H, cab_r, cab_f - 0.65, -W / 2 + 0.1, W / 2 - 0.1), raw, "paint_car", paint
        ),
        part(*box_between(zb, bed_h, -L / 2, cab_r, W / 2 - 0.06, W / 2), raw, "paint_car", paint),
        part(*box_between(zb, bed_h, -L / 2, cab_r, -W / 2, -W / 2 + 0.06), raw, "paint_car", paint),
        part(*box_between(zb, bed_h, -L / 2, -L / 2 + 0.06, -W / 2, W / 2), raw, "paint_car", paint),
    ]
    if rng.random() < 0.4:  # load in the bed
        parts.append(part(*box_between(zb, bed_h + 0.3, -L / 2 + 0.3, cab_r - 0.3, -0.5, 0.5), raw, "wood"))
    parts += _wheels(raw, [L / 2 - 0.95, -L / 2 + 1.0], W / 2 - 0.15, 0.39, 0.25)
    return concat(parts), (L, W, H)


def box_truck(rng: np.random.Generator, raw: str = "vehicle.truck") -> tuple[Mesh, Size]:
    """Rigid truck: cab and a cargo box (delivery, garbage, refrigerated)."""
    L, W = rng.uniform(6.5, 10.5), rng.uniform(2.3, 2.5)
    H = rng.uniform(2.9, 3.8)
    cab_l, cab_h = rng.uniform(1.9, 2.4), rng.uniform(2.5, 3.0)
    paint = _pick(rng, CAR_COLOURS)
    cargo = _pick(rng, CAR_COLOURS[:4])
    xf = L / 2
    parts = [
        part(*box_between(0.5, cab_h * 0.55, xf - cab_l, xf, -W / 2, W / 2), raw, "paint_car", paint),
        part(
            *box_between(cab_h * 0.55, cab_h, xf - cab_l, xf - 0.15, -W / 2 + 0.05, W / 2 - 0.05),
            raw,
            "glass",
        ),
        part(
            *box_between(cab_h - 0.05, cab_h, xf - cab_l, xf - 0.2, -W / 2 + 0.1, W / 2 - 0.1),
            raw,
            "paint_car",
            paint,
        ),
        part(*box_between(0.55, 1.05, -L / 2, xf - cab_l, -0.5, 0.5), raw, "dark_metal"),
        part(*box_between(1.05, H, -L / 2, xf - cab_l - 0.15, -W / 2, W / 2), raw, "paint_car", cargo),
        part(*box((-L / 2 + 0.02, 0, 0.9), (0.05, W - 0.2, 0.12)), raw, "reflector"),
    ]
    parts += _wheels(raw, [xf - 1.2, -L / 2 + 1.6], W / 2 - 0.2, 0.5, 0.35)
    return concat(parts), (L, W, H)


def tractor(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Semi-trailer tractor unit (vehicle.truck); the trailer is a separate instance."""
    raw = "vehicle.truck"
    L, W, H = rng.uniform(5.8, 6.8), 2.5, rng.uniform(3.2, 3.9)
    paint = _pick(rng, CAR_COLOURS)
    cab_l = rng.uniform(2.1, 2.5)
    xf = L / 2
    parts = [
        part(*box_between(0.5, H * 0.6, xf - cab_l, xf, -W / 2, W / 2), raw, "paint_car", paint),
        part(
            *box_between(H * 0.6, H - 0.1, xf - cab_l, xf - 0.12, -W / 2 + 0.05, W / 2 - 0.05), raw, "glass"
        ),
        part(
            *box_between(H - 0.1, H, xf - cab_l, xf - 0.2, -W / 2 + 0.08, W / 2 - 0.08),
            raw,
            "paint_car",
            paint,
        ),
        part(*box_between(0.6, 1.15, -L / 2, xf - cab_l, -0.55, 0.55), raw, "dark_metal"),
    ]
    parts += _wheels(raw, [xf - 1.1, -L / 2 + 1.0, -L / 2 + 2.3], W / 2 - 0.22, 0.5, 0.4)
    return concat(parts), (L, W, H)


def trailer(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Semi-trailer: box, container or flatbed; a box trailer looks much like a bus from afar."""
    raw = "vehicle.trailer"
    kind = rng.choice(["box", "container", "flatbed"], p=[0.5, 0.3, 0.2])
    L, W = rng.uniform(8.0, 13.6), rng.uniform(2.45, 2.55)
    colour = _pick(rng, CAR_COLOURS[:4]) if kind == "box" else rng.uniform(60, 200, 3)
    deck = 1.15
    parts = []
    if kind == "flatbed":
        H = deck + 0.2
        parts.append(part(*box_between(deck, deck + 0.2, -L / 2, L / 2, -W / 2, W / 2), raw, "dark_metal"))
        x = -L / 2 + 0.3
        while x < L / 2 - 2.0:  # cargo is part of the trailer
            cl, ch = rng.uniform(1.2, 3.0), rng.uniform(0.6, 1.8)
            parts.append(
                part(
                    *box_between(deck + 0.2, deck + 0.2 + ch, x, x + cl, -W / 2 + 0.1, W / 2 - 0.1),
                    raw,
                    "wood",
                )
            )
            H = max(H, deck + 0.2 + ch)
            x += cl + rng.uniform(0.3, 1.5)
    else:
        H = rng.uniform(3.8, 4.05)
        parts.append(part(*box_between(deck, H, -L / 2, L / 2, -W / 2, W / 2), raw, "metal", colour))
        parts.append(
            part(
                *box_between(0.6, deck, -L / 2 + 0.2, -L / 2 + 3.6, -W / 2 + 0.2, W / 2 - 0.2),
                raw,
                "dark_metal",
            )
        )
    parts += [
        part(
            *box_between(0.0, deck, L / 2 - 2.6, L / 2 - 2.45, s * 0.9 - 0.07, s * 0.9 + 0.07),
            raw,
            "dark_metal",
        )
        for s in (-1, 1)
    ]  # landing legs
    parts += _wheels(raw, [-L / 2 + 1.2, -L / 2 + 2.5], W / 2 - 0.25, 0.5, 0.4)
    return concat(parts), (L, W, H)


def bus(rng: np.random.Generator, bendy: bool = False) -> tuple[Mesh, Size]:
    """City bus: a tall box with a window band; bendy buses are two boxes and a bellows."""
    raw = "vehicle.bus.bendy" if bendy else "vehicle.bus.rigid"
    W, H = 2.55, rng.uniform(3.0, 3.4)
    paint = rng.choice([(230, 230, 230), (200, 40, 40), (40, 100, 180), (240, 190, 40), (60, 140, 80)])
    paint = np.array(paint, np.float64) * rng.uniform(0.9, 1.05)
    segments = [rng.uniform(8.0, 9.0), rng.uniform(8.5, 9.5)] if bendy else [rng.uniform(10.5, 12.8)]
    L = sum(segments) + 0.8 * (len(segments) - 1)
    parts, x = [], L / 2
    for k, seg in enumerate(segments):
        x0, x1 = x - seg, x
        parts += [
            part(*box_between(0.35, 1.15, x0, x1, -W / 2, W / 2), raw, "paint_car", paint),
            part(*box_between(1.15, H - 0.5, x0, x1, -W / 2 + 0.02, W / 2 - 0.02), raw, "glass"),
            part(*box_between(H - 0.5, H, x0, x1, -W / 2, W / 2), raw, "paint_car", paint),
        ]
        parts += _wheels(raw, [x1 - 2.6, x0 + 2.8] if k == 0 else [x0 + 2.5], W / 2 - 0.25, 0.5, 0.35)
        if k + 1 < len(segments):
            parts.append(
                part(*box_between(0.5, H - 0.2, x0 - 0.8, x0, -W / 2 + 0.15, W / 2 - 0.15), raw, "tyre")
            )
        x = x0 - 0.8
    parts.append(part(*box((L / 2 - 0.02, 0, 0.8), (0.05, 1.9, 0.15)), raw, "lamp"))
    return concat(parts), (L, W, H)


def construction_vehicle(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Excavator, wheel loader or road roller (vehicle.construction)."""
    raw = "vehicle.construction"
    kind = rng.choice(["excavator", "loader", "roller"], p=[0.45, 0.35, 0.2])
    colour = rng.choice([(230, 175, 30), (235, 120, 30), (230, 175, 30), (200, 200, 195)])
    colour = np.array(colour, np.float64) * rng.uniform(0.9, 1.05)
    mat = "yellow_machine"
    if kind == "excavator":
        L, W = rng.uniform(4.0, 5.0), rng.uniform(2.5, 2.9)
        parts = [
            part(*box_between(0, 0.85, -L / 2, L / 2, s * W / 2 - 0.6 * s, s * W / 2), raw, "tyre")
            for s in (-1, 1)
        ]
        parts += [
            part(*box_between(0.85, 2.1, -1.6, 1.3, -1.25, 1.25), raw, mat, colour),
            part(*box_between(2.1, 3.0, 0.2, 1.2, 0.1, 1.15), raw, "glass"),
            part(*box_between(2.95, 3.05, 0.2, 1.2, 0.1, 1.15), raw, mat, colour),
        ]
        # boom and stick: angled boxes reaching forward and down to the bucket
        pitch = rng.uniform(0.5, 0.9)
        bV, bT = box((0, 0, 0), (3.2, 0.4, 0.45))
        parts.append(part(_rot_y(bV, -pitch) + (1.3 + 1.4, -0.5, 2.2 + 1.1), bT, raw, mat, colour))
        sV, sT = box((0, 0, 0), (2.4, 0.3, 0.35))
        tip = np.array([1.3 + 2.8 * np.cos(pitch), -0.5, 2.2 + 2.8 * np.sin(pitch)])
        parts.append(part(_rot_y(sV, 1.2) + tip + (0.45, 0, -1.0), sT, raw, mat, colour))
        parts.append(
            part(*box((tip[0] + 0.9, -0.5, max(0.4, tip[2] - 2.1)), (0.8, 1.0, 0.7)), raw, "dark_metal")
        )
        L_box = L + 2.5
        H = 3.3 + 2.8 * np.sin(pitch) - 2.2 * 0.6
        return concat(parts), (L_box, W, max(3.1, H))
    if kind == "loader":
        L, W, H = rng.uniform(6.0, 7.5), rng.uniform(2.4, 2.8), rng.uniform(3.1, 3.5)
        parts = [
            part(*box_between(0.7, 1.9, -L / 2, L / 2 - 1.4, -W / 2 + 0.35, W / 2 - 0.35), raw, mat, colour),
            part(*box_between(1.9, H - 0.1, -0.6, 0.8, -0.8, 0.8), raw, "glass"),
            part(*box_between(H - 0.1, H, -0.7, 0.9, -0.9, 0.9), raw, mat, colour),
            part(*box_between(0.1, 1.1, L / 2 - 1.1, L / 2, -W / 2, W / 2), raw, "dark_metal"),
            part(*box_between(0.6, 1.5, L / 2 - 1.6, L / 2 - 1.0, -0.7, 0.7), raw, mat, colour),
        ]
        parts += _wheels(raw, [L / 2 - 2.2, -L / 2 + 1.3], W / 2 - 0.35, 0.75, 0.6)
        return concat(parts), (L, W, H)
    L, W, H = rng.uniform(4.2, 5.2), rng.uniform(1.9, 2.3), rng.uniform(2.9, 3.1)
    parts = [
        part(*cylinder_y((L / 2 - 0.8, 0, 0.75), 0.75, W - 0.1, 16), raw, "metal"),
        part(*box_between(0.5, 1.7, -L / 2, L / 2 - 1.7, -W / 2 + 0.2, W / 2 - 0.2), raw, mat, colour),
        part(*box_between(1.7, H - 0.1, -L / 2 + 0.3, -L / 2 + 1.8, -0.8, 0.8), raw, "glass"),
        part(*box_between(H - 0.1, H, -L / 2 + 0.2, -L / 2 + 1.9, -0.9, 0.9), raw, mat, colour),
    ]
    parts += _wheels(raw, [-L / 2 + 0.8], W / 2 - 0.25, 0.6, 0.5)
    return concat(parts), (L, W, H)


# --- people and two-wheelers ---


def person_parts(
    rng: np.random.Generator,
    raw: str,
    height: float,
    phase: float,
    moving: bool,
    vest: bool = False,
    colours: tuple[np.ndarray, np.ndarray] | None = None,
    x0: float = 0.0,
    seated: bool = False,
) -> list[Mesh]:
    """A person as boxes and a head; legs and arms swing with the gait phase."""
    top_c, leg_c = colours if colours is not None else (_pick(rng, CLOTH_COLOURS), _pick(rng, CLOTH_COLOURS))
    leg_len = 0.47 * height
    hip = leg_len if not seated else 0.85 * leg_len + 0.1
    swing = 0.35 * np.sin(phase) if moving else 0.0
    parts = []
    for side, sgn in ((-1, 1), (1, -1)):
        lV, lT = box((0, 0, -leg_len / 2), (0.14, 0.13, leg_len))
        a = sgn * swing if not seated else -1.3
        lV = _rot_y(lV, a) + (x0, side * 0.1, hip)
        lV[:, 2] = np.maximum(lV[:, 2], 0.0)
        parts.append(part(lV, lT, raw, "cloth", leg_c))
    torso_h = 0.3 * height
    parts.append(
        part(
            *box((x0, 0, hip + torso_h / 2), (0.24, 0.4, torso_h)),
            raw,
            "hivis" if vest else "cloth",
            None if vest else top_c,
        )
    )
    arm_len = 0.36 * height
    for side, sgn in ((-1, -1), (1, 1)):
        aV, aT = box((0, 0, -arm_len / 2), (0.09, 0.09, arm_len))
        aV = _rot_y(aV, sgn * swing * 0.8) + (x0, side * 0.25, hip + torso_h - 0.03)
        parts.append(part(aV, aT, raw, "cloth", top_c))
    head_r = 0.065 * height
    parts.append(
        part(
            *ellipsoid(
                (x0, 0, hip + torso_h + head_r * 1.3),
                (head_r * 0.9, head_r * 0.85, head_r),
                rings=5,
                segments=8,
            ),
            raw,
            "skin",
        )
    )
    if vest:  # helmet
        parts.append(
            part(
                *ellipsoid(
                    (x0, 0, hip + torso_h + head_r * 2.0), (head_r, head_r, head_r * 0.6), rings=4, segments=8
                ),
                raw,
                "hivis",
            )
        )
    return parts


def pedestrian(
    rng: np.random.Generator,
    raw: str = "human.pedestrian.adult",
    phase: float = 0.0,
    moving: bool = True,
    height: float | None = None,
    colours: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Mesh, Size]:
    if height is None:
        height = rng.uniform(1.05, 1.35) if raw == "human.pedestrian.child" else rng.uniform(1.55, 1.92)
    vest = raw in ("human.pedestrian.construction_worker", "human.pedestrian.police_officer")
    parts = person_parts(rng, raw, height, phase, moving, vest=vest, colours=colours)
    return concat(parts), (0.6, 0.65, height)


def stroller(rng: np.random.Generator) -> tuple[Mesh, Size]:
    raw = "human.pedestrian.stroller"
    c = _pick(rng, CLOTH_COLOURS)
    parts = [
        part(*box_between(0.35, 0.95, -0.4, 0.4, -0.27, 0.27), raw, "cloth", c),
        part(*box_between(0.95, 1.05, -0.5, -0.4, -0.25, 0.25), raw, "dark_metal"),
    ]
    parts += _wheels(raw, [-0.3, 0.3], 0.25, 0.12, 0.05)
    return concat(parts), (0.9, 0.6, 1.05)


def two_wheeler(rng: np.random.Generator, motor: bool, rider: bool, phase: float = 0.0) -> tuple[Mesh, Size]:
    """Bicycle or motorcycle; a rider is labelled as the vehicle, as in nuScenes-lidarseg."""
    raw = "vehicle.motorcycle" if motor else "vehicle.bicycle"
    paint = _pick(rng, CAR_COLOURS)
    if motor:
        L, r, wb = rng.uniform(1.9, 2.2), 0.3, 1.35
        parts = [part(*cylinder_y((x, 0, r), r, 0.12, 12), raw, "tyre") for x in (-wb / 2, wb / 2)]
        parts += [
            part(*box_between(0.4, 0.8, -0.55, 0.45, -0.17, 0.17), raw, "paint_car", paint),
            part(*box_between(0.8, 0.95, -0.65, 0.05, -0.15, 0.15), raw, "cloth", (25, 25, 25)),
            part(*box_between(0.35, 1.05, wb / 2 - 0.2, wb / 2 - 0.12, -0.05, 0.05), raw, "metal"),
            part(*box_between(1.0, 1.06, wb / 2 - 0.25, wb / 2 - 0.15, -0.38, 0.38), raw, "metal"),
            part(*box((wb / 2 + 0.02, 0, 0.9), (0.08, 0.16, 0.12)), raw, "lamp"),
        ]
        W, H = 0.8, 1.15
    else:
        L, r, wb = rng.uniform(1.65, 1.8), 0.34, 1.05
        parts = [part(*ring_of_boxes(r, 0.05, 0.04, 14), raw, "tyre") for _ in (0, 1)]
        parts = [p.moved(0, x, 0, r) for p, x in zip(parts, (-wb / 2, wb / 2), strict=False)]
        tube = 0.04
        frame = [
            ((-wb / 2, r), (0.0, r + 0.02)),
            ((0.0, r + 0.02), (-0.1, r + 0.55)),
            ((-0.1, r + 0.5), (wb / 2 - 0.12, r + 0.5)),
            ((0.0, r + 0.02), (wb / 2 - 0.12, r + 0.5)),
            ((wb / 2, r), (wb / 2 - 0.12, r + 0.6)),
            ((-wb / 2, r), (-0.1, r + 0.5)),
        ]
        for (xa, za), (xb, zb) in frame:
            length = np.hypot(xb - xa, zb - za)
            V, T = box((0, 0, 0), (length, tube, tube))
            V = _rot_y(V, -np.arctan2(zb - za, xb - xa)) + ((xa + xb) / 2, 0, (za + zb) / 2)
            parts.append(part(V, T, raw, "metal", paint))
        parts += [
            part(*box_between(r + 0.6, r + 0.64, wb / 2 - 0.16, wb / 2 - 0.08, -0.28, 0.28), raw, "metal"),
            part(*box_between(r + 0.58, r + 0.64, -0.22, -0.02, -0.07, 0.07), raw, "cloth", (20, 20, 20)),
        ]
        W, H = 0.6, 1.05
    if rider:
        seat = 0.55 if motor else 0.1
        body = person_parts(
            rng, raw, rng.uniform(1.6, 1.85), phase, moving=False, x0=-seat + 0.25, seated=True
        )
        parts += body
        H = 1.55 if motor else 1.75
    return concat(parts), (L, W, H)


# --- movable objects ---


def traffic_cone(rng: np.random.Generator) -> tuple[Mesh, Size]:
    raw = "movable_object.trafficcone"
    h = rng.uniform(0.5, 0.78)
    r0 = 0.17 * h / 0.7
    parts = [part(*box((0, 0, 0.015), (0.38 * h / 0.7, 0.38 * h / 0.7, 0.03)), raw, "cone_orange")]
    cuts = [0.03, 0.4 * h, 0.6 * h, h]
    mats = ["cone_orange", "cone_band", "cone_orange"]
    for (za, zb), mat in zip(zip(cuts[:-1], cuts[1:], strict=False), mats, strict=False):
        ra = r0 + (0.025 - r0) * za / h
        rb = r0 + (0.025 - r0) * zb / h
        V, T = frustum(ra, rb, zb - za, 10)
        parts.append(part(V + (0, 0, za), T, raw, mat))
    return concat(parts), (0.4, 0.4, h)


def barrier(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Jersey barrier (concrete or plastic) or a light barrier board on legs."""
    raw = "movable_object.barrier"
    L = rng.uniform(1.5, 2.5)
    if rng.random() < 0.6:
        H = rng.uniform(0.8, 1.05)
        prof = [(-0.3, 0), (0.3, 0), (0.12, 0.3), (0.1, H), (-0.1, H), (-0.12, 0.3)]
        V, T = prism_xz(prof, -L / 2, L / 2)
        V = V[:, [1, 0, 2]]  # profile across y, extruded along x
        mat = rng.choice(["concrete", "plastic_red", "plastic_white"])
        return concat([part(V, T, raw, str(mat))]), (L, 0.6, H)
    H = rng.uniform(1.0, 1.2)
    parts = [
        part(*box_between(0, H - 0.05, x - 0.03, x + 0.03, -0.02, 0.02), raw, "metal")
        for x in (-L / 2 + 0.1, L / 2 - 0.1)
    ]
    parts += [
        part(*box_between(0, 0.06, x - 0.05, x + 0.05, -0.3, 0.3), raw, "metal")
        for x in (-L / 2 + 0.1, L / 2 - 0.1)
    ]
    parts.append(part(*box_between(H - 0.35, H, -L / 2, L / 2, -0.02, 0.02), raw, "plastic_red"))
    parts.append(part(*box_between(H - 0.7, H - 0.55, -L / 2, L / 2, -0.02, 0.02), raw, "plastic_white"))
    return concat(parts), (L, 0.6, H)


def debris(rng: np.random.Generator) -> tuple[Mesh, Size]:
    raw = "movable_object.debris"
    parts = []
    for _ in range(rng.integers(2, 6)):
        c = (rng.uniform(-0.6, 0.6), rng.uniform(-0.4, 0.4), 0.0)
        s = rng.uniform(0.1, 0.45, 3)
        parts.append(part(*box((c[0], c[1], s[2] / 2), s, rng.uniform(0, np.pi)), raw, "debris"))
    return concat(parts), (1.4, 1.0, 0.45)


def pushable(rng: np.random.Generator) -> tuple[Mesh, Size]:
    """Wheelie bin (movable_object.pushable_pullable)."""
    raw = "movable_object.pushable_pullable"
    c = rng.choice([(40, 90, 50), (60, 60, 65), (40, 70, 140), (120, 90, 40)])
    return concat(
        [
            part(*box_between(0.05, 1.05, -0.35, 0.35, -0.3, 0.3), raw, "plastic_white", c),
            part(*box_between(1.05, 1.1, -0.4, 0.38, -0.32, 0.32), raw, "plastic_white", c),
        ]
    ), (0.8, 0.65, 1.1)


def animal(rng: np.random.Generator) -> tuple[Mesh, Size]:
    raw = "animal"
    c = _pick(rng, np.array([(120, 90, 60), (30, 30, 30), (200, 180, 150)], np.float64))
    parts = [
        part(*ellipsoid((0, 0, 0.45), (0.4, 0.15, 0.16), rings=5, segments=8), raw, "cloth", c),
        part(*ellipsoid((0.45, 0, 0.62), (0.13, 0.09, 0.1), rings=4, segments=8), raw, "cloth", c),
    ]
    parts += [
        part(*box_between(0, 0.4, x - 0.03, x + 0.03, y - 0.03, y + 0.03), raw, "cloth", c)
        for x in (-0.28, 0.28)
        for y in (-0.08, 0.08)
    ]
    return concat(parts), (0.95, 0.35, 0.72)


# --- static objects (stuff) ---


def tree(rng: np.random.Generator) -> Mesh:
    """Trunk and one to three rough crown blobs; all static.vegetation, as in nuScenes."""
    raw = "static.vegetation"
    trunk_h = rng.uniform(1.8, 4.0)
    r = rng.uniform(0.1, 0.28)
    parts = [part(*frustum(r * 1.15, r * 0.8, trunk_h + 0.5, 8), raw, "bark")]
    crown_r = rng.uniform(1.4, 3.6)
    for _ in range(rng.integers(1, 4)):
        c = (
            rng.uniform(-0.5, 0.5) * crown_r,
            rng.uniform(-0.5, 0.5) * crown_r,
            trunk_h + crown_r * rng.uniform(0.6, 1.0),
        )
        radii = crown_r * rng.uniform(0.65, 1.0, 3) * (1, 1, rng.uniform(0.7, 1.3))
        green = np.array(MATERIALS_LEAVES) * rng.uniform(0.75, 1.2, 3)
        parts.append(part(*ellipsoid(c, radii, rng, jitter=0.25, rings=6, segments=9), raw, "leaves", green))
    return concat(parts)


MATERIALS_LEAVES = (52, 96, 42)


def bush(rng: np.random.Generator) -> Mesh:
    raw = "static.vegetation"
    parts = []
    for _ in range(rng.integers(1, 4)):
        rad = rng.uniform(0.35, 1.1)
        c = (rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), rad * 0.6)
        parts.append(
            part(
                *ellipsoid(
                    c, (rad, rad * rng.uniform(0.8, 1.2), rad * 0.8), rng, jitter=0.3, rings=5, segments=8
                ),
                raw,
                "hedge",
            )
        )
    return concat(parts)


def street_light(rng: np.random.Generator, arm_dir: float) -> Mesh:
    """Pole with an arm reaching toward the road (arm_dir = +1 or -1 along local y)."""
    raw = "static.manmade"
    h = rng.uniform(6.5, 9.0)
    arm = rng.uniform(1.2, 2.5)
    return concat(
        [
            part(*frustum(0.11, 0.07, h, 8), raw, "metal"),
            part(*box((0, arm_dir * arm / 2, h - 0.1), (0.08, arm, 0.08)), raw, "metal"),
            part(*box((0, arm_dir * arm, h - 0.2), (0.3, 0.6, 0.15)), raw, "lamp"),
        ]
    )


def sign(rng: np.random.Generator) -> Mesh:
    raw = "static.manmade"
    h = rng.uniform(2.2, 3.0)
    face = rng.choice([(200, 30, 30), (30, 70, 160), (235, 235, 235), (230, 190, 30), (40, 130, 60)])
    parts = [
        part(*frustum(0.035, 0.035, h, 6), raw, "metal"),
        part(*box((0.04, 0, h - 0.3), (0.03, 0.6, 0.6)), raw, "sign_face", face),
    ]
    if rng.random() < 0.4:
        parts.append(part(*box((0.04, 0, h - 0.85), (0.03, 0.5, 0.3)), raw, "sign_face", (235, 235, 235)))
    return concat(parts)


def traffic_light(rng: np.random.Generator, arm_len: float) -> Mesh:
    """Pole with an arm over the road along +y and signal heads hanging from it."""
    raw = "static.manmade"
    h = rng.uniform(5.5, 6.5)
    parts = [
        part(*frustum(0.13, 0.1, h, 8), raw, "metal"),
        part(*box((0, arm_len / 2, h - 0.2), (0.12, arm_len, 0.12)), raw, "metal"),
        part(*box((0.2, 0, 2.6), (0.25, 0.3, 0.7)), raw, "dark_metal"),
    ]
    for y in np.linspace(arm_len * 0.45, arm_len * 0.95, 2):
        parts.append(part(*box((0.15, y, h - 0.85), (0.3, 0.35, 1.0)), raw, "dark_metal"))
    return concat(parts)


def fence(length: float, height: float, kind: str) -> Mesh:
    """Fence along local x from 0 to length: chain-link panels (LiDAR sees through) or pickets."""
    raw = "static.manmade"
    n_posts = max(2, int(length / 2.5) + 1)
    parts = [
        part(*box_between(0, height, x - 0.03, x + 0.03, -0.03, 0.03), raw, "metal")
        for x in np.linspace(0, length, n_posts)
    ]
    parts.append(part(*box_between(height - 0.05, height, 0, length, -0.025, 0.025), raw, "metal"))
    if kind == "chainlink":
        parts.append(part(*box_between(0.05, height - 0.05, 0, length, -0.005, 0.005), raw, "chainlink"))
    else:
        parts.append(part(*box_between(0.25, 0.3, 0, length, -0.025, 0.025), raw, "wood"))
        for x in np.arange(0.1, length, 0.25):
            parts.append(
                part(*box_between(0.0, height - 0.1, x - 0.04, x + 0.04, -0.015, 0.015), raw, "wood")
            )
    return concat(parts)


def building(rng: np.random.Generator, length: float, depth: float, height: float, front_y: float) -> Mesh:
    """Box building along local x (0..length) with its facade at y = 0.

    front_y = +1: the facade faces +y and the body extends to y = -depth; -1 mirrors that. Windows
    (glass: weak LiDAR returns) and a shop front go on the facade; a parapet tops the roof.
    """
    raw = "static.manmade"
    mat = "brick" if rng.random() < 0.35 else "facade"
    tint = np.array(MATERIALS_FACADE[rng.integers(len(MATERIALS_FACADE))], np.float64) * rng.uniform(
        0.85, 1.1
    )
    y0, y1 = (-depth, 0.0) if front_y > 0 else (0.0, depth)
    parts = [part(*box_between(0, height, 0, length, y0, y1), raw, mat, tint)]
    parts.append(part(*box_between(height, height + 0.6, 0, length, y0, y0 + 0.25), raw, mat, tint))
    parts.append(part(*box_between(height, height + 0.6, 0, length, y1 - 0.25, y1), raw, mat, tint))
    face = 0.0 + 0.03 * front_y
    floor_h = rng.uniform(3.0, 3.8)
    win_w = rng.uniform(1.0, 2.2)
    pitch = win_w + rng.uniform(0.8, 2.0)
    z = floor_h * 0.3
    # ground-floor shop windows, then a window grid per floor
    if rng.random() < 0.6:
        parts.append(
            part(*box_between(0.3, floor_h * 0.8, 0.5, length - 0.5, face - 0.02, face + 0.02), raw, "window")
        )
        z = floor_h * 1.3
    while z + 1.4 < height - 0.5:
        for x in np.arange(pitch / 2, length - win_w, pitch):
            parts.append(
                part(*box_between(z, z + 1.4, x, x + win_w, face - 0.02, face + 0.02), raw, "window")
            )
        z += floor_h
    return concat(parts)


MATERIALS_FACADE = (
    (190, 180, 165),
    (210, 205, 195),
    (160, 150, 140),
    (200, 185, 150),
    (140, 140, 150),
    (215, 215, 220),
    (175, 140, 110),
)


def wall(length: float, height: float, thick: float) -> Mesh:
    return part(*box_between(0, height, 0, length, -thick / 2, thick / 2), "static.manmade", "concrete")


def bus_shelter(rng: np.random.Generator) -> Mesh:
    raw = "static.manmade"
    L = rng.uniform(3.0, 5.0)
    parts = [
        part(*box_between(0, 2.4, x - 0.04, x + 0.04, y - 0.04, y + 0.04), raw, "metal")
        for x in (0, L)
        for y in (0, 1.4)
    ]
    parts.append(part(*box_between(2.4, 2.5, -0.1, L + 0.1, -0.1, 1.5), raw, "metal"))
    parts.append(part(*box_between(0.2, 2.3, 0, L, 1.38, 1.42), raw, "window"))
    parts.append(part(*box_between(0.45, 0.5, 0.5, L - 0.5, 0.9, 1.35), raw, "wood"))
    return concat(parts)


def small_static(rng: np.random.Generator, kind: str) -> Mesh:
    """Bollards, hydrants, benches, utility boxes (manmade); racks and odd items (ignored classes)."""
    if kind == "bollard":
        return part(*frustum(0.08, 0.08, rng.uniform(0.8, 1.0), 8), "static.manmade", "metal")
    if kind == "hydrant":
        return concat(
            [
                part(*frustum(0.12, 0.1, 0.7, 8), "static.manmade", "plastic_red"),
                part(*box((0, 0, 0.5), (0.35, 0.08, 0.08)), "static.manmade", "plastic_red"),
            ]
        )
    if kind == "bench":
        return concat(
            [
                part(*box_between(0.42, 0.47, -0.9, 0.9, -0.22, 0.22), "static.manmade", "wood"),
                part(*box_between(0.47, 0.85, -0.9, 0.9, 0.2, 0.24), "static.manmade", "wood"),
            ]
            + [
                part(*box_between(0, 0.42, x - 0.04, x + 0.04, -0.2, 0.2), "static.manmade", "metal")
                for x in (-0.8, 0.8)
            ]
        )
    if kind == "utility_box":
        return part(
            *box_between(0, rng.uniform(1.0, 1.6), -0.5, 0.5, -0.3, 0.3),
            "static.manmade",
            "metal",
            (110, 120, 110),
        )
    if kind == "bicycle_rack":
        raw = "static_object.bicycle_rack"
        return concat(
            [
                part(*ring_of_boxes(0.35, 0.04, 0.04, 10), raw, "metal").moved(np.pi / 2, x, 0, 0.15)
                for x in (-1.0, 0.0, 1.0)
            ]
        )
    # static.other: an odd pile of stuff, rarely seen
    parts = [
        part(
            *box((rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), s / 2), (s, s * 1.3, s), rng.uniform(0, 3)),
            "static.other",
            "wood",
        )
        for s in rng.uniform(0.3, 0.9, 4)
    ]
    return concat(parts)
