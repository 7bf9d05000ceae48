"""IUPC E-step rules on tiny hand-made scenes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weak3d.estep import (
    class_prototypes,
    dynamic_threshold_labels,
    estep_iteration1,
    estep_iteration2,
    prototype_labels,
    prototype_probs,
    pseudo_label_quality,
    rectify,
)

C = 17


def test_dynamic_threshold_labels_tiny_table():
    probs = np.array(
        [
            [0.0, 0.9, 0.1],  # predicted 1, the class max: th_1 = max(0.5, 0.9 - m)
            [0.1, 0.75, 0.15],  # predicted 1, below 0.8 with margin 0.1, above 0.5 with margin 0.4
            [0.1, 0.3, 0.6],  # the only class-2 point: th_2 = max(0.5, 0.6 - m) = 0.5
            [0.2, 0.35, 0.45],  # predicted 2 but below the 0.5 floor
            [0.7, 0.2, 0.1],  # argmax 0 (ignore): never a pseudo-label
            [0.0, 0.5, 0.5],  # tie at the floor: two classes reach it -> 0
        ]
    )
    assert dynamic_threshold_labels(probs, margin=0.1).tolist() == [1, 0, 2, 0, 0, 0]
    assert dynamic_threshold_labels(probs, margin=0.4).tolist() == [1, 1, 2, 0, 0, 0]
    assert dynamic_threshold_labels(np.zeros((0, 3)), 0.1).shape == (0,)


def test_class_prototypes_and_probs_by_hand():
    features = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    protos, present = class_prototypes(features, np.array([1, 1, 2, 0]), num_classes=4)
    assert protos.tolist() == [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]
    assert present.tolist() == [False, True, True, False]

    x = np.array([[1.0, 0.0]])  # logits: class 1 -> 2, class 2 -> 0
    e2 = math.exp(2.0)
    plain = prototype_probs(x, protos, present)[0]
    assert plain == pytest.approx([0.0, e2 / (e2 + 1), 1 / (e2 + 1), 0.0])
    quirk = prototype_probs(x, protos, present, include_ignore_logit=True)[0]
    assert quirk == pytest.approx([1 / (e2 + 2), e2 / (e2 + 2), 1 / (e2 + 2), 0.0])

    # Labels: the class-1 max over this scene is 0.881, so th_1 = max(0.5, 0.881 - 0.4) = 0.5.
    labels = prototype_labels(np.array([[1.0, 0.0], [0.0, 0.0]]), protos, present, margin=0.4)
    assert labels.tolist() == [1, 0]  # the zero feature is a 50/50 tie -> 0


def test_rectify_veto():
    cls = np.array([4, 4, 4, 11, 0])
    proto = np.array([11, 0, 4, 4, 4])
    assert rectify(cls, proto, veto_classes=range(1, 11)).tolist() == [0, 4, 4, 11, 0]


def _row(c: int, p: float) -> np.ndarray:
    row = np.full(C, (1.0 - p) / (C - 1))
    row[c] = p
    return row


def _feature(c: int | None, scale: float = 10.0) -> np.ndarray:
    f = np.zeros(C)
    if c is not None:
        f[c] = scale
    return f


def _bits(*classes: int) -> int:
    return sum(1 << c for c in classes)


# One scene. Prototypes come from the sparse points 0-2: classes 4 (car, a thing), 11, 14.
# columns: sparse, classifier (class, p), feature class (scale 10 unless noted), candidate set
SCENE = [
    (4, (14, 0.95), 4, _bits(4, 11)),  # 0 sparse overwrites the classifier
    (11, (11, 0.95), 11, _bits(4, 11)),  # 1
    (14, (14, 0.95), 14, 0),  # 2 sparse, but no candidate set
    (0, (4, 0.95), 11, _bits(4, 11)),  # 3 thing vs prototype 11: vetoed
    (0, (11, 0.95), 4, _bits(4, 11)),  # 4 stuff vs prototype 4: vetoed in it2 only
    (0, (4, 0.95), None, _bits(4, 11)),  # 5 prototype undecided (1/3 each): kept
    (0, (14, 0.95), 14, _bits(4, 11)),  # 6 label outside the set
    (0, (4, 0.95), 4, 0),  # 7 no candidate set
    (0, (4, 0.6), 4, _bits(4, 11)),  # 8 below th_4 = 0.95 - 0.1
    (0, (14, 0.95), 11, _bits(11, 14)),  # 9 terrain: never vetoed
    (0, (13, 0.95), 11, _bits(13)),  # 10 sidewalk vs prototype 11: vetoed in it2 only
    (0, (11, 0.95), "weak4", _bits(4, 11)),  # 11 see test_iteration2_zero_logit_quirk
]


def _scene():
    sparse = np.array([s for s, _, _, _ in SCENE])
    probs = np.stack([_row(*cp) for _, cp, _, _ in SCENE])
    # "weak4": logit 1.3 for class 4, 0 for 11 and 14. p_4 = e^1.3 / (e^1.3 + 2) = 0.65 >= th 0.6,
    # but with the class-0 zero logit p_4 = e^1.3 / (e^1.3 + 3) = 0.55 < 0.6.
    feats = np.stack([_feature(4, 0.13) if f == "weak4" else _feature(f) for _, _, f, _ in SCENE])
    cands = np.array([m for _, _, _, m in SCENE], dtype=np.uint32)
    return probs, feats, sparse, cands


def test_iteration1_rules():
    probs, feats, sparse, cands = _scene()
    pseudo = estep_iteration1(probs, feats, sparse, cands)
    assert pseudo.dtype == np.uint8
    assert pseudo.tolist() == [4, 11, 0, 0, 11, 4, 0, 0, 0, 14, 13, 11]


def test_iteration2_rules():
    probs, feats, sparse, cands = _scene()
    n = len(SCENE)
    zeros = np.zeros(n, dtype=np.int64)
    pseudo = estep_iteration2(probs, feats, sparse, zeros, zeros)
    # sparse points excluded; veto over 1..13 (points 3, 4, 10); no candidate constraint (6, 7).
    assert pseudo.tolist() == [0, 0, 0, 0, 0, 4, 14, 4, 0, 14, 0, 11]

    previous = zeros.copy()
    previous[[3, 8]] = [12, 7]  # iteration-1 labels override the model
    propagated = zeros.copy()
    propagated[6] = 16  # prop-labelled: not in the output region
    visible = np.ones(n, dtype=bool)
    visible[7] = False
    pseudo = estep_iteration2(probs, feats, sparse, propagated, previous, visible)
    assert pseudo.tolist() == [0, 0, 0, 12, 0, 4, 0, 0, 7, 14, 0, 11]


def test_iteration2_zero_logit_quirk():
    probs, feats, sparse, _ = _scene()
    zeros = np.zeros(len(SCENE), dtype=np.int64)
    # Point 11: classifier 11, prototype 4 only without the zero logit -> vetoed only then.
    assert estep_iteration2(probs, feats, sparse, zeros, zeros)[11] == 11
    assert estep_iteration2(probs, feats, sparse, zeros, zeros, proto_ignore_logit=False)[11] == 0


def test_pseudo_label_quality():
    pseudo = np.array([1, 2, 0, 3, 1, 5])
    gt = np.array([1, 3, 2, 3, 0, 5])
    region = np.array([True, True, True, True, True, False])
    q = pseudo_label_quality(pseudo, gt, region, visible=np.ones(6, dtype=bool))
    # labelled in region: 0, 1, 3, 4; judged (gt != 0): 0, 1, 3; correct: 0, 3.
    assert q["precision"] == pytest.approx(2 / 3)
    assert q["coverage_region"] == pytest.approx(4 / 5)
    assert q["coverage_visible"] == pytest.approx(4 / 6)
    assert (q["n_labelled"], q["n_judged"], q["n_correct"]) == (4, 3, 2)
    per_class = q["per_class_precision"]
    assert per_class["barrier"] == 1.0 and per_class["bicycle"] == 0.0 and per_class["bus"] == 1.0
    assert per_class["construction_vehicle"] is None  # point 5 is outside the region
    assert "ignore" not in per_class
