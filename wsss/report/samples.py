"""report_samples: one grid per sample image, every method side by side.

Columns: the image and its ground truth, then one column per method. Rows: the method's fused
map (per pixel the maximum over the image's present classes) as heat over the image, its
pseudo label and its segmentation network's prediction, each label with its IoU on this image.
The sample is `report.ids`, or else `report.images` ids evenly spaced over the split's list.
"""

from pathlib import Path

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from wsss.data.voc import VOCDataset
from wsss.errors import WsssError
from wsss.io import StoreReader
from wsss.metrics import confusion, scores
from wsss.report.draw import HEAT, IGNORE, PALETTE, heat_overlay, label_rgb, strongest
from wsss.report.style import plt, save

ROWS = ["map (heat over image)", "pseudo label", "prediction"]
CELL = 1.8  # inches per panel


def choose_ids(split_ids, images, ids, split):
    """The sample: `ids` when given (each must be in the split), else `images` evenly spaced ids."""
    if ids:
        for image_id in ids:
            if image_id not in split_ids:
                raise WsssError(f"report.ids: image id {image_id!r} is not in split {split}")
        return list(ids)
    count = min(images, len(split_ids))
    return [split_ids[i * len(split_ids) // count] for i in range(count)]


def run(root, classes, split, methods, fused, labels, predictions, images, ids, output):
    """fused / labels / predictions: each method's store, in the order of `methods`;
    output: a folder that receives <image id>.png for each sample image."""
    voc = VOCDataset(root, classes, split)
    names = ["background", *classes]
    stores = {kind: [StoreReader(p) for p in paths] for kind, paths in
              (("fused", fused), ("labels", labels), ("predictions", predictions))}
    Path(output).mkdir(parents=True, exist_ok=True)
    try:
        for image_id in choose_ids(voc.ids, images, ids, split):
            rows = [method_panels(stores, i, image_id) for i in range(len(methods))]
            fig = grid(image_id, split, voc.image(image_id), voc.mask(image_id), methods, rows, names)
            save(fig, Path(output) / f"{image_id}.png")
            print(f"{image_id}: {len(methods)} methods")
    finally:
        for reader in (r for readers in stores.values() for r in readers):
            reader.close()


def method_panels(stores, i, image_id):
    """(heat (H, W), pseudo label (H, W), prediction (H, W)) of the i-th method on one image."""
    fused = stores["fused"][i].read(image_id)[0]["map"]  # (K', H, W)
    label = stores["labels"][i].read(image_id)[0]["label"]
    prediction = stores["predictions"][i].read(image_id)[0]["label"]
    return strongest(fused), label, prediction


def image_iou(gt, label, names):
    """mIoU (%) of one label map against the ground truth over the classes either one shows."""
    if gt is None or not (gt != IGNORE).any():
        return None
    return scores(confusion(gt, label, len(names)), names)["miou"]


def grid(image_id, split, image, gt, methods, rows, names):
    """The figure: column 0 image / ground truth / legend, then one column per method."""
    fig, axes = plt.subplots(3, len(methods) + 1, figsize=(CELL * (len(methods) + 1) + 0.8, CELL * 3 + 0.9),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("image", fontsize=9)
    if gt is not None:
        axes[1, 0].imshow(label_rgb(gt), interpolation="nearest")
    axes[1, 0].set_title("ground truth", fontsize=9)
    for col, (method, (heat, label, prediction)) in enumerate(zip(methods, rows), start=1):
        axes[0, col].imshow(heat_overlay(image, heat))
        axes[0, col].set_title(method, fontsize=10, fontweight="bold")
        for row, labels in ((1, label), (2, prediction)):
            axes[row, col].imshow(label_rgb(labels), interpolation="nearest")
            iou = image_iou(gt, labels, names)
            axes[row, col].set_xlabel("" if iou is None else f"mIoU {iou:.0f}", fontsize=8)
    for row, text in enumerate(ROWS):
        axes[row, 1].set_ylabel(text, fontsize=9)
    shown = [gt] + [label for _, label, _ in rows] + [p for _, _, p in rows]
    legend(axes[2, 0], shown, names)
    present = [names[k] for k in np.unique(gt) if 0 < k < len(names)] if gt is not None else []
    fig.suptitle(f"image {image_id} (split {split}); classes: {', '.join(present) or 'none'}", fontsize=11)
    fig.tight_layout()
    heat_bar(fig, axes[0, -1])
    return fig


def legend(ax, label_maps, names):
    """Colour patches for every label value shown in the figure (255: ignored)."""
    values = sorted(set().union(*(np.unique(m).tolist() for m in label_maps if m is not None)))
    handles = [Patch(color=PALETTE[v] / 255, label="ignored" if v == IGNORE else names[v]) for v in values]
    ax.axis("off")
    ax.legend(handles=handles, loc="center", fontsize=8, frameon=False)


def heat_bar(fig, ax):
    """The heat scale, just right of the last map (outside the grid, so panels keep their size)."""
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), HEAT), cax=ax.inset_axes([1.04, 0, 0.05, 1]))
    bar.set_label("map", fontsize=8)
    bar.ax.tick_params(labelsize=7)
