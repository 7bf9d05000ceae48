"""IUPC weak labels: simulated clicks, propagated labels and candidate sets per segment.

GT decides which classes a segment holds (the release simulates an annotator who clicks one
point per class per segment). Inputs come from `presegment`: ground segments are polar cells
(only their ground points), the others are HDBSCAN clusters.

Outputs per sample, over the full scan in raw point order, zero outside the camera FOV:
- ``sparse`` uint8: class of each clicked point, else 0;
- ``propagated`` uint8: class propagated to single-class segments, else 0; clicked points carry
  their click (as the release overwrites prop labels with sparse labels);
- ``candidates`` uint32: bit c set when class c may be the point's label; 0 = no set.

Class 0 ("ignore") is treated as in the release: it counts in class fractions and can be part of a
candidate set (bit 0; the candidate loss always allows class 0, so this is harmless). The release
also "clicks" class-0 points; here such a click would carry the value 0, i.e. no label, so it is
not made at all. Unlike the release every pick is seeded: config seed + sample token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from weak3d.classes import CLASSES, NUM_CLASSES, THING_CLASSES


@dataclass(frozen=True)
class WeakLabelConfig:
    """Weak-label rules; defaults are those of the IUPC release (prepare_sparse_label_mask.py)."""

    seed: int = 0
    point_per_class: int = 1  # clicks per class per segment
    # Clusters smaller than these are skipped (ground cells never are).
    stuff_min_points: int = 20  # no thing class present
    manmade_min_points: int = 10  # no thing class, but manmade present
    thing_min_points: int = 5  # a thing class present
    manmade_class: int = 15
    thing_classes: tuple[int, ...] = THING_CLASSES
    # Classes whose fraction of a cluster is <= the threshold are dropped (label noise the
    # annotator would not click); class 0 counts in the fractions.
    stuff_minority: float = 0.01  # no thing class
    thing_dominant_minority: float = 0.10  # one thing class, and it is the largest class
    stuff_dominant_minority: float = 0.001  # one thing class, but another class is the largest
    multi_thing_minority: float = 0.001  # two or more thing classes


@dataclass
class WeakLabels:
    sparse: np.ndarray  # uint8 (N,)
    propagated: np.ndarray  # uint8 (N,)
    candidates: np.ndarray  # uint32 (N,)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"sparse": self.sparse, "propagated": self.propagated, "candidates": self.candidates}


def sample_rng(seed: int, token: str) -> np.random.Generator:
    """Generator from the config seed and a stable hash of the sample token (not Python's hash)."""
    digest = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def class_bitmask(classes: np.ndarray) -> int:
    """uint32 bitmask with bit c set for every class c in `classes`."""
    return int(np.bitwise_or.reduce(np.left_shift(1, np.asarray(classes, dtype=np.uint64)), initial=0))


def cluster_min_points(counts: np.ndarray, cfg: WeakLabelConfig) -> int:
    """Smallest cluster size that is labelled, given the cluster's class counts."""
    if counts[list(cfg.thing_classes)].any():
        return cfg.thing_min_points
    if counts[cfg.manmade_class] > 0:
        return cfg.manmade_min_points
    return cfg.stuff_min_points


def minority_threshold(counts: np.ndarray, cfg: WeakLabelConfig) -> float:
    """Fraction at or below which a class is dropped from a cluster."""
    things = [c for c in cfg.thing_classes if counts[c] > 0]
    if not things:
        return cfg.stuff_minority
    if len(things) >= 2:
        return cfg.multi_thing_minority
    # np.argmax breaks ties towards the lower class id, i.e. towards a thing over stuff.
    return cfg.thing_dominant_minority if int(np.argmax(counts)) == things[0] else cfg.stuff_dominant_minority


def segment_classes(labels: np.ndarray, is_ground: bool, cfg: WeakLabelConfig) -> np.ndarray:
    """Classes a segment is labelled with (class 0 may be among them); empty = skip the segment."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if counts[0] == len(labels):
        return np.zeros(0, dtype=np.int64)
    if is_ground:  # ground cells: every class present, no size or minority rule
        return np.flatnonzero(counts)
    if len(labels) < cluster_min_points(counts, cfg):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(counts > minority_threshold(counts, cfg) * len(labels))


def _pick(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    if k == 1:  # the common case; cheaper than choice(replace=False)
        return np.array([rng.integers(n)])
    return rng.choice(n, size=min(k, n), replace=False)


def weak_labels(
    gt: np.ndarray,
    ground_mask: np.ndarray,
    segment_id: np.ndarray,
    token: str,
    cfg: WeakLabelConfig = WeakLabelConfig(),
    visible: np.ndarray | None = None,
) -> WeakLabels:
    """Weak labels of one sample from its GT (uint8, 0..16) and `presegment` outputs.

    Points with segment_id < 0 (and, when given, points outside `visible`) get nothing.
    Segments are visited in id order and classes in class order, so with the same seed and
    token the output is identical.
    """
    gt = np.asarray(gt, dtype=np.uint8)
    n = len(gt)
    seg = np.asarray(segment_id, dtype=np.int64).copy()
    ground = np.asarray(ground_mask, dtype=bool)
    if seg.shape != (n,) or ground.shape != (n,):
        raise ValueError(f"sample {token}: gt, ground_mask and segment_id must all have shape ({n},)")
    if visible is not None:
        seg[~np.asarray(visible, dtype=bool)] = -1
    sparse = np.zeros(n, dtype=np.uint8)
    prop = np.zeros(n, dtype=np.uint8)
    cand = np.zeros(n, dtype=np.uint32)
    rng = sample_rng(cfg.seed, token)

    pts = np.flatnonzero(seg >= 0)
    order = pts[np.argsort(seg[pts], kind="stable")]
    ids, starts = np.unique(seg[order], return_index=True)
    bounds = np.append(starts, len(order))
    for i, sid in enumerate(ids):
        idx = order[bounds[i] : bounds[i + 1]]
        g = ground[idx]
        is_ground = bool(g[0])
        if g.any() and not g.all():
            raise ValueError(f"sample {token}: segment {sid} mixes ground and non-ground points")
        labels = gt[idx]
        classes = segment_classes(labels, is_ground, cfg)
        if len(classes) == 0:
            continue
        for c in classes:
            if c == 0:
                continue
            members = idx[labels == c]
            sparse[members[_pick(rng, len(members), cfg.point_per_class)]] = c
        if len(classes) == 1:
            # The whole segment, points of dropped minority classes included (the release's noise).
            prop[idx] = classes[0]
        else:
            cand[idx] = class_bitmask(classes)
    clicked = sparse != 0
    prop[clicked] = sparse[clicked]
    return WeakLabels(sparse=sparse, propagated=prop, candidates=cand)


def label_statistics(
    results: list[WeakLabels] | list[dict[str, np.ndarray]],
    gt: list[np.ndarray],
    visible: list[np.ndarray],
) -> dict:
    """The release's label table, plus label quality against GT.

    Rates are means over scans with the release's denominators: sparse over all scan points,
    propagated and candidate over camera-visible points (scans without visible points are left out
    of those two means). As in the release, "propagated" counts labels spread over single-class
    segments, not the clicks copied into multi-class segments (points with a candidate set).
    Class-0 clicks are not made here (module docstring), so the sparse rate is a little lower than
    the release's. Quality is pooled over points with GT != 0: accuracy of those propagated labels
    (overall and per propagated class) and the fraction of candidate sets that hold the GT class.
    """
    if not (len(results) == len(gt) == len(visible)):
        raise ValueError(f"got {len(results)} results, {len(gt)} GT arrays, {len(visible)} masks")
    sparse_rates, prop_rates, cand_rates = [], [], []
    labelled = np.zeros(NUM_CLASSES, dtype=np.int64)
    correct = np.zeros(NUM_CLASSES, dtype=np.int64)
    n_cand_eval = n_cand_hit = 0
    totals = dict(points=0, visible=0, sparse=0, propagated=0, candidates=0)
    for res, y, vis in zip(results, gt, visible, strict=True):
        r = res.as_dict() if isinstance(res, WeakLabels) else res
        y = np.asarray(y, dtype=np.int64)
        vis = np.asarray(vis, dtype=bool)
        n_sparse = int(np.count_nonzero(r["sparse"]))
        p = np.asarray(r["propagated"], dtype=np.int64)
        p = np.where(np.asarray(r["candidates"]) != 0, 0, p)  # drop clicks in multi-class segments
        n_prop = int(np.count_nonzero((p != 0) & vis))
        n_cand = int(np.count_nonzero((r["candidates"] != 0) & vis))
        n_vis = int(vis.sum())
        sparse_rates.append(n_sparse / max(len(y), 1))
        if n_vis:
            prop_rates.append(n_prop / n_vis)
            cand_rates.append(n_cand / n_vis)
        for key, val in zip(totals, (len(y), n_vis, n_sparse, n_prop, n_cand), strict=True):
            totals[key] += val
        m = (p != 0) & (y != 0)
        labelled += np.bincount(p[m], minlength=NUM_CLASSES)
        correct += np.bincount(p[m & (p == y)], minlength=NUM_CLASSES)
        cs = np.asarray(r["candidates"], dtype=np.uint64)
        m = (cs != 0) & (y != 0)
        n_cand_eval += int(m.sum())
        n_cand_hit += int(((cs[m] >> y[m].astype(np.uint64)) & 1).sum())

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    return {
        "n_scans": len(results),
        "sparse_rate": float(np.mean(sparse_rates)) if sparse_rates else None,
        "propagated_rate": float(np.mean(prop_rates)) if prop_rates else None,
        "candidate_rate": float(np.mean(cand_rates)) if cand_rates else None,
        "propagated_accuracy": ratio(int(correct.sum()), int(labelled.sum())),
        "propagated_per_class": {
            CLASSES[c]: {"points": int(labelled[c]), "accuracy": ratio(int(correct[c]), int(labelled[c]))}
            for c in range(1, NUM_CLASSES)
        },
        "candidate_contains_gt": ratio(n_cand_hit, n_cand_eval),
        "totals": totals,
    }


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def statistics_table(stats: dict) -> str:
    """Markdown tables of `label_statistics`: the release's rates, then per-class quality."""
    lines = [
        "| scans | sparse (% of scan) | propagated (% of FOV) | candidates (% of FOV) "
        "| prop. accuracy (%) | GT in candidate set (%) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {stats['n_scans']} | {_pct(stats['sparse_rate'], 3)} | {_pct(stats['propagated_rate'])} "
        f"| {_pct(stats['candidate_rate'])} | {_pct(stats['propagated_accuracy'])} "
        f"| {_pct(stats['candidate_contains_gt'])} |",
        "",
        "| class | propagated points | accuracy (%) |",
        "|---|---:|---:|",
    ]
    for name, row in stats["propagated_per_class"].items():
        lines.append(f"| {name} | {row['points']} | {_pct(row['accuracy'])} |")
    return "\n".join(lines) + "\n"
