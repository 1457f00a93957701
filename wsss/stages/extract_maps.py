"""extract_maps: localization maps of every image of a split, at the image's size.

For each scale the image and (optionally) its horizontal flip go through the model as one
batch; each named map is ReLU'd by the method, un-flipped, resized to the image and summed over
scales and flips, then divided by its per-class maximum (psa / IRN). Only the classes present in
the image-level tags are kept: maps are (K', H, W) with K' = number of present classes.
"""

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss.data.transforms import normalize
from wsss.data.voc import VOCDataset
from wsss.device import pick_device
from wsss.io import StoreWriter
from wsss.methods import load_checkpoint


@torch.no_grad()
def multiscale_maps(model, image, classes, scales, flip, device, options=None):
    """image: uint8 (H, W, 3); classes: 0-based foreground indices (K',); options: the method's
    own extraction settings (FickleNet: draws, draw_chunk, seed), passed to its maps().

    Returns {name: float32 ndarray (K', H, W)}, each class max-normalised to [0, 1].
    """
    height, width = image.shape[:2]
    x = normalize(image).unsqueeze(0).to(device)  # (1, 3, H, W)
    index = torch.as_tensor(classes, dtype=torch.long, device=device)
    sums = {}
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        batch = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if flip:
            batch = torch.cat([batch, batch.flip(-1)])  # (2, 3, h, w)
        for name, maps in model.maps(batch, index, **(options or {})).items():  # (B, K', h', w')
            if flip:
                maps = maps[:1] + maps[1:].flip(-1)
            maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
            sums[name] = sums.get(name, 0) + maps.sum(0)  # (K', H, W)
    return {name: max_normalize(total).cpu().numpy() for name, total in sums.items()}


def max_normalize(maps, eps=1e-5):
    """(K, H, W) -> each class divided by its maximum (psa / IRN's normalisation)."""
    peak = maps.flatten(1).max(dim=1).values.clamp(min=0)
    return maps / (peak[:, None, None] + eps)


@torch.no_grad()
def map_names(model, device, options):
    """The names of a method's maps, from one tiny image."""
    probe = torch.zeros(1, 3, 32, 32, device=device)
    return list(model.maps(probe, torch.zeros(1, dtype=torch.long, device=device), **options))


def run(checkpoint, root, classes, split, output, scales, flip, method=None, options=None, saliency=None,
        device="auto", threads=1):
    """method: rebuild the checkpoint as this method (Grad-CAM on CAM's classifier); None = its own.
    options: the method's extraction settings beyond scales and flip."""
    options = options or {}
    device = pick_device(device)
    method, model, _ = load_checkpoint(checkpoint, method=method)
    model.to(device).eval()
    voc = VOCDataset(root, classes, split, saliency)
    params = {"checkpoint": str(checkpoint), "split": split, "scales": scales, "flip": flip, **options}
    names = map_names(model, device, options)  # images without tags still get every named map, empty
    with StoreWriter(output, "extract_maps", method, ["background", *classes], params) as store:
        for image_id in tqdm(voc.ids, desc=f"extract_maps {method} {split}", mininterval=5):
            image = voc.image(image_id)
            present = np.flatnonzero(voc.tags(image_id))  # 0-based foreground indices
            if present.size:
                maps = multiscale_maps(model, image, present, scales, flip, device, options)
            else:  # an image with no foreground tag: no maps, the labels stage makes it background
                maps = {name: np.zeros((0, *image.shape[:2]), np.float32) for name in names}
            store.write(image_id, maps, classes=present + 1)
