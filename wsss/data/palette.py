"""The PASCAL VOC colour palette and palette-PNG writing for label maps.

VOC stores masks as "P" mode PNGs: the pixel values are class indices (0 background, 1..K
objects, 255 ignore) and the palette only makes them viewable. The palette is the usual
bit-interleaving colormap of the VOC devkit (``labelcolormap``): index 1 is (128, 0, 0),
index 15 (person) is (192, 128, 128), index 255 is (224, 224, 192).
"""

import numpy as np
from PIL import Image

from wsss.errors import WsssError


def _voc_palette():
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


VOC_PALETTE = _voc_palette()  # 256 * 3 ints, [r0, g0, b0, r1, ...]


def save_palette_png(path, mask):
    """Write a label map (H, W) of integers in 0..255 as a VOC palette PNG."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise WsssError(f"{path}: a label map must be 2-D (H, W), got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise WsssError(f"{path}: label values must lie in 0..255, got {mask.min()}..{mask.max()}")
        mask = mask.astype(np.uint8)
    height, width = mask.shape
    img = Image.frombytes("P", (width, height), np.ascontiguousarray(mask).tobytes())
    img.putpalette(VOC_PALETTE)
    img.save(path, format="PNG")
