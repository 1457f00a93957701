"""Peak memory of `extract_maps` on 100 vs. 1,000 images: it should not grow with the dataset.

A demo-style VOC-format tree of small images (64-96 px; split `train` = 100 ids, `train_aug` =
1,000) and a tiny ResNet-18 CAM checkpoint (random weights) are written to a temporary folder;
each split is extracted in a fresh subprocess, which reports its own peak resident set size
(VmHWM) and its resident size just before the stage started (torch and the package imported).
Target (issue 4: "peak memory of a shard does not grow with the dataset size"): flat, peak on
1,000 images <= 1.1x the peak on 100.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, main, row

CHILD = """
import json, sys
import torch
from wsss.stages import extract_maps

torch.set_num_threads(1)  # memory does not depend on it; one thread keeps a shared machine calm

def status(key):  # MB from /proc/self/status
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
args = json.loads(sys.argv[1])
before = status("VmRSS")
timing = extract_maps.run(**args)
print("BENCH_MEMORY " + json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), **timing}))
"""


def make_inputs(folder, small, large):
    """Demo tree (split train: `small` ids, train_aug: `large`) and a ResNet-18 CAM checkpoint."""
    import torch

    from wsss.data.demo import generate
    from wsss.data.voc import VOC_CLASSES
    from wsss.methods import build, save_checkpoint

    generate(folder / "voc", VOC_CLASSES, seed=0, counts={"train_aug": large, "train": small, "val": 1},
             min_side=64, max_side=96)
    torch.manual_seed(0)
    net = build("cam", num_classes=len(VOC_CLASSES), backbone="resnet18", output_stride=16)
    save_checkpoint(folder / "cam.pt", "cam", net)
    return VOC_CLASSES


def extract_in_subprocess(folder, classes, split):
    """Run extract_maps on `split` in a fresh interpreter; returns its report (MB, seconds)."""
    args = {"checkpoint": str(folder / "cam.pt"), "root": str(folder / "voc"), "classes": classes, "split": split,
            "output": str(folder / f"maps_{split}.h5"), "scales": [1.0], "flip": False, "device": "cpu",
            "threads": 1, "batch_size": 4, "amp": False}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"extract_maps subprocess failed:\n{done.stderr[-2000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("BENCH_MEMORY "))
    return json.loads(line.split(" ", 1)[1])


def run(quick=False):
    small, large = (10, 40) if quick else (100, 1000)
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        folder = Path(tmp)
        classes = make_inputs(folder, small, large)
        few = extract_in_subprocess(folder, classes, "train")
        many = extract_in_subprocess(folder, classes, "train_aug")
    ratio = many["peak_mb"] / few["peak_mb"]
    growth = (many["peak_mb"] - many["before_mb"], few["peak_mb"] - few["before_mb"])
    return [row(f"extract_maps peak memory: {large} vs. {small} images", many["peak_mb"], few["peak_mb"], ratio,
                "<= 1.1x", ratio <= 1.1,
                f"MB (max RSS of a fresh subprocess): ours = {large} images, reference = {small}, ratio = ours / "
                f"reference; above the RSS before the stage ({many['before_mb']:.0f} / {few['before_mb']:.0f} MB): "
                f"{growth[0]:.0f} vs. {growth[1]:.0f} MB; demo images 64-96 px, ResNet-18 OS16 CAM, scale 1.0, "
                f"batch 4, cpu, 1 thread; {many['seconds']:.0f} s vs. {few['seconds']:.0f} s", unit="MB")]


if __name__ == "__main__":
    main(run)
