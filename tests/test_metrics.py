"""Metrics checked against confusion matrices and IoUs worked out by hand."""

import numpy as np
import pytest

from wsss.metrics import confusion, ignored_fraction, scores

NAMES = ["background", "cat", "dog"]

# gt / pred over 2x4 pixels; gt 255 at (1, 3) is skipped, pred 255 at (1, 2) is a miss of dog.
GT = np.array([[0, 0, 1, 1],
               [0, 2, 2, 255]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 2, 255, 0]])
# valid (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (0,0) (2,2) (2,ign)
CONF = np.array([[2, 1, 0, 0],   # gt background: 2 right, 1 as cat
                 [0, 2, 0, 0],   # gt cat: 2 right
                 [0, 0, 1, 1]])  # gt dog: 1 right, 1 predicted 255


def test_hand_made_example():
    conf = confusion(GT, PRED, 3)
    assert conf.dtype == np.int64
    np.testing.assert_array_equal(conf, CONF)
    s = scores(conf, NAMES)
    # TP = [2, 2, 1]; FP = col sums - TP = [2-2, 3-2, 1-1] = [0, 1, 0];
    # FN = row sums - TP = [3-2, 2-2, 2-1] = [1, 0, 1]
    # IoU: bg 2/(2+0+1) = 66.667, cat 2/(2+1+0) = 66.667, dog 1/(1+0+1) = 50
    assert s["per_class"]["background"] == pytest.approx(200 / 3)
    assert s["per_class"]["cat"] == pytest.approx(200 / 3)
    assert s["per_class"]["dog"] == pytest.approx(50.0)
    # mIoU = (66.667 + 66.667 + 50) / 3 = 61.111
    assert s["miou"] == pytest.approx((200 / 3 + 200 / 3 + 50) / 3)
    assert s["miou"] == pytest.approx(61.111, abs=1e-3)
    # precision TP/(TP+FP): bg 2/2 = 100, cat 2/3 = 66.667, dog 1/1 = 100
    assert s["precision"] == pytest.approx({"background": 100.0, "cat": 200 / 3, "dog": 100.0})
    # recall TP/(TP+FN): bg 2/3 = 66.667, cat 2/2 = 100, dog 1/2 = 50
    assert s["recall"] == pytest.approx({"background": 200 / 3, "cat": 100.0, "dog": 50.0})
    # pixel accuracy 5 right / 7 valid = 71.429; 1 of 7 valid pixels predicted 255
    assert s["pixel_accuracy"] == pytest.approx(500 / 7)
    assert s["ignored_fraction"] == pytest.approx(1 / 7)
    assert ignored_fraction(PRED, GT) == pytest.approx(1 / 7)


def test_accumulation_is_not_mean_of_per_image_miou():
    gt_a, pred_a = np.zeros((2, 2), int), np.zeros((2, 2), int)   # all bg, all right
    gt_b, pred_b = np.ones((2, 2), int), np.zeros((2, 2), int)    # all cat, all called bg
    ca, cb = confusion(gt_a, pred_a, 2), confusion(gt_b, pred_b, 2)
    both = confusion(np.concatenate([gt_a, gt_b]), np.concatenate([pred_a, pred_b]), 2)
    np.testing.assert_array_equal(ca + cb, both)
    names = ["bg", "cat"]
    # image a: bg 4/4 = 100, cat absent (NaN) -> mIoU 100
    # image b: bg 0/(0+4+0) = 0, cat 0/(0+0+4) = 0 -> mIoU 0; mean of images = 50
    per_image = (scores(ca, names)["miou"] + scores(cb, names)["miou"]) / 2
    assert per_image == pytest.approx(50.0)
    # summed: conf [[4, 0], [4, 0]]: bg 4/(4+4+0) = 50, cat 0/(0+0+4) = 0 -> mIoU 25
    assert scores(both, names)["miou"] == pytest.approx(25.0)


def test_ignore_in_gt_is_skipped():
    gt = np.array([[0, 255], [1, 255]])
    pred = np.array([[0, 1], [1, 0]])   # the two pixels under gt 255 would be wrong
    conf = confusion(gt, pred, 2)
    np.testing.assert_array_equal(conf, [[1, 0, 0], [0, 1, 0]])
    assert scores(conf, ["bg", "cat"])["miou"] == pytest.approx(100.0)


def test_ignore_in_pred_is_a_miss_not_a_hit():
    gt = np.array([[1, 1, 1, 1]])
    pred = np.array([[1, 1, 255, 255]])
    s = scores(confusion(gt, pred, 2), ["bg", "cat"])
    # cat: TP 2, FP 0, FN 2 (the two 255s) -> IoU 2/4 = 50, recall 50, precision 100
    assert s["per_class"]["cat"] == pytest.approx(50.0)
    assert s["recall"]["cat"] == pytest.approx(50.0)
    assert s["precision"]["cat"] == pytest.approx(100.0)
    # bg never in gt nor predicted (255 is not bg) -> None, out of the mean
    assert s["per_class"]["bg"] is None
    assert s["miou"] == pytest.approx(50.0)
    assert s["ignored_fraction"] == pytest.approx(0.5)


def test_absent_class_excluded_but_missed_class_counts():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 0, 0, 1]])
    s = scores(confusion(gt, pred, 4), ["bg", "cat", "dog", "cow"])
    # bg 2/(2+1+0) = 66.667, cat 1/(1+0+1) = 50, dog and cow absent -> None
    assert s["per_class"]["dog"] is None and s["per_class"]["cow"] is None
    assert s["miou"] == pytest.approx((200 / 3 + 50) / 2)
    # a class in gt but never predicted has IoU 0 and stays in the mean
    s2 = scores(confusion(gt, np.zeros_like(gt), 2), ["bg", "cat"])
    assert s2["per_class"]["cat"] == 0.0
    assert s2["miou"] == pytest.approx((50 + 0) / 2)   # bg 2/(2+2+0) = 50
    assert s2["precision"]["cat"] is None              # never predicted


def test_validation():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        confusion(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ValueError, match="label 7"):
        confusion(np.zeros((2, 2), int), np.full((2, 2), 7), 3)
    with pytest.raises(ValueError, match="label -1"):
        confusion(np.full((2, 2), -1), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="integer"):
        confusion(np.zeros((2, 2)), np.zeros((2, 2), int), 3)
    with pytest.raises(ValueError, match="class names"):
        scores(np.zeros((3, 4), np.int64), ["bg", "cat"])
    with pytest.raises(ValueError, match="empty"):
        scores(confusion(np.full((2, 2), 255), np.zeros((2, 2), int), 2), ["bg", "cat"])
