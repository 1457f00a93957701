"""The generated demo dataset: layout, determinism, ground truth and the CAM failure modes."""

import colorsys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.data import demo
from wsss.data.palette import VOC_PALETTE, save_palette_png
from wsss.errors import WsssError

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]
COUNTS = {"train_aug": 40, "train": 12, "val": 10}


def read_list(root, split):
    return (Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def load(path):
    return np.array(Image.open(path))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    demo.generate(root, VOC_CLASSES, seed=3, counts=COUNTS, min_side=64, max_side=96)
    return root


def all_files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- palette

def test_palette_is_voc_colormap(tmp_path):
    assert len(VOC_PALETTE) == 768
    assert VOC_PALETTE[0:3] == [0, 0, 0]
    assert VOC_PALETTE[3:6] == [128, 0, 0]
    assert VOC_PALETTE[15 * 3:16 * 3] == [192, 128, 128]  # person
    assert VOC_PALETTE[255 * 3:] == [224, 224, 192]
    mask = np.array([[0, 1, 255], [20, 2, 0]], np.uint8)
    save_palette_png(tmp_path / "m.png", mask)
    img = Image.open(tmp_path / "m.png")
    assert img.mode == "P"
    assert img.getpalette()[:768] == VOC_PALETTE
    np.testing.assert_array_equal(np.array(img), mask)
    with pytest.raises(WsssError):
        save_palette_png(tmp_path / "bad.png", np.full((2, 2), 300))


# ----------------------------------------------------------------------------- layout

def test_layout_and_splits(voc):
    aug, train, val = (read_list(voc, s) for s in ("train_aug", "train", "val"))
    assert (len(aug), len(train), len(val)) == (40, 12, 10)
    assert all(len(i) == len("demo_000000") and i.startswith("demo_") for i in aug + val)
    assert set(train) <= set(aug)
    assert not set(val) & set(aug)
    assert len(set(aug)) == len(aug) and len(set(val)) == len(val)
    for i in aug + val:
        assert (voc / "JPEGImages" / f"{i}.jpg").is_file()
        assert (voc / "SegmentationClassAug" / f"{i}.png").is_file()
        assert (voc / "saliency" / f"{i}.png").is_file()
    with_gt = {p.stem for p in (voc / "SegmentationClass").glob("*.png")}
    assert with_gt == set(train) | set(val)


def test_split_lists_written_last(voc):
    lists = [p.stat().st_mtime_ns for p in (voc / "ImageSets" / "Segmentation").glob("*.txt")]
    data = [p.stat().st_mtime_ns for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "saliency")
            for p in (voc / d).iterdir()]
    assert min(lists) >= max(data)


def test_sizes_and_formats(voc):
    for i in read_list(voc, "train") + read_list(voc, "val"):
        img = Image.open(voc / "JPEGImages" / f"{i}.jpg")
        assert img.format == "JPEG" and img.mode == "RGB"
        w, h = img.size
        assert 64 <= w <= 96 and 64 <= h <= 96
        for d in ("SegmentationClass", "SegmentationClassAug"):
            m = Image.open(voc / d / f"{i}.png")
            assert m.mode == "P" and m.size == (w, h)
            assert m.getpalette()[:768] == VOC_PALETTE
        sal = Image.open(voc / "saliency" / f"{i}.png")
        assert sal.mode == "L" and sal.size == (w, h)
    sizes = {Image.open(p).size for p in (voc / "JPEGImages").glob("*.jpg")}
    assert len(sizes) > 10  # H and W vary


def test_mask_values_and_boundary_band(voc):
    k = len(VOC_CLASSES)
    for i in read_list(voc, "train") + read_list(voc, "val"):
        gt = load(voc / "SegmentationClass" / f"{i}.png")
        aug = load(voc / "SegmentationClassAug" / f"{i}.png")
        assert set(np.unique(gt)) <= set(range(k + 1)) | {255}
        assert set(np.unique(aug)) <= set(range(k + 1))
        band = gt == 255
        assert band.any(), "VOC-style 255 band missing"
        assert (gt[~band] == aug[~band]).all()
        assert (band == demo.boundary_band(aug)).all()
        # the band is thin: it never covers a whole class and leaves the interior labelled
        for c in np.unique(aug)[1:]:
            assert (gt == c).sum() >= demo.MIN_INTERIOR_PIXELS
            assert (aug == c).sum() >= demo.MIN_CLASS_PIXELS
        assert band.sum() < 0.6 * (aug > 0).sum()


def test_classes_cover_and_multiclass(voc):
    present = [set(np.unique(load(voc / "SegmentationClassAug" / f"{i}.png"))) - {0}
               for i in read_list(voc, "train_aug")]
    assert all(present), "every image has an object"
    assert set().union(*present) == set(range(1, len(VOC_CLASSES) + 1))
    assert sum(len(p) >= 2 for p in present) >= 5
    assert max(len(p) for p in present) <= 3


def test_saliency_informative_but_imperfect(voc):
    fg_vals, bg_vals, ious = [], [], []
    for i in read_list(voc, "train_aug"):
        fg = load(voc / "SegmentationClassAug" / f"{i}.png") > 0
        sal = load(voc / "saliency" / f"{i}.png").astype(float)
        fg_vals.append(sal[fg])
        bg_vals.append(sal[~fg])
        pred = sal > 127
        ious.append((pred & fg).sum() / max(1, (pred | fg).sum()))
    fg_vals, bg_vals = np.concatenate(fg_vals), np.concatenate(bg_vals)
    assert fg_vals.mean() > bg_vals.mean() + 100
    assert 0.5 < np.mean(ious) < 0.95
    assert (fg_vals < 64).mean() > 0.02   # missed objects / parts
    assert (bg_vals > 127).mean() > 0.002  # false positives on the background


