"""The CRF stage (`make_labels`) with 2 worker processes vs. 1.

A VOC-format tree of 375 x 500 demo-style JPEGs and a fused-map store (two present classes per
image, smooth blobs as maps) are written to a temporary folder; `wsss.stages.make_labels.run`
labels them with psa's background cue (power, alpha 4) and psa's CRF preset (10 iterations over
background + the present classes) with threads=1 and threads=2, alternating, twice each (the
fastest run of each counts: the least disturbed on a shared machine). Target (issue
4): >= 1.7x. Context: one image's CRF with 3 vs. 21 labels (the issue measured 0.47 s and 1.17 s).
"""

import tempfile
from pathlib import Path

import numpy as np

from benchlib import blobs, clock, main, row, voc_images, write_voc_tree

BG_CUE = {"type": "power", "alpha": 4}
CRF = {"preset": "psa"}


def write_fused(path, ids, shape, classes, seed=0):
    """A fuse_maps store: per image a "map" (2, H, W) in [0, 1] and its two 1-based classes."""
    from wsss.io import StoreWriter

    rng = np.random.default_rng(seed)
    with StoreWriter(path, "fuse_maps", "cam", ["background", *classes], {}) as store:
        for image_id in ids:
            present = np.sort(rng.choice(len(classes), size=2, replace=False)) + 1
            store.write(image_id, {"map": blobs(shape, 2, rng)}, classes=present)


def time_stage(folder, fused, classes, threads):
    from wsss.stages import make_labels

    began = clock()
    make_labels.run(fused, folder / "voc", classes, "train", folder / f"labels_{threads}.h5", BG_CUE, CRF, 0.0,
                    method="cam", own=None, saliency=None, threads=threads, shard=None)
    return clock() - began


def crf_labels(image, labels, rng, repeats):
    """Best-of-`repeats` seconds of one psa CRF over `labels` labels on `image`."""
    from wsss.crf import PRESETS, dense_crf

    scores = np.concatenate([np.full((1, *image.shape[:2]), 0.3, np.float32), blobs(image.shape[:2], labels - 1, rng)])
    times = []
    for _ in range(repeats):
        began = clock()
        dense_crf(image, scores, **PRESETS["psa"])
        times.append(clock() - began)
    return min(times)


def run(quick=False):
    from wsss.data.voc import VOC_CLASSES

    count = 4 if quick else 30
    images = voc_images(count, seed=2)
    with tempfile.TemporaryDirectory(prefix="bench_crf_") as tmp:
        folder = Path(tmp)
        ids = write_voc_tree(folder / "voc", images, split="train")
        write_fused(folder / "fused.h5", ids, images[0].shape[:2], VOC_CLASSES)
        best = {1: float("inf"), 2: float("inf")}
        for _ in range(1 if quick else 2):  # alternating; the fastest run is the least disturbed
            for threads in (1, 2):
                best[threads] = min(best[threads], time_stage(folder, folder / "fused.h5", VOC_CLASSES, threads))
        one, two = best[1], best[2]
    rng = np.random.default_rng(3)
    repeats = 1 if quick else 2
    three, twentyone = crf_labels(images[0], 3, rng, repeats), crf_labels(images[0], 21, rng, repeats)
    ratio = one / two
    return [row("CRF stage (make_labels): 2 processes vs. 1", two, one, ratio, ">= 1.7x", ratio >= 1.7,
                f"ours = threads 2, reference = threads 1 (fastest of {1 if quick else 2} alternating runs), "
                f"ratio = reference / ours; {count} images 375x500, "
                f"2 present classes, power cue alpha 4, psa CRF (10 iterations); one image's CRF: "
                f"{three:.2f} s with 3 labels, {twentyone:.2f} s with 21 (issue: 0.47 s, 1.17 s)")]


if __name__ == "__main__":
    main(run)
