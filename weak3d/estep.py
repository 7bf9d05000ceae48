"""IUPC E-step: pseudo-labels from a trained model, per scene, on plain numpy arrays.

Inputs are per-point arrays of one scene (the caller copies voxel predictions back to points):
class probabilities (N, C), features for class prototypes (N, D), and the weak labels. Labels are
class ids with 0 = ignore / no label; candidate sets are bitmasks (bit c = class c).

Decisions (see the function docstrings):
- Argmax = 0. The model may predict class 0 ("ignore"); such a point gets no pseudo-label, as in
  the seed, where the argmax is taken over all outputs and 0 means "unlabelled". We do not fall
  back to the best non-zero class: the model saying "noise" is not confidence in any class.
- Iteration 2 adds a zero logit for class 0 to the prototype softmax (a quirk of the seed's
  `_calculate_class_anchor`). `estep_iteration2` reproduces it by default, so that the pipeline
  matches the released method; `proto_ignore_logit=False` turns it off.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .classes import CLASSES, IGNORE, NUM_CLASSES, THING_CLASSES

__all__ = [
    "dynamic_threshold_labels",
    "class_prototypes",
    "prototype_probs",
    "prototype_labels",
    "rectify",
    "estep_iteration1",
    "estep_iteration2",
    "pseudo_label_quality",
    "VETO_CLASSES_IT1",
    "VETO_CLASSES_IT2",
]

VETO_CLASSES_IT1: tuple[int, ...] = THING_CLASSES  # barrier .. truck
VETO_CLASSES_IT2: tuple[int, ...] = tuple(range(1, 14))  # things + driveable, other_flat, sidewalk


def dynamic_threshold_labels(probs: np.ndarray, margin: float, floor: float = 0.5) -> np.ndarray:
    """Confident argmax labels (N,) int64 under per-scene, per-class thresholds.

    For each class c predicted somewhere in the scene, th_c = max(floor, max p_c over the points
    predicted c - margin); other classes keep th = floor. A point keeps its argmax when exactly
    one class reaches its threshold, which (with floor >= 0.5) is p_max >= th_argmax except for
    ties at 0.5, which get 0. An argmax of 0 (ignore) always gives 0.
    """
    probs = np.asarray(probs)
    n, c = probs.shape
    labels = np.zeros(n, dtype=np.int64)
    if n == 0:
        return labels
    pred = probs.argmax(axis=1)
    pmax = probs[np.arange(n), pred]
    class_max = np.full(c, -np.inf)
    np.maximum.at(class_max, pred, pmax)
    thresholds = np.maximum(floor, class_max - margin)
    reached = probs >= thresholds[None, :]
    keep = (reached.sum(axis=1) == 1) & reached[np.arange(n), pred] & (pred != IGNORE)
    labels[keep] = pred[keep]
    return labels


def class_prototypes(
    features: np.ndarray, sparse_labels: np.ndarray, num_classes: int = NUM_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature (C, D) of the sparse-labelled points of each class, and a present mask (C,).

    Class 0 is never a prototype: its row is zero and it is not present.
    """
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(sparse_labels).astype(np.int64)
    keep = labels != IGNORE
    sums = np.zeros((num_classes, features.shape[1]))
    np.add.at(sums, labels[keep], features[keep])
    counts = np.bincount(labels[keep], minlength=num_classes)[:num_classes]
    present = counts > 0
    protos = np.zeros_like(sums)
    protos[present] = sums[present] / counts[present, None]
    return protos, present


def prototype_probs(
    features: np.ndarray,
    protos: np.ndarray,
    present: np.ndarray,
    include_ignore_logit: bool = False,
) -> np.ndarray:
    """Softmax (N, C) of raw dot products with the prototypes, over the present classes only.

    Absent classes get probability 0. With include_ignore_logit, class 0 joins the softmax with
    logit 0 (the iteration-2 quirk): a "none of the above" option that lowers every class's
    probability when all similarities are small or negative.
    """
    features = np.asarray(features, dtype=np.float64)
    columns = np.asarray(present, dtype=bool).copy()
    if include_ignore_logit:
        columns[IGNORE] = True
    probs = np.zeros((features.shape[0], protos.shape[0]))
    if not columns.any():
        return probs
    logits = features @ protos[columns].T  # the class-0 row of protos is zero: logit 0
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs[:, columns] = e / e.sum(axis=1, keepdims=True)
    return probs


def prototype_labels(
    features: np.ndarray,
    protos: np.ndarray,
    present: np.ndarray,
    margin: float = 0.4,
    include_ignore_logit: bool = False,
    floor: float = 0.5,
) -> np.ndarray:
    """Prototype pseudo-labels (N,): `prototype_probs` through the dynamic threshold filter."""
    probs = prototype_probs(features, protos, present, include_ignore_logit)
    return dynamic_threshold_labels(probs, margin, floor)


def rectify(cls_labels: np.ndarray, proto_labels: np.ndarray, veto_classes: Sequence[int]) -> np.ndarray:
    """Self-rectification: drop a classifier label in `veto_classes` that a non-zero prototype
    label contradicts."""
    veto = np.isin(cls_labels, list(veto_classes)) & (proto_labels != IGNORE) & (proto_labels != cls_labels)
    return np.where(veto, IGNORE, cls_labels)


