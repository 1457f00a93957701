"""The `wsss` command on small stores written here with StoreWriter.

list prints the provenance; show draws a label in VOC colours and a map as heat over the image,
pixel for pixel at `--zoom`; export writes palette PNGs whose values are the labels; compare puts
two stores side by side and marks where their labels differ; bad input ends with one line.
"""

import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from wsss.cli import main
from wsss.data.palette import VOC_PALETTE
from wsss.io import StoreWriter
from wsss.report.draw import heat_overlay
from wsss.report.panels import GAP, TITLE

CLASSES = ["background", "alpha", "beta"]
H, W = 4, 6
LABEL_A = np.array([[0, 0, 1, 1, 2, 2],
                    [0, 0, 1, 1, 2, 2],
                    [255, 255, 1, 1, 0, 0],
                    [255, 255, 0, 0, 0, 0]], np.uint8)
LABEL_B = np.where(LABEL_A == 2, 1, LABEL_A).astype(np.uint8)  # beta -> alpha: 4 pixels differ
MAPS = np.stack([np.linspace(0, 1, H * W).reshape(H, W),  # alpha: a ramp
                 np.zeros((H, W))]).astype(np.float16)  # beta: empty; float16 as stored


def write_labels(path, label, method="cam"):
    params = {"fused": "x/fused/train_aug.h5", "crf": {"iterations": 10}}
    with StoreWriter(path, "make_labels", method, CLASSES, params) as store:
        store.write("img_a", {"label": label})
        store.write("img_b", {"label": np.zeros((H, W), np.uint8)})
    return str(path)


@pytest.fixture
def stores(tmp_path):
    labels = write_labels(tmp_path / "cam" / "labels" / "train_aug.h5", LABEL_A)
    other = write_labels(tmp_path / "mdc" / "labels" / "train_aug.h5", LABEL_B, method="mdc")
    fused = tmp_path / "cam" / "fused" / "train_aug.h5"
    with StoreWriter(fused, "fuse_maps", "cam", CLASSES, {"fuse": {}}) as store:
        store.write("img_a", {"map": MAPS}, classes=[1, 2])
    return {"labels": labels, "other": other, "fused": str(fused)}


@pytest.fixture
def root(tmp_path):
    """A VOC-format folder with the image (a lossless-enough flat colour JPEG) and its mask."""
    root = tmp_path / "VOC"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    Image.fromarray(np.full((H, W, 3), 100, np.uint8)).save(root / "JPEGImages" / "img_a.jpg")
    mask = Image.fromarray(LABEL_A)
    mask.save(root / "SegmentationClass" / "img_a.png")
    return root


def panel(png, row, col, zoom):
    """The (H, W, 3) picture of panel (row, col), read back at one pixel per image pixel."""
    x0, y0 = GAP + col * (W * zoom + GAP), GAP + row * (TITLE + H * zoom + GAP) + TITLE
    rgb = np.asarray(png.convert("RGB"))
    return rgb[y0 + zoom // 2: y0 + H * zoom: zoom, x0 + zoom // 2: x0 + W * zoom: zoom]


def palette_rgb(label):
    return np.asarray(VOC_PALETTE, np.uint8).reshape(256, 3)[label]


def test_list_prints_provenance_and_ids(stores, capsys):
    assert main(["list", stores["labels"], "--ids"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "stage    make_labels" in out and "method   cam" in out and "images   2" in out
    assert "classes  background, alpha, beta" in out
    assert "  label      uint8 (4, 6)" in out
    assert '             "iterations": 10' in out  # params, as JSON
    assert out[-2:] == ["img_a", "img_b"]


def test_show_label_is_drawn_pixel_for_pixel_in_voc_colours(stores, tmp_path, capsys):
    output = tmp_path / "show.png"
    assert main(["show", stores["labels"], "img_a", "--zoom", "20", "-o", str(output)]) == 0
    png = Image.open(output)
    assert png.width == GAP + W * 20 + GAP  # one panel
    assert png.height > GAP + TITLE + H * 20 + GAP  # and a legend below it
    assert (panel(png, 0, 0, 20) == palette_rgb(LABEL_A)).all()


def test_show_with_root_draws_image_ground_truth_and_each_class_as_heat(stores, root, tmp_path):
    output = tmp_path / "show.png"
    assert main(["show", stores["fused"], "img_a", "--root", str(root), "--zoom", "20", "-o", str(output)]) == 0
    png = Image.open(output)
    assert png.width == GAP + 2 * (W * 20 + GAP)  # image | ground truth, then one map per row
    image = np.asarray(Image.open(root / "JPEGImages" / "img_a.jpg").convert("RGB"))
    assert (panel(png, 0, 1, 20) == palette_rgb(LABEL_A)).all()  # ground truth
    assert (panel(png, 1, 0, 20) == heat_overlay(image, MAPS[0].astype(np.float32))).all()  # alpha
    assert (panel(png, 2, 0, 20) == heat_overlay(image, MAPS[1].astype(np.float32))).all()  # beta


def test_export_writes_voc_palette_pngs_holding_the_labels(stores, tmp_path):
    outdir = tmp_path / "pngs"
    assert main(["export", stores["labels"], str(outdir)]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["img_a.png", "img_b.png"]
    png = Image.open(outdir / "img_a.png")
    assert png.mode == "P"
    assert png.getpalette()[:3 * 256] == VOC_PALETTE
    assert (np.asarray(png) == LABEL_A).all()


def test_compare_shows_both_labels_and_marks_the_pixels_that_differ(stores, tmp_path, capsys):
    output = tmp_path / "cmp.png"
    assert main(["compare", stores["labels"], stores["other"], "img_a", "--zoom", "20", "-o", str(output)]) == 0
    assert "labels differ on 4 of 24 pixels (16.7 %)" in capsys.readouterr().out
    png = Image.open(output)
    assert png.width == GAP + 3 * (W * 20 + GAP)  # A | B | difference
    assert (panel(png, 0, 0, 20) == palette_rgb(LABEL_A)).all()
    assert (panel(png, 0, 1, 20) == palette_rgb(LABEL_B)).all()
    red = (panel(png, 0, 2, 20) == (220, 0, 0)).all(-1)
    assert (red == (LABEL_A != LABEL_B)).all()


def error_line(capsys):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_missing_image_id_is_one_line_naming_it(stores, capsys):
    assert main(["show", stores["labels"], "img_zz"]) == 1
    err = error_line(capsys)
    assert err.startswith("wsss: error:") and "'img_zz'" in err and stores["labels"] in err


def test_file_that_is_not_a_store_is_one_line_naming_it(tmp_path, capsys):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    assert main(["list", str(text)]) == 1
    assert str(text) in error_line(capsys)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5.create_dataset("x", data=np.zeros(3))
    assert main(["export", str(foreign), str(tmp_path / "out")]) == 1
    err = error_line(capsys)
    assert str(foreign) in err and "not a wsss store" in err


def test_export_refuses_a_maps_store(stores, tmp_path, capsys):
    assert main(["export", stores["fused"], str(tmp_path / "out")]) == 1
    err = error_line(capsys)
    assert stores["fused"] in err and "not labels" in err


def test_the_command_exits_non_zero_with_one_line(stores):
    """As installed: `python -m wsss.cli` runs the same main() as the `wsss` script."""
    out = subprocess.run([sys.executable, "-m", "wsss.cli", "show", stores["labels"], "nosuch"],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"wsss: error: {stores['labels']}: image id 'nosuch' not in store"]
