"""Segmentation metrics: an accumulable confusion matrix and IoU / mIoU from it.

Convention for a class absent from both the ground truth and the predictions (TP + FP + FN = 0):
its IoU is undefined; we report NaN (None in JSON) and leave it out of the mean. The seed scores
such a class 1.0, which inflates mIoU on small evaluation sets (the CI config, a few synthetic
scenes) and has no effect when every class occurs, as on the real nuScenes val split. A class
that is predicted but absent from the ground truth has IoU 0 under both conventions.
"""

from __future__ import annotations

import numpy as np

from .classes import CLASSES, IGNORE, NUM_CLASSES

__all__ = ["confusion_matrix", "iou_from_confusion", "miou_summary"]


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int = NUM_CLASSES, ignore: int | None = IGNORE
) -> np.ndarray:
    """Confusion counts (C, C) int64, rows = ground truth, columns = prediction.

    Points whose ground truth is `ignore` are skipped; a prediction of `ignore` on a labelled point
    stays in the matrix and counts as a miss for the true class. Matrices add: sum them over scenes.
    """
    pred = np.asarray(pred).astype(np.int64).ravel()
    gt = np.asarray(gt).astype(np.int64).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"confusion_matrix: pred has {pred.size} points, gt has {gt.size}")
    if ignore is not None:
        keep = gt != ignore
        pred, gt = pred[keep], gt[keep]
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} has labels outside 0..{num_classes - 1}")
    return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_from_confusion(cm: np.ndarray, ignore: int | None = IGNORE) -> tuple[np.ndarray, float]:
    """Per-class IoU in percent for every class but `ignore` (classes 1..16), and their mean.

    IoU_c = TP / (TP + FP + FN); rows of the ignore class, if any were counted, are left out of
    FP. Undefined IoUs (class absent from gt and predictions) are NaN and excluded from the mean;
    the mean is NaN only when every class is undefined.
    """
    cm = np.asarray(cm, dtype=np.int64)
    classes = np.array([c for c in range(cm.shape[0]) if c != ignore])
    rows = cm if ignore is None else np.delete(cm, ignore, axis=0)  # gt-labelled points only
    tp = np.diag(cm)[classes].astype(np.float64)
    fn = cm[classes].sum(axis=1) - tp
    fp = rows[:, classes].sum(axis=0) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, 100.0 * tp / union, np.nan)
    defined = ~np.isnan(iou)
    miou = float(iou[defined].mean()) if defined.any() else float("nan")
    return iou, miou


def miou_summary(cm: np.ndarray, ignore: int | None = IGNORE) -> dict:
    """JSON-ready `miou`, `per_class` (class name -> IoU %, None when undefined) and `n_points`."""
    iou, miou = iou_from_confusion(cm, ignore)
    n = np.asarray(cm).shape[0]
    names = CLASSES if n == len(CLASSES) else tuple(str(i) for i in range(n))
    kept = [c for c in range(n) if c != ignore]
    return {
        "miou": None if np.isnan(miou) else miou,
        "per_class": {names[c]: (None if np.isnan(v) else float(v)) for c, v in zip(kept, iou, strict=True)},
        "n_points": int(np.asarray(cm).sum()),
    }
