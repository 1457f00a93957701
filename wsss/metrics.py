"""Segmentation metrics as psa, IRN and mmsegmentation report them.

One confusion matrix is accumulated over all pixels of a split (sum the per-image matrices
returned by ``confusion``), over all classes including background, and IoU is computed once
from the sum. This is not the mean of per-image mIoUs.

Design of the confusion matrix: ``confusion`` returns a (C, C + 1) int64 matrix. Rows are the
ground-truth class, columns 0..C-1 the predicted class, and the extra last column counts pixels
whose prediction is ``ignore`` (255: a pixel a pseudo label leaves unlabelled). Such a pixel is
a false negative of its ground-truth class and a false positive of nothing, as in
mmsegmentation's ``intersect_and_union`` (the 255 falls outside its histogram of predictions).
Pixels whose ground truth is ``ignore`` are skipped altogether.
"""

import numpy as np


def _check_labels(name, a, num_classes, ignore):
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise ValueError(f"{name} must hold integer labels, got dtype {a.dtype}")
    bad = (a != ignore) & ((a < 0) | (a >= num_classes))
    if bad.any():
        raise ValueError(f"{name} has label {a[bad].flat[0]}, expected 0..{num_classes - 1} or {ignore}")


def confusion(gt, pred, num_classes, ignore=255) -> np.ndarray:
    """Confusion matrix of one image (or any pixel set); returns (C, C + 1) int64.

    gt, pred: integer arrays of the same shape, e.g. (H, W), values in [0, C) or ``ignore``.
    conf[i, j] (j < C) = pixels with gt i predicted j; conf[i, C] = pixels with gt i predicted
    ``ignore``. Pixels with gt == ``ignore`` are not counted. Sum these over a split.
    """
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} does not match pred shape {pred.shape}")
    _check_labels("gt", gt, num_classes, ignore)
    _check_labels("pred", pred, num_classes, ignore)
    valid = gt != ignore
    g = gt[valid].astype(np.int64)                                  # (N,)
    p = pred[valid].astype(np.int64)                                # (N,)
    p[p == ignore] = num_classes                                    # the extra column
    n_cols = num_classes + 1
    counts = np.bincount(g * n_cols + p, minlength=num_classes * n_cols)
    return counts.reshape(num_classes, n_cols).astype(np.int64)


def ignored_fraction(pred, gt, ignore=255) -> float:
    """Fraction of pixels with a valid gt whose pred is ``ignore``, for one image.

    Over a whole split use ``scores(...)["ignored_fraction"]`` on the summed confusion, or
    ``conf[:, -1].sum() / conf.sum()``. Returns NaN when no gt pixel is valid.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if gt.shape != pred.shape:
        raise ValueError(f"gt shape {gt.shape} does not match pred shape {pred.shape}")
    valid = gt != ignore
    n = int(valid.sum())
    return float((pred[valid] == ignore).sum() / n) if n else float("nan")


def _pct(num, den):
    """num / den in percent per class, NaN where den == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * num / den


def _named(names, values):
    return {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, values)}


def scores(conf, class_names) -> dict:
    """Metrics from a (C, C + 1) confusion (a plain (C, C) one is accepted too).

    Returns, in percent (0-100):
      miou           mean over classes of IoU = TP / (TP + FP + FN)
      per_class      {name: IoU}
      precision      {name: TP / (TP + FP)}
      recall         {name: TP / (TP + FN)}  (FN includes pixels predicted ``ignore``)
      pixel_accuracy trace / all valid gt pixels (pixels predicted ``ignore`` are wrong)
    and ignored_fraction (0-1): share of valid gt pixels predicted ``ignore``.
    A class absent from both gt and prediction has IoU NaN: it is reported as None and left
    out of the mean (like mmsegmentation's nanmean). Likewise a precision with no predicted
    pixel or a recall with no gt pixel is None.
    """
    conf = np.asarray(conf, dtype=np.int64)
    c = len(class_names)
    if conf.shape not in ((c, c), (c, c + 1)):
        raise ValueError(f"confusion shape {conf.shape} does not fit {c} class names")
    total = conf.sum()
    if total == 0:
        raise ValueError("confusion matrix is empty: no valid ground-truth pixel")
    tp = np.diag(conf[:, :c]).astype(np.float64)                    # (C,)
    fp = conf[:, :c].sum(axis=0) - tp                               # (C,) predicted c, gt other
    fn = conf.sum(axis=1) - tp                                      # (C,) gt c, predicted other or ignore
    iou = _pct(tp, tp + fp + fn)
    ignored = conf[:, c].sum() if conf.shape[1] == c + 1 else 0
    return {
        "miou": float(np.nanmean(iou)),
        "per_class": _named(class_names, iou),
        "precision": _named(class_names, _pct(tp, tp + fp)),
        "recall": _named(class_names, _pct(tp, tp + fn)),
        "pixel_accuracy": float(100.0 * tp.sum() / total),
        "ignored_fraction": float(ignored / total),
    }
