"""Helpers shared by the bench_*.py modules: the result row, a clock, VOC-sized test images
and the command line of a module run alone (`python benchmarks/bench_crf.py [--quick]`).

A row compares our implementation with a reference measured side by side in the same run:
{"benchmark", "ours_s", "reference_s", "ratio", "target", "met", "detail"}. Times are seconds;
a row may set "unit" (e.g. "MB") when ours / reference are not seconds (the detail says so too).
An empty target means "context only": the row has no target and `met` is True.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

VOC_SIZE = (375, 500)  # (H, W): the most common PASCAL VOC image size


def row(benchmark, ours, reference, ratio, target, met, detail, unit="s"):
    """One result row; `unit` is kept only when it is not seconds."""
    result = {"benchmark": benchmark, "ours_s": float(ours), "reference_s": float(reference),
              "ratio": float(ratio), "target": target, "met": bool(met), "detail": detail}
    if unit != "s":
        result["unit"] = unit
    return result


def clock(device=None):
    """perf_counter after waiting for queued CUDA kernels (a no-op on the CPU)."""
    if device is not None and getattr(device, "type", device) == "cuda":
        import torch

        torch.cuda.synchronize(device)
    return time.perf_counter()


def voc_images(count, seed=0, size=VOC_SIZE, num_classes=20):
    """`count` demo-style uint8 (H, W, 3) images of one size (textured objects on textured
    backgrounds, so the CRF's bilateral lattice and the JPEG codec see realistic content)."""
    from wsss.data.demo import generate_sample

    return [generate_sample(np.random.default_rng([seed, i]), num_classes, *size).image for i in range(count)]


def write_voc_tree(root, images, split="train", tags=None, num_classes=20):
    """A minimal VOC-format tree: JPEGs, the split's id list and (when `tags` is given: one array
    of 1-based classes per image) a mask per image whose classes are exactly those tags.
    Returns the ids."""
    from PIL import Image

    from wsss.data.palette import save_palette_png

    root = Path(root)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    ids = [f"bench_{i:06d}" for i in range(len(images))]
    for i, (image_id, image) in enumerate(zip(ids, images)):
        Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        if tags is not None:
            (root / "SegmentationClass").mkdir(exist_ok=True)
            save_palette_png(root / "SegmentationClass" / f"{image_id}.png", stripes(image.shape[:2], tags[i]))
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return ids


def stripes(shape, classes):
    """uint8 (H, W) mask: background plus one vertical stripe per class (tags come from masks)."""
    mask = np.zeros(shape, np.uint8)
    width = shape[1] // (len(classes) + 1)
    for i, c in enumerate(classes):
        mask[:, (i + 1) * width - width // 2:(i + 1) * width + width // 2] = c
    return mask


def blobs(shape, count, rng):
    """float32 (count, H, W) smooth maps in [0, 1]: one Gaussian blob per class, a stand-in for
    fused localization maps."""
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    maps = []
    for _ in range(count):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        sigma = rng.uniform(0.1, 0.25) * min(height, width)
        maps.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)))
    return np.stack(maps).astype(np.float32)


def format_rows(rows):
    """Plain-text lines for the console."""
    lines = []
    for r in rows:
        unit = r.get("unit", "s")
        lines.append(f"{r['benchmark']}: ours {r['ours_s']:.3g} {unit}, reference {r['reference_s']:.3g} {unit}, "
                     f"ratio {r['ratio']:.3g} (target {r['target'] or '-'}: {'met' if r['met'] else 'NOT met'})"
                     f"\n    {r['detail']}")
    return "\n".join(lines)


def main(run):
    """Command line of a module run alone: print its rows (results.json is left alone)."""
    parser = argparse.ArgumentParser(description=run.__module__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))
