"""summarize: one row per method with its maps, pseudo-label and segmentation mIoU."""

import json
from pathlib import Path

from wsss.files import write_text

COLUMNS = ["method", "maps_miou", "maps_bg_score", "maps_miou_psa", "maps_miou_irn",
           "labels_miou", "labels_ignored", "segmentation_miou"]


def row(method, maps, labels, segmentation):
    m, l, s = (json.loads(Path(p).read_text()) for p in (maps, labels, segmentation))
    return [method, m["miou"], m["bg_score"], m["miou_psa"], m["miou_irn"],
            l["miou"], l["ignored_fraction"], s["miou"]]


def run(methods, maps, labels, segmentation, output, threads=1):
    """maps / labels / segmentation: metric JSON paths, in the order of `methods`."""
    lines = ["\t".join(COLUMNS)]
    for values in map(row, methods, maps, labels, segmentation):
        lines.append("\t".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values))
    write_text(output, "\n".join(lines) + "\n")
    print("\n".join(lines))
