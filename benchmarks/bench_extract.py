"""The share of `extract_maps`' time spent outside the model's passes (reading, normalising,
resizing, writing) on VOC-sized images.

A VOC-format tree of 375 x 500 demo-style JPEGs (masks give two present classes per image) and
a ResNet-50 OS16 CAM checkpoint (random weights) are written to a temporary folder, then
`wsss.stages.extract_maps.run` extracts CAM and Grad-CAM (from the same checkpoint) with psa /
IRN's inference: scales 1.0, 0.5, 1.5, 2.0 and flips. The stage itself reports the split
(`other_fraction`). Target (issue 4): < 15 %. Above it, a cProfile run on two images says
where the time goes.
"""

import cProfile
import pstats
import tempfile
from pathlib import Path

import numpy as np

from benchlib import VOC_SIZE, main, row, voc_images, write_voc_tree

SCALES, FLIP, BATCH = [1.0, 0.5, 1.5, 2.0], True, 2
TARGET = 0.15

# Where the time goes: (label, file path suffix, function name) of the stage's steps.
PROBES = [
    ("model", "wsss/methods/cam.py", "maps"), ("model", "wsss/methods/gradcam.py", "maps"),
    ("read JPEG", "wsss/data/voc.py", "image"), ("image sizes", "wsss/data/voc.py", "image_size"),
    ("tags", "wsss/data/voc.py", "tags"), ("normalise", "wsss/data/transforms.py", "normalize"),
    ("resize", "torch/nn/functional.py", "interpolate"), ("max-normalise", "extract_maps.py", "max_normalize"),
    ("write HDF5", "wsss/io.py", "write"), ("load checkpoint", "wsss/methods/__init__.py", "load_checkpoint"),
]


def make_inputs(folder, count, size):
    """The image tree (split `train`, and `profile` = its first two ids) and a CAM checkpoint."""
    import torch

    from wsss.data.voc import VOC_CLASSES
    from wsss.methods import build, save_checkpoint

    rng = np.random.default_rng(4)
    tags = [np.sort(rng.choice(20, size=2, replace=False)) + 1 for _ in range(count)]
    ids = write_voc_tree(folder / "voc", voc_images(count, seed=4, size=size), split="train", tags=tags)
    (folder / "voc" / "ImageSets" / "Segmentation" / "profile.txt").write_text("".join(f"{i}\n" for i in ids[:2]))
    torch.manual_seed(0)
    save_checkpoint(folder / "cam.pt", "cam", build("cam", num_classes=20, backbone="resnet50", output_stride=16))
    return VOC_CLASSES


def extract(folder, classes, method, split):
    from wsss.stages import extract_maps

    return extract_maps.run(folder / "cam.pt", folder / "voc", classes, split, folder / f"{method}_{split}.h5",
                            SCALES, FLIP, method=method, device="cpu", threads=1, batch_size=BATCH, amp=False)


def profile(folder, classes, method):
    """cProfile of the stage on two images: cumulative seconds per step and the top self times."""
    profiler = cProfile.Profile()
    profiler.runcall(extract, folder, classes, method, "profile")
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, ncalls, self s, cumulative s, callers)
    steps = {}
    for label, suffix, name in PROBES:
        for (file, _, function), (_, _, _, cumulative, _) in stats.items():
            if function == name and file.endswith(suffix):
                steps[label] = steps.get(label, 0.0) + cumulative
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:4]
    tops = ", ".join(f"{Path(file).name}:{function} {value[2]:.2f}" for (file, _, function), value in top)
    return ("profile of 2 images, cumulative s: " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            + f"; top self times: {tops}")


def run(quick=False):
    count, size = (2, (188, 250)) if quick else (8, VOC_SIZE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        folder = Path(tmp)
        classes = make_inputs(folder, count, size)
        for method in ("cam", "gradcam"):
            timing = extract(folder, classes, method, "train")
            fraction = timing["other_fraction"]
            detail = (f"s: ours = time outside the model's passes, reference = the stage's time, ratio = share; "
                      f"{count} images {size[0]}x{size[1]}, 2 classes each, ResNet-50 OS16, scales "
                      f"{SCALES} + flip, batch {BATCH}, cpu")
            if fraction >= TARGET:
                detail += "; " + profile(folder, classes, method)
            label = "CAM" if method == "cam" else "Grad-CAM"
            rows.append(row(f"extract_maps ({label}): share of time outside the model", timing["seconds"] -
                            timing["model_seconds"], timing["seconds"], fraction, f"< {TARGET:.0%}", fraction < TARGET,
                            detail))
    return rows


if __name__ == "__main__":
    main(run)
