"""Bad input through a whole stage: one line naming the culprit, exit 1, no finished output.

The reader's messages are tested in test_voc.py; here the same faults go through a stage and the
Snakemake script shim, as a user would meet them.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from wsss.data.palette import save_palette_png
from wsss.methods import build, save_checkpoint
from wsss.stages.shim import run_rule

CLASSES = ["cell", "nucleus"]


class Named(dict):
    """Stands in for Snakemake's Namedlist: named items plus list-style indexing."""

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


def make_tree(root, ids=("a", "b")):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for image_id in ids:
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        mask = np.zeros((40, 48), np.uint8)
        mask[10:30, 10:30] = 1
        save_palette_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def extract(tmp_path, root):
    checkpoint = tmp_path / "classifier.pt"
    save_checkpoint(checkpoint, "cam", build("cam", num_classes=2, backbone="resnet18"))
    output = tmp_path / "out" / "maps.h5"
    log = tmp_path / "extract.log"
    smk = SimpleNamespace(
        input=Named(checkpoint=str(checkpoint)), output=Named(output=str(output)),
        params=Named(root=str(root), classes=CLASSES, split="train", scales=[1.0], flip=False, device="cpu"),
        threads=1, log=[str(log)],
    )
    with pytest.raises(SystemExit) as exit_info:
        run_rule(smk, "extract_maps")
    return exit_info.value.code, output, log


def error_line(log, capsys):
    lines = [line for line in Path(log).read_text().splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert capsys.readouterr().err.strip().endswith(lines[0])
    return lines[0]


def no_finished_output(output):
    """Neither the store nor a leftover temporary file."""
    return not output.exists() and not list(output.parent.glob(f".{output.name}*"))


@pytest.mark.parametrize(
    "fault, names",
    [
        ("missing_image", "b.jpg"),
        ("corrupt_jpeg", "b.jpg"),
        ("mask_size", "b.png"),
        ("mask_value", "b.png"),
        ("empty_split", "train.txt"),
        ("missing_root", "dataset.root"),
    ],
)
def test_stage_fails_with_one_line_and_no_output(tmp_path, capsys, fault, names):
    root = make_tree(tmp_path / "VOC")
    if fault == "missing_image":
        (root / "JPEGImages" / "b.jpg").unlink()
    elif fault == "corrupt_jpeg":
        data = (root / "JPEGImages" / "b.jpg").read_bytes()
        (root / "JPEGImages" / "b.jpg").write_bytes(data[: len(data) // 3])
    elif fault == "mask_size":
        save_palette_png(root / "SegmentationClass" / "b.png", np.zeros((20, 20), np.uint8))
    elif fault == "mask_value":
        save_palette_png(root / "SegmentationClass" / "b.png", np.full((40, 48), 7, np.uint8))
    elif fault == "empty_split":
        (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n")
    elif fault == "missing_root":
        root = tmp_path / "nowhere"
    code, output, log = extract(tmp_path, root)
    assert code == 1
    assert names in error_line(log, capsys)
    assert no_finished_output(output)


def test_unexpected_errors_keep_their_traceback_in_the_log(tmp_path):
    """A bug (not bad input) is not hidden behind a one-line message."""
    root = make_tree(tmp_path / "VOC")
    smk = SimpleNamespace(
        input=Named(), output=Named(output=str(tmp_path / "x.h5")),
        params=Named(root=str(root), classes=CLASSES, split="train", bogus=1),
        threads=1, log=[str(tmp_path / "x.log")],
    )
    with pytest.raises(TypeError):
        run_rule(smk, "evaluate_labels")
    assert "Traceback" in (tmp_path / "x.log").read_text()
    torch.set_num_threads(2)
