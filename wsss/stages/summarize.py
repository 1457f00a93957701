"""summarize: one row per method with its maps, pseudo-label and segmentation mIoU."""

import json
import os
from pathlib import Path

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
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, output)
    print("\n".join(lines))