# ----------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    counts = {"train_aug": 5, "train": 2, "val": 3}
    demo.generate(tmp_path / "a", ["x", "y", "z", "w"], seed=11, counts=counts)
    demo.generate(tmp_path / "b", ["x", "y", "z", "w"], seed=11, counts=counts)
    demo.generate(tmp_path / "c", ["x", "y", "z", "w"], seed=12, counts=counts)
    a, b, c = (all_files(tmp_path / n) for n in "abc")
    assert len(a) == 3 * 8 + (2 + 3) + 3  # jpg, aug and saliency for all; gt for train + val; lists
    assert a == b
    jpgs = [k for k in a if k.suffix == ".jpg"]
    assert jpgs == [k for k in c if k.suffix == ".jpg"]
    assert all(a[k] != c[k] for k in jpgs)


def test_regenerating_overwrites_in_place(tmp_path):
    counts = {"train_aug": 4, "train": 1, "val": 2}
    demo.generate(tmp_path, ["x", "y"], seed=0, counts=counts)
    first = all_files(tmp_path)
    demo.generate(tmp_path, ["x", "y"], seed=0, counts=counts)
    assert all_files(tmp_path) == first


# ----------------------------------------------------------------------------- failure modes

def _saturation(rgb):
    return np.array([colorsys.rgb_to_hsv(*(p / 255.0))[1] for p in rgb.reshape(-1, 3)])


def test_discriminative_part_is_small_and_distinct():
    fractions = []
    for n in range(40):
        rng = np.random.default_rng([5, n])
        s = demo.generate_sample(rng, 20, 96, 112)
        fg = s.label > 0
        assert s.part.any() and not (s.part & ~fg).any()
        fractions.append(s.part.sum() / fg.sum())
        body = fg & ~s.part
        if n < 10:  # the part carries the class colour, the body is grey-ish
            assert _saturation(s.image[s.part]).mean() > _saturation(s.image[body]).mean() + 0.15
    fractions = np.array(fractions)
    assert fractions.max() < 0.35
    assert 0.08 < fractions.mean() < 0.25


def test_body_appearance_shared_part_appearance_class_specific():
    """Mean body colour does not separate two classes; mean part colour does."""
    stats = {1: ([], []), 2: ([], [])}
    for n in range(30):
        for c in (1, 2):
            rng = np.random.default_rng([9, n, c])
            s = demo.generate_sample(rng, 2, 96, 96, primary=c)
            own = s.label == c
            stats[c][0].append(s.image[own & ~s.part].mean(0))
            if (own & s.part).sum() > 10:
                stats[c][1].append(s.image[own & s.part].mean(0))
    body1, body2 = np.array(stats[1][0]), np.array(stats[2][0])
    part1, part2 = np.array(stats[1][1]), np.array(stats[2][1])
    spread = lambda a, b: np.linalg.norm(a.mean(0) - b.mean(0)) / (0.5 * (a.std(0).mean() + b.std(0).mean()))
    assert spread(part1, part2) > 3 * spread(body1, body2)
    assert spread(part1, part2) > 2


def test_background_correlates_with_classes():
    hits, n = 0, 150
    for i in range(n):
        rng = np.random.default_rng([21, i])
        s = demo.generate_sample(rng, 10, 80, 80)
        if s.background_class:
            assert s.background_class in set(np.unique(s.label))
            hits += 1
    assert 0.15 < hits / n < 0.36  # PREFERRED_BACKGROUND = 0.25
    # the preferred backgrounds of different classes look different
    s1, s2 = demo.class_style(1), demo.class_style(2)
    assert np.linalg.norm(np.subtract(s1.bg_rgb, s2.bg_rgb)) > 20 or s1.bg_family != s2.bg_family


def test_class_styles_distinct_for_many_classes():
    styles = [demo.class_style(i) for i in range(1, 41)]
    keys = {(round(s.part_rgb[0] / 20), round(s.part_rgb[1] / 20), round(s.part_rgb[2] / 20), s.pattern)
            for s in styles}
    assert len(keys) >= 36


@pytest.mark.parametrize("num_classes", [1, 3, 25])
def test_other_class_counts(tmp_path, num_classes):
    classes = [f"thing{i}" for i in range(num_classes)]
    counts = {"train_aug": max(num_classes, 6), "train": 3, "val": 3}
    demo.generate(tmp_path, classes, seed=1, counts=counts, min_side=72, max_side=80)
    present = set()
    for i in read_list(tmp_path, "train_aug") + read_list(tmp_path, "val"):
        m = load(tmp_path / "SegmentationClassAug" / f"{i}.png")
        assert m.max() <= num_classes
        present |= set(np.unique(m)) - {0}
    assert present == set(range(1, num_classes + 1))


# ----------------------------------------------------------------------------- argument checks

@pytest.mark.parametrize("kwargs, word", [
    ({"classes": []}, "classes"),
    ({"classes": "cat"}, "classes"),
    ({"classes": ["a", "a"]}, "classes"),
    ({"counts": {"train_aug": 5, "train": 6, "val": 2}}, "counts.train"),
    ({"counts": {"train_aug": 5, "train": 2, "val": 0}}, "counts.val"),
    ({"counts": {"train_aug": 0, "train": 0, "val": 2}}, "counts.train_aug"),
    ({"counts": {"train_aug": 5, "val": 2}}, "counts"),
    ({"min_side": 120, "max_side": 100}, "min_side"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments(tmp_path, kwargs, word):
    args = {"classes": ["a", "b"], "counts": {"train_aug": 5, "train": 2, "val": 2}}
    args.update(kwargs)
    with pytest.raises(WsssError, match=word) as err:
        demo.generate(tmp_path, **args)
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir()), "nothing is written for bad arguments"
