"""Shared input check of the label rules that use saliency (MDC, FickleNet, SeeNet)."""

import numpy as np

from wsss.errors import WsssError


def label_inputs(method, maps, saliency):
    """-> float32 maps (K', H, W) and saliency (H, W), or a one-line error naming the key."""
    if saliency is None:
        raise WsssError(f"{method}.labels: its label rule needs saliency maps (dataset.saliency)")
    maps = np.asarray(maps, dtype=np.float32)
    saliency = np.asarray(saliency, dtype=np.float32)
    if maps.shape[1:] != saliency.shape:
        raise WsssError(f"{method}.labels: saliency of size {saliency.shape} does not fit maps of size {maps.shape[1:]}")
    return maps, saliency
