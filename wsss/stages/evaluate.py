"""Shared helpers of the evaluate_* stages: ground truth access and JSON output."""

import json

import numpy as np

from wsss.errors import WsssError
from wsss.files import write_text


def ground_truth(voc, image_id):
    """uint8 (H, W) mask of an evaluation image; evaluation needs one for every image."""
    mask = voc.mask(image_id)
    if mask is None:
        raise WsssError(f"image id {image_id} of split {voc.split}: no ground-truth mask to evaluate against")
    return mask


def check_shape(gt, pred_shape, image_id, store):
    """pred_shape: the (H, W) of a stored map or label, which must match the ground truth."""
    if gt.shape != tuple(pred_shape):
        raise WsssError(f"{store}: image id {image_id} has size {tuple(pred_shape)}, ground truth {gt.shape}")


def write_json(output, result):
    write_text(output, json.dumps(result, indent=2, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
