"""Training-time augmentation and the torch Datasets the training stages iterate over.

Randomness comes from torch's global generator, which torch seeds per DataLoader worker from
the run's seed, so a seeded run is repeatable.
"""

import cv2
import numpy as np
import torch

from wsss.data.voc import IGNORE

MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # ImageNet statistics, as torchvision
STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize(image):
    """uint8 (H, W, 3) RGB -> float32 tensor (3, H, W)."""
    array = (image.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _uniform(lo, hi):
    return lo + (hi - lo) * torch.rand(()).item()


def augment(image, label, crop, scale_range):
    """Random rescale, horizontal flip, crop (padding with ignore) of image and optional label.

    image: uint8 (H, W, 3); label: uint8 (H, W) or None. Returns the normalised image tensor
    (3, crop, crop), the label tensor (crop, crop) int64 or None, and the valid-pixel mask.
    """
    scale = _uniform(*scale_range)
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    if torch.rand(()).item() < 0.5:
        image = image[:, ::-1]
        label = label[:, ::-1] if label is not None else None
    image = normalize(image)  # (3, h, w)
    out = torch.zeros(3, crop, crop)
    out_label = torch.full((crop, crop), IGNORE, dtype=torch.int64)
    h, w = image.shape[1:]
    top = int(torch.randint(0, max(h - crop, 0) + 1, ()))
    left = int(torch.randint(0, max(w - crop, 0) + 1, ()))
    # Where the image is smaller than the crop it lands at a random offset in the padded crop.
    off_y = int(torch.randint(0, max(crop - h, 0) + 1, ()))
    off_x = int(torch.randint(0, max(crop - w, 0) + 1, ()))
    ch, cw = min(crop, h), min(crop, w)
    out[:, off_y:off_y + ch, off_x:off_x + cw] = image[:, top:top + ch, left:left + cw]
    if label is not None:
        patch = torch.from_numpy(np.ascontiguousarray(label[top:top + ch, left:left + cw])).long()
        out_label[off_y:off_y + ch, off_x:off_x + cw] = patch
        return out, out_label
    return out, None


class ClassificationSet(torch.utils.data.Dataset):
    """(image (3, crop, crop), tags (K,), index) triples for classifier training.

    crop=None gives the whole un-augmented image (SC-CAM's per-image features). The index lets
    a method keep per-image targets (SC-CAM's sub-categories)."""

    def __init__(self, voc, crop=None, scale_range=(1.0, 1.0)):
        self.voc, self.crop, self.scale_range = voc, crop, tuple(scale_range)
        self.tags = [voc.tags(i) for i in voc.ids]  # read once: masks are decoded only here

    def __len__(self):
        return len(self.voc.ids)

    def __getitem__(self, index):
        image = self.voc.image(self.voc.ids[index])
        if self.crop is None:
            image = normalize(image)  # (3, H, W)
        else:
            image, _ = augment(image, None, self.crop, self.scale_range)
        return image, torch.from_numpy(self.tags[index]), index


class SegmentationSet(torch.utils.data.Dataset):
    """(image (3, crop, crop), label (crop, crop)) pairs from pseudo labels in a store."""

    def __init__(self, voc, labels, crop, scale_range):
        self.voc, self.labels = voc, labels  # labels: wsss.io.StoreReader
        self.crop, self.scale_range = crop, tuple(scale_range)

    def __len__(self):
        return len(self.voc.ids)

    def __getitem__(self, index):
        image_id = self.voc.ids[index]
        image = self.voc.image(image_id)
        label = self.labels.read(image_id)[0]["label"]
        return augment(image, label, self.crop, self.scale_range)
