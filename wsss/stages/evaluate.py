"""Shared helpers of the evaluate_* stages: ground truth access and JSON output."""

import json
import os
from pathlib import Path

import numpy as np

from wsss.errors import WsssError


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
    """Atomic write: a temporary name, then rename."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2, default=_plain) + "\n")
    os.replace(tmp, output)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")
