"""VOC-format reader on small trees built here: tags, fallbacks, custom classes, bad input."""

import numpy as np
import pytest
from PIL import Image

from wsss.data.palette import save_palette_png
from wsss.data.voc import VOC_CLASSES, VOCDataset, read_split, xml_object_names
from wsss.errors import WsssError

H, W = 12, 16


def make_image(root, image_id, size=(H, W), seed=0):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    path = root / "JPEGImages" / f"{image_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)
    return array


def make_split(root, split, ids):
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def make_mask(root, image_id, mask, folder="SegmentationClass"):
    path = root / folder / f"{image_id}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder == "SegmentationClass":
        save_palette_png(path, mask)
    else:  # SBD's SegmentationClassAug: grayscale PNG
        Image.fromarray(np.asarray(mask, np.uint8), mode="L").save(path)
    return path


def make_xml(root, image_id, names, size=(H, W)):
    objects = "".join(
        f"""
  <object>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>
  </object>"""
        for name in names
    )
    text = f"""<annotation>
  <folder>VOC2012</folder>
  <filename>{image_id}.jpg</filename>
  <source><database>The VOC2007 Database</database></source>
  <size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>
  <segmented>0</segmented>{objects}
</annotation>
"""
    path = root / "Annotations" / f"{image_id}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def band_mask(values):
    """(H, W) mask: background, class blocks from `values`, a 255 boundary band around them."""
    mask = np.zeros((H, W), np.uint8)
    for i, value in enumerate(values):
        mask[2:8, 1 + 5 * i:4 + 5 * i] = value
        mask[1, 1 + 5 * i:4 + 5 * i] = 255
    return mask


def error_of(fn, *args):
    with pytest.raises(WsssError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message, f"message is not one line: {message!r}"
    return message


@pytest.fixture
def voc_tree(tmp_path):
    """A tree with one id per tag source: SegmentationClass, SegmentationClassAug, XML."""
    root = tmp_path / "VOC2012"
    for n, image_id in enumerate(["seg", "aug", "xml", "both"]):
        make_image(root, image_id, seed=n)
    make_mask(root, "seg", band_mask([VOC_CLASSES.index("cat") + 1, VOC_CLASSES.index("dog") + 1]))
    make_mask(root, "aug", band_mask([VOC_CLASSES.index("person") + 1]), folder="SegmentationClassAug")
    make_xml(root, "xml", ["car", "bus", "car"])
    # SegmentationClass wins over SegmentationClassAug and XML
    make_mask(root, "both", band_mask([VOC_CLASSES.index("cow") + 1]))
    make_mask(root, "both", band_mask([VOC_CLASSES.index("sheep") + 1]), folder="SegmentationClassAug")
    make_xml(root, "both", ["horse"])
    make_split(root, "train", ["seg", "aug", "xml", "both"])
    return root


def tagged(voc, image_id):
    return [voc.classes[i] for i in np.flatnonzero(voc.tags(image_id))]


def test_split_and_image(voc_tree):
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert voc.ids == ["seg", "aug", "xml", "both"] and len(voc) == 4
    assert voc.num_classes == 21
    image = voc.image("seg")
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert voc.image_size("seg") == (H, W)


def test_tags_from_segmentation_class_ignore_band(voc_tree):
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    tags = voc.tags("seg")
    assert tags.dtype == np.float32 and tags.shape == (20,)
    assert tagged(voc, "seg") == ["cat", "dog"]  # 255 band does not index anything
    assert tags.sum() == 2
    mask = voc.mask("seg")
    np.testing.assert_array_equal(np.unique(mask), [0, 8, 12, 255])


def test_tags_fallback_to_segmentation_class_aug(voc_tree):
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert tagged(voc, "aug") == ["person"]
    assert voc.mask_path("aug").parent.name == "SegmentationClassAug"


def test_tags_from_xml_when_no_mask(voc_tree):
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert voc.mask("xml") is None
    assert tagged(voc, "xml") == ["bus", "car"]  # repeated objects give one tag


def test_segmentation_class_preferred(voc_tree):
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert tagged(voc, "both") == ["cow"]


def test_xml_object_names_in_order(voc_tree):
    assert xml_object_names(voc_tree / "Annotations" / "xml.xml") == ["car", "bus", "car"]


def test_custom_class_names(tmp_path):
    root = tmp_path / "cells"
    classes = ["cell", "nucleus"]
    make_image(root, "m1")
    make_image(root, "m2")
    make_image(root, "x1")
    make_mask(root, "m1", band_mask([2]))                  # nucleus only, with 255 band
    make_mask(root, "m2", band_mask([1, 2]), folder="SegmentationClassAug")
    make_xml(root, "x1", ["cell"])
    make_split(root, "val", ["m1", "m2", "x1"])
    voc = VOCDataset(root, classes, "val")
    assert voc.num_classes == 3
    np.testing.assert_array_equal(voc.tags("m1"), [0, 1])
    np.testing.assert_array_equal(voc.tags("m2"), [1, 1])
    np.testing.assert_array_equal(voc.tags("x1"), [1, 0])


def test_saliency_read_scaled(voc_tree, tmp_path):
    sal_dir = tmp_path / "sal"
    sal_dir.mkdir()
    sal = np.zeros((H, W), np.uint8)
    sal[:, W // 2:] = 255
    sal[0, 0] = 51
    Image.fromarray(sal, mode="L").save(sal_dir / "seg.png")
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train", saliency=sal_dir)
    out = voc.saliency("seg")
    assert out.dtype == np.float32 and out.shape == (H, W)
    assert out[0, 0] == pytest.approx(0.2)
    assert out[:, W // 2:].min() == 1.0 and out[1:, : W // 2].max() == 0.0


# ---- bad input: one-line WsssError naming the file / id / config key ----


def test_missing_root(tmp_path):
    message = error_of(VOCDataset, tmp_path / "nowhere", VOC_CLASSES, "train")
    assert "dataset.root" in message and "nowhere" in message


def test_missing_split_file(voc_tree):
    message = error_of(VOCDataset, voc_tree, VOC_CLASSES, "val")
    assert "val.txt" in message


def test_empty_split(voc_tree):
    (voc_tree / "ImageSets" / "Segmentation" / "empty.txt").write_text("\n  \n")
    message = error_of(VOCDataset, voc_tree, VOC_CLASSES, "empty")
    assert "empty.txt" in message
    message = error_of(read_split, voc_tree, "empty")
    assert "empty" in message


def test_listed_id_without_image(voc_tree):
    make_split(voc_tree, "train", ["seg", "ghost_0001"])
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.image, "ghost_0001")
    assert "ghost_0001" in message
    # also when reached through a mask's size check or the tags
    make_mask(voc_tree, "ghost_0001", band_mask([1]))
    assert "ghost_0001" in error_of(voc.tags, "ghost_0001")


def test_garbage_jpeg(voc_tree):
    path = voc_tree / "JPEGImages" / "seg.jpg"
    path.write_bytes(b"\x00garbage, not a jpeg" * 20)
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.image, "seg")
    assert str(path) in message
    assert str(path) in error_of(voc.image_size, "seg")


def test_truncated_jpeg(voc_tree):
    path = voc_tree / "JPEGImages" / "aug.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.image, "aug")
    assert str(path) in message


def test_mask_size_differs_from_image(voc_tree):
    make_mask(voc_tree, "seg", np.zeros((H + 2, W), np.uint8))
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.tags, "seg")
    assert "seg.png" in message and "size" in message


