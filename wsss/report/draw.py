"""One image's arrays as RGB pictures: maps as heat (over the image), labels in VOC colours.

Shared by the report's sample grids and the `wsss` command, so a map or a label looks the
same in both. Everything here maps arrays to uint8 (H, W, 3) RGB; nothing draws axes.
"""

import numpy as np
from matplotlib import colormaps

from wsss.data.palette import VOC_PALETTE

PALETTE = np.asarray(VOC_PALETTE, np.uint8).reshape(256, 3)  # label value -> RGB
HEAT = "jet"  # the colour map of CAM figures in the papers: blue 0 -> red 1
IGNORE = 255


def label_rgb(label):
    """uint8 (H, W) labels (0 background, 1..K classes, 255 ignore) -> (H, W, 3) VOC colours."""
    return PALETTE[np.asarray(label, np.uint8)]


def heat_rgb(heat):
    """(H, W) map in [0, 1] -> (H, W, 3) in the heat colour map (values outside are clipped)."""
    rgba = colormaps[HEAT](np.clip(np.asarray(heat, np.float32), 0, 1))  # (H, W, 4) in [0, 1]
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def heat_overlay(image, heat, alpha=0.5):
    """Blend a map's heat colours over the image: (H, W, 3) uint8, (H, W) -> (H, W, 3) uint8."""
    blend = (1 - alpha) * image.astype(np.float32) + alpha * heat_rgb(heat)
    return blend.round().astype(np.uint8)


def strongest(maps):
    """(K', H, W) maps of the present classes -> (H, W) per-pixel maximum (zeros if K' = 0)."""
    maps = np.asarray(maps, np.float32)
    return maps.max(0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
