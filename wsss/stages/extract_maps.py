"""extract_maps: localization maps of every image of a split (or of one shard of it), at the
image's size.

Images of the same size are batched (`batch_size` at most): for each scale the batch and its
horizontal flips go through the model as one tensor, so a batch costs one pass per scale. Each
named map is ReLU'd by the method, un-flipped, resized to the image and summed over scales and
flips, then divided by its per-class maximum (psa / IRN). Only the classes present in the
image-level tags are kept: maps are (K', H, W) with K' = number of present classes. A batch asks
the model for the union of its images' classes (Grad-CAM: one backward for all of them) and each
image keeps its own.

On CUDA the model runs under mixed precision (`amp`). The log ends with the share of the stage's
time spent outside the model (reading, resizing, normalising, writing).
"""

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss import shards
from wsss.data.transforms import normalize
from wsss.data.voc import VOCDataset
from wsss.device import autocast, pick_device
from wsss.io import StoreWriter
from wsss.methods import load_checkpoint


@torch.no_grad()
def multiscale_maps(model, images, classes, scales, flip, device, options=None, amp=False, clock=None):
    """images: uint8 (B, H, W, 3), one size; classes: B arrays of 0-based foreground indices (K'_b,);
    options: the method's own extraction settings (FickleNet: draws, draw_chunk, seed);
    clock: optional {"model": seconds}, incremented by the time spent in model.maps.

    Returns B dicts {name: float32 ndarray (K'_b, H, W)}, each class max-normalised to [0, 1].
    """
    count, height, width = len(images), *images[0].shape[:2]
    union = sorted(set(int(c) for cls in classes for c in cls))  # (U,) classes asked of the model
    x = torch.stack([normalize(image) for image in images]).to(device)  # (B, 3, H, W)
    index = torch.as_tensor(union, dtype=torch.long, device=device)
    sums = {}
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        batch = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if flip:
            batch = torch.cat([batch, batch.flip(-1)])  # (2B, 3, h, w): the flips after the originals
        began = time.perf_counter()
        with autocast(device, amp):
            named = model.maps(batch, index, **(options or {}))  # {name: (B or 2B, U, h', w')}
        if clock is not None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # kernels run asynchronously
            clock["model"] = clock.get("model", 0.0) + time.perf_counter() - began
        for name, maps in named.items():
            maps = maps.float()
            if flip:
                maps = maps[:count] + maps[count:].flip(-1)
            maps = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
            sums[name] = sums.get(name, 0) + maps  # (B, U, H, W)
    position = {c: i for i, c in enumerate(union)}
    results = []
    for b, cls in enumerate(classes):
        pick = [position[int(c)] for c in cls]
        results.append({name: max_normalize(total[b, pick]).cpu().numpy() for name, total in sums.items()})
    return results


def max_normalize(maps, eps=1e-5):
    """(K, H, W) -> each class divided by its maximum (psa / IRN's normalisation)."""
    peak = maps.flatten(1).max(dim=1).values.clamp(min=0)
    return maps / (peak[:, None, None] + eps)


@torch.no_grad()
def map_names(model, device, options):
    """The names of a method's maps, from one tiny image."""
    probe = torch.zeros(1, 3, 32, 32, device=device)
    return list(model.maps(probe, torch.zeros(1, dtype=torch.long, device=device), **options))


def size_batches(voc, ids, batch_size):
    """Ids grouped into batches of at most `batch_size` images of one size (they stack)."""
    by_size = {}
    for image_id in ids:
        by_size.setdefault(voc.image_size(image_id), []).append(image_id)
    for group in by_size.values():
        for start in range(0, len(group), batch_size):
            yield group[start:start + batch_size]


def run(checkpoint, root, classes, split, output, scales, flip, method=None, options=None, saliency=None,
        device="auto", threads=1, shard=None, batch_size=1, amp=True):
    """method: rebuild the checkpoint as this method (Grad-CAM on CAM's classifier); None = its own.
    options: the method's extraction settings beyond scales, flip and batch_size.
    shard: "i-of-n" to extract only that block of the split's ids (None = all).

    Returns the timing {"images", "seconds", "model_seconds", "other_fraction"}."""
    options = options or {}
    device = pick_device(device)
    method, model, _ = load_checkpoint(checkpoint, method=method)
    model.to(device).eval()
    voc = VOCDataset(root, classes, split, saliency)
    ids = shards.select(voc.ids, shard)
    params = {"checkpoint": str(checkpoint), "split": split, "shard": shard, "scales": scales, "flip": flip,
              "batch_size": batch_size, **options}
    names = map_names(model, device, options)  # images without tags still get every named map, empty
    start, clock = time.perf_counter(), {"model": 0.0}
    with StoreWriter(output, "extract_maps", method, ["background", *classes], params) as store:
        bar = tqdm(total=len(ids), desc=f"extract_maps {method} {split} {shard or ''}", mininterval=5)
        for batch in size_batches(voc, ids, batch_size):
            present = [np.flatnonzero(voc.tags(image_id)) for image_id in batch]  # 0-based indices
            tagged = [i for i, p in enumerate(present) if p.size]  # untagged: labelled background later
            images = [voc.image(image_id) for image_id in batch]
            maps = {}
            if tagged:
                results = multiscale_maps(model, [images[i] for i in tagged], [present[i] for i in tagged],
                                          scales, flip, device, options, amp, clock)
                maps = dict(zip(tagged, results))
            for i, image_id in enumerate(batch):
                empty = {name: np.zeros((0, *images[i].shape[:2]), np.float32) for name in names}
                store.write(image_id, maps.get(i, empty), classes=present[i] + 1)
            bar.update(len(batch))
        bar.close()
    return report_time(len(ids), time.perf_counter() - start, clock["model"])


def report_time(images, seconds, model_seconds):
    """Log and return the stage's time split: the model's passes (forward, and backward for
    Grad-CAM) vs. everything else (reading, normalising, resizing, writing)."""
    other = 1 - model_seconds / seconds if seconds > 0 else 0.0
    print(f"extract_maps: {images} images in {seconds:.1f} s, {model_seconds:.1f} s in the model; "
          f"work outside the model {100 * other:.1f} %", flush=True)
    return {"images": images, "seconds": seconds, "model_seconds": model_seconds, "other_fraction": other}
