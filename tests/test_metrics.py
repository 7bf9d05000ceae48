"""Confusion matrix and IoU on a hand-counted example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from weak3d.metrics import confusion_matrix, iou_from_confusion, miou_summary

# (gt, pred) pairs; the gt-0 point is dropped, the pred-0 point is a miss for class 1.
GT = np.array([1, 2, 2, 2, 1, 0, 3])
PRED = np.array([1, 1, 2, 2, 0, 3, 1])
CM = [
    [0, 0, 0, 0],
    [1, 1, 0, 0],
    [0, 1, 2, 0],
    [0, 1, 0, 0],
]
# IoU_1 = 1 / (1 + FP 2 + FN 1); IoU_2 = 2 / (2 + 0 + 1); IoU_3 = 0 / (0 + 0 + 1).
IOU = [25.0, 200.0 / 3, 0.0]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, GT, num_classes=4)
    assert cm.dtype == np.int64
    assert cm.tolist() == CM


def test_confusion_matrix_accumulates_and_checks_ranges():
    total = confusion_matrix(PRED[:3], GT[:3], 4) + confusion_matrix(PRED[3:], GT[3:], 4)
    assert total.tolist() == CM
    with pytest.raises(ValueError, match="outside 0..3"):
        confusion_matrix(np.array([4]), np.array([1]), 4)
    with pytest.raises(ValueError, match="pred has 2 points, gt has 1"):
        confusion_matrix(np.array([1, 1]), np.array([1]), 4)


def test_iou_from_confusion_by_hand():
    iou, miou = iou_from_confusion(np.array(CM))
    assert iou.tolist() == pytest.approx(IOU)
    assert miou == pytest.approx(sum(IOU) / 3)


def test_iou_ignores_gt_zero_rows_even_if_counted():
    cm = np.array(CM)
    cm[0, 2] = 5  # predictions on unlabelled points are not false positives
    assert iou_from_confusion(cm)[0].tolist() == pytest.approx(IOU)


def test_absent_class_is_nan_and_left_out_of_the_mean():
    cm = np.zeros((5, 5), dtype=np.int64)
    cm[:4, :4] = CM  # class 4: neither in gt nor predicted
    iou, miou = iou_from_confusion(cm)
    assert math.isnan(iou[3])
    assert miou == pytest.approx(sum(IOU) / 3)
    cm[1, 4] = 1  # a class-1 point predicted 4: IoU_4 = 0 and counted; IoU_1 = 1 / 5
    iou, miou = iou_from_confusion(cm)
    assert iou[3] == 0.0
    assert iou[0] == pytest.approx(100.0 / 5)
    assert miou == pytest.approx((20.0 + 200.0 / 3 + 0.0 + 0.0) / 4)


def test_miou_summary_names_and_json_values():
    pred = np.array([4, 4, 11, 11, 16])
    gt = np.array([4, 11, 11, 11, 16])
    summary = miou_summary(confusion_matrix(pred, gt))
    # car: 1 / (1 + 1 FP) = 50; driveable_surface: 2 / (2 + 1 FN) = 66.7; vegetation: 100.
    assert summary["per_class"]["car"] == pytest.approx(50.0)
    assert summary["per_class"]["driveable_surface"] == pytest.approx(200.0 / 3)
    assert summary["per_class"]["vegetation"] == pytest.approx(100.0)
    assert summary["per_class"]["barrier"] is None and "ignore" not in summary["per_class"]
    assert summary["miou"] == pytest.approx((50.0 + 200.0 / 3 + 100.0) / 3)
    assert summary["n_points"] == 5
    assert miou_summary(np.zeros((17, 17), dtype=np.int64))["miou"] is None