def test_mask_value_beyond_classes(tmp_path):
    root = tmp_path / "cells"
    make_image(root, "m")
    make_mask(root, "m", band_mask([1, 3]))  # 3 > 2 classes; the 255 band is fine
    make_split(root, "train", ["m"])
    voc = VOCDataset(root, ["cell", "nucleus"], "train")
    message = error_of(voc.tags, "m")
    assert "m.png" in message and "3" in message and "dataset.classes" in message


def test_mask_not_palette_or_gray(voc_tree):
    path = voc_tree / "SegmentationClass" / "seg.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert "seg.png" in error_of(voc.mask, "seg")


def test_xml_name_not_in_classes(voc_tree):
    make_xml(voc_tree, "xml", ["car", "unicorn"])
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.tags, "xml")
    assert "xml.xml" in message and "unicorn" in message and "dataset.classes" in message


def test_no_mask_and_no_xml(voc_tree):
    (voc_tree / "Annotations" / "xml.xml").unlink()
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    message = error_of(voc.tags, "xml")
    assert "xml" in message and "Annotations" in message


def test_unparsable_xml(voc_tree):
    (voc_tree / "Annotations" / "xml.xml").write_text("<annotation><object><name>car</name>")
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train")
    assert "xml.xml" in error_of(voc.tags, "xml")


def test_missing_saliency(voc_tree, tmp_path):
    sal_dir = tmp_path / "sal"
    sal_dir.mkdir()
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train", saliency=sal_dir)
    message = error_of(voc.saliency, "seg")
    assert str(sal_dir / "seg.png") in message and "dataset.saliency" in message


def test_saliency_size_differs(voc_tree, tmp_path):
    sal_dir = tmp_path / "sal"
    sal_dir.mkdir()
    Image.fromarray(np.zeros((H, W + 1), np.uint8), mode="L").save(sal_dir / "seg.png")
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train", saliency=sal_dir)
    assert "seg.png" in error_of(voc.saliency, "seg")


def test_corrupt_saliency(voc_tree, tmp_path):
    sal_dir = tmp_path / "sal"
    sal_dir.mkdir()
    (sal_dir / "seg.png").write_bytes(b"not a png" * 10)
    voc = VOCDataset(voc_tree, VOC_CLASSES, "train", saliency=sal_dir)
    assert str(sal_dir / "seg.png") in error_of(voc.saliency, "seg")
