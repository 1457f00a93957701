"""report_per_class: IoU of every class for every method, at the three levels the pipeline scores.

One panel per level: the maps (at each method's best background score, on the eval split),
the pseudo labels (same split; 255 pixels count as misses) and the segmentation network's
predictions (val split). Bars are grouped by class, one colour per method.
"""

import numpy as np

from wsss.report.style import method_colors, plt, read_metrics, save

LEVELS = {  # metric file kind -> panel title
    "maps": "maps (best background score of each method)",
    "labels": "pseudo labels (ignored pixels count as misses)",
    "segmentation": "segmentation predictions",
}


def run(methods, maps, labels, segmentation, output):
    """maps / labels / segmentation: the methods' metric JSON files, in the order of `methods`."""
    files = {"maps": maps, "labels": labels, "segmentation": segmentation}
    save(figure({kind: read_metrics(methods, files[kind], kind) for kind in LEVELS}, methods), output)


def figure(levels, methods):
    """levels: {maps / labels / segmentation: {method: metric JSON content}} -> the figure."""
    colors = method_colors(methods)
    classes = list(levels["maps"][methods[0]]["per_class"])  # background first
    width = max(11, 0.1 * len(classes) * len(methods) + 3)  # VOC: 21 classes x 7 methods -> 17.7 in
    fig, axes = plt.subplots(len(LEVELS), 1, figsize=(width, 3.2 * len(LEVELS)))
    for ax, (kind, title) in zip(axes, LEVELS.items()):
        bars(ax, levels[kind], classes, colors)
        first = levels[kind][methods[0]]
        ax.set_title(f"{title}: {first['split']}, {first['images']} images", fontsize=10, loc="left")
        rotate = {"rotation": 30, "ha": "right", "rotation_mode": "anchor"} if len(classes) > 10 else {}
        ax.set_xticks(np.arange(len(classes)), classes, **rotate)
        ax.set_xlim(-0.5, len(classes) - 0.5)
    fig.suptitle("IoU per class (%); legend: method (mIoU)", x=0.01, ha="left")
    fig.tight_layout()
    return fig


def bars(ax, metrics, classes, colors):
    """Grouped bars: x = class, one bar per method; a class never seen nor predicted shows none."""
    width = 0.8 / len(metrics)
    for i, (method, m) in enumerate(metrics.items()):
        iou = [m["per_class"].get(c) for c in classes]
        iou = [np.nan if v is None else v for v in iou]
        x = np.arange(len(classes)) - 0.4 + width * (i + 0.5)
        ax.bar(x, iou, width, color=colors[method], label=f"{method} ({m['miou']:.1f})")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