def _model_labels(
    probs: np.ndarray,
    features: np.ndarray,
    sparse: np.ndarray,
    veto_classes: Sequence[int],
    margin_cls: float,
    margin_proto: float,
    floor: float,
    proto_ignore_logit: bool,
) -> np.ndarray:
    cls_labels = dynamic_threshold_labels(probs, margin_cls, floor)
    protos, present = class_prototypes(features, sparse, num_classes=np.asarray(probs).shape[1])
    proto = prototype_labels(features, protos, present, margin_proto, proto_ignore_logit, floor)
    return rectify(cls_labels, proto, veto_classes)


def estep_iteration1(
    probs: np.ndarray,
    features: np.ndarray,
    sparse: np.ndarray,
    candidates: np.ndarray,
    *,
    margin_cls: float = 0.1,
    margin_proto: float = 0.4,
    floor: float = 0.5,
    veto_classes: Sequence[int] = VETO_CLASSES_IT1,
) -> np.ndarray:
    """Iteration-1 pseudo-labels (N,) uint8 for one scene.

    Classifier labels (margin 0.1), vetoed on thing classes by disagreeing prototype labels
    (margin 0.4); a label survives only on a point whose non-empty candidate set contains it;
    sparse labels overwrite. Points without a candidate set get 0, as the seed saves only those.
    """
    sparse = np.asarray(sparse).astype(np.int64)
    masks = np.asarray(candidates).astype(np.int64)
    labels = _model_labels(probs, features, sparse, veto_classes, margin_cls, margin_proto, floor, False)
    in_set = ((masks >> labels) & 1).astype(bool)
    has_set = masks != 0
    labels = np.where(has_set & in_set, labels, IGNORE)
    labels = np.where(sparse != IGNORE, sparse, labels)
    return np.where(has_set, labels, IGNORE).astype(np.uint8)


def estep_iteration2(
    probs: np.ndarray,
    features: np.ndarray,
    sparse: np.ndarray,
    propagated: np.ndarray,
    previous_pseudo: np.ndarray,
    visible: np.ndarray | None = None,
    *,
    margin_cls: float = 0.1,
    margin_proto: float = 0.4,
    floor: float = 0.5,
    veto_classes: Sequence[int] = VETO_CLASSES_IT2,
    proto_ignore_logit: bool = True,
) -> np.ndarray:
    """Iteration-2 pseudo-labels (N,) uint8 for one scene.

    As iteration 1 but the veto covers classes 1..13 and there is no candidate constraint;
    iteration-1 pseudo-labels override where non-zero, then sparse labels. The output covers the
    `visible` (camera-FOV; all points when None) points that are neither sparse- nor
    prop-labelled; 0 elsewhere. proto_ignore_logit reproduces the seed's zero logit for class 0.
    """
    sparse = np.asarray(sparse).astype(np.int64)
    propagated = np.asarray(propagated).astype(np.int64)
    previous = np.asarray(previous_pseudo).astype(np.int64)
    labels = _model_labels(
        probs, features, sparse, veto_classes, margin_cls, margin_proto, floor, proto_ignore_logit
    )
    labels = np.where(previous != IGNORE, previous, labels)
    labels = np.where(sparse != IGNORE, sparse, labels)
    region = (sparse == IGNORE) & (propagated == IGNORE)
    if visible is not None:
        region &= np.asarray(visible, dtype=bool)
    return np.where(region, labels, IGNORE).astype(np.uint8)


def pseudo_label_quality(
    pseudo: np.ndarray,
    gt: np.ndarray,
    region_mask: np.ndarray,
    visible: np.ndarray | None = None,
    num_classes: int = NUM_CLASSES,
) -> dict:
    """Quality of pseudo-labels against ground truth, as JSON-ready numbers.

    precision: correct / labelled over labelled region points whose gt is not 0 (gt 0 cannot be
    judged). coverage_region: labelled / region points; coverage_visible: labelled / visible
    points (all points when None). per_class_precision: by pseudo-label class name, None when
    the class was never assigned to a judgeable point.
    """
    pseudo = np.asarray(pseudo).astype(np.int64)
    gt = np.asarray(gt).astype(np.int64)
    region = np.asarray(region_mask, dtype=bool)
    visible = np.ones_like(region) if visible is None else np.asarray(visible, dtype=bool)
    labelled = region & (pseudo != IGNORE)
    judged = labelled & (gt != IGNORE)
    correct = judged & (pseudo == gt)
    n_judged, n_labelled = int(judged.sum()), int(labelled.sum())
    n_region, n_visible = int(region.sum()), int(visible.sum())
    judged_per_class = np.bincount(pseudo[judged], minlength=num_classes)
    correct_per_class = np.bincount(pseudo[correct], minlength=num_classes)
    names = CLASSES if num_classes == len(CLASSES) else tuple(str(i) for i in range(num_classes))
    per_class = {
        names[c]: (float(correct_per_class[c] / judged_per_class[c]) if judged_per_class[c] else None)
        for c in range(num_classes)
        if c != IGNORE
    }
    return {
        "precision": float(correct.sum() / n_judged) if n_judged else None,
        "coverage_region": n_labelled / n_region if n_region else None,
        "coverage_visible": n_labelled / n_visible if n_visible else None,
        "n_labelled": n_labelled,
        "n_judged": n_judged,
        "n_correct": int(correct.sum()),
        "n_region": n_region,
        "n_visible": n_visible,
        "per_class_precision": per_class,
    }
