"""PASCAL VOC-format dataset reader, used for the demo and for real data alike.

    root/JPEGImages/{id}.jpg
    root/ImageSets/Segmentation/{split}.txt     one id per line
    root/SegmentationClass/{id}.png             palette PNG, 255 = ignore (VOC's boundary band)
    root/SegmentationClassAug/{id}.png          SBD's masks (palette or grayscale), fallback
    root/Annotations/{id}.xml                   object names, used for tags when no mask exists
    saliency/{id}.png                           grayscale saliency maps (DSS, PoolNet, DRFI, ...)

Class names are configurable (background is implied as index 0), so any VOC-format dataset
works. Every problem with the data raises a one-line WsssError naming the file or id.
"""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.errors import WsssError

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]
IGNORE = 255
MASK_FOLDERS = ("SegmentationClass", "SegmentationClassAug")


class VOCDataset:
    """Ids of one split and per-id access to image, mask, tags and saliency."""

    def __init__(self, root, classes, split, saliency=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise WsssError(f"dataset.root: folder {self.root} does not exist")
        self.classes = list(classes)  # foreground names; label k <-> classes[k - 1]
        self.split = split
        self.saliency_dir = Path(saliency) if saliency else self.root / "saliency"
        self.ids = read_split(self.root, split)
        self._tags = {}

    @property
    def num_classes(self):
        """Number of labels including background."""
        return len(self.classes) + 1

    def __len__(self):
        return len(self.ids)

    def image_path(self, image_id):
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def image(self, image_id):
        """uint8 (H, W, 3) RGB."""
        path = self.image_path(image_id)
        if not path.is_file():
            raise WsssError(f"{path}: image of id {image_id} (listed in split {self.split}) is missing")
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise WsssError(f"{path}: cannot decode image of id {image_id} ({exc})") from None

    def image_size(self, image_id):
        """(H, W) without decoding the pixels."""
        path = self.image_path(image_id)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, FileNotFoundError) as exc:
            raise WsssError(f"{path}: cannot open image of id {image_id} ({exc})") from None
        return height, width

    def mask_path(self, image_id):
        for folder in MASK_FOLDERS:
            path = self.root / folder / f"{image_id}.png"
            if path.is_file():
                return path
        return None

    def mask(self, image_id):
        """uint8 (H, W) class indices with 255 = ignore, or None when no mask exists."""
        path = self.mask_path(image_id)
        if path is None:
            return None
        try:
            with Image.open(path) as img:
                if img.mode not in ("P", "L"):
                    raise WsssError(f"{path}: mask must be a palette or grayscale PNG, not {img.mode}")
                mask = np.asarray(img, dtype=np.uint8)
        except OSError as exc:
            raise WsssError(f"{path}: cannot decode mask of id {image_id} ({exc})") from None
        if mask.shape != self.image_size(image_id):
            raise WsssError(
                f"{path}: mask size {mask.shape} differs from image size {self.image_size(image_id)}"
            )
        bad = mask[(mask >= self.num_classes) & (mask != IGNORE)]
        if bad.size:
            raise WsssError(
                f"{path}: mask value {int(bad[0])} is beyond the {len(self.classes)} classes of dataset.classes"
            )
        return mask

    def tags(self, image_id):
        """float32 (K,) multi-hot image-level tags over the foreground classes."""
        if image_id not in self._tags:
            self._tags[image_id] = self._read_tags(image_id)
        return self._tags[image_id]

    def _read_tags(self, image_id):
        tags = np.zeros(len(self.classes), np.float32)
        mask = self.mask(image_id)
        if mask is not None:
            present = np.unique(mask)
            present = present[(present > 0) & (present != IGNORE)]
            tags[present - 1] = 1
            return tags
        xml = self.root / "Annotations" / f"{image_id}.xml"
        if not xml.is_file():
            raise WsssError(f"image id {image_id}: no mask in {'/'.join(MASK_FOLDERS)} and no {xml}")
        for name in xml_object_names(xml):
            if name not in self.classes:
                raise WsssError(f"{xml}: object name {name!r} is not in dataset.classes")
            tags[self.classes.index(name)] = 1
        return tags

    def saliency(self, image_id):
        """float32 (H, W) in [0, 1]."""
        path = self.saliency_dir / f"{image_id}.png"
        if not path.is_file():
            raise WsssError(f"{path}: saliency map of id {image_id} is missing (dataset.saliency)")
        try:
            with Image.open(path) as img:
                sal = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        except OSError as exc:
            raise WsssError(f"{path}: cannot decode saliency map of id {image_id} ({exc})") from None
        if sal.shape != self.image_size(image_id):
            raise WsssError(f"{path}: saliency size {sal.shape} differs from image size {self.image_size(image_id)}")
        return sal


def read_split(root, split):
    path = Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        raise WsssError(f"{path}: split list {split!r} does not exist")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise WsssError(f"{path}: split {split!r} lists no image ids")
    return ids


def xml_object_names(path):
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise WsssError(f"{path}: cannot parse annotation XML ({exc})") from None
    return [obj.findtext("name", "").strip() for obj in tree.getroot().iter("object")]
