"""evaluate_maps: CAM quality as psa / IRN report it.

Each pixel gets the class with the highest map, or background where every map is below a
constant background score. The score is swept over `bg_scores`: `miou` is the best mIoU, with
its score and the whole curve, plus psa's 0.20 and IRN's 0.15.
"""

import numpy as np
from tqdm import tqdm

from wsss.data.voc import VOCDataset
from wsss.io import StoreReader
from wsss.metrics import confusion, scores
from wsss.stages.evaluate import check_shape, ground_truth, write_json

FIXED = {"psa": 0.20, "irn": 0.15}


def maps_to_label(maps, present, bg_score):
    """maps (K', H, W), present (K',) 1-based -> (H, W) argmax over [bg_score, maps]."""
    if len(maps) == 0:
        return np.zeros(maps.shape[1:], np.uint8)
    lookup = np.asarray(present, np.uint8)
    return np.where(maps.max(0) > bg_score, lookup[maps.argmax(0)], 0).astype(np.uint8)


def run(fused, root, classes, split, output, bg_scores, saliency=None, threads=1):
    voc = VOCDataset(root, classes, split)
    names = ["background", *classes]
    thresholds = sorted(set(float(t) for t in bg_scores) | set(FIXED.values()))
    conf = {t: 0 for t in thresholds}
    with StoreReader(fused) as reader:
        for image_id in tqdm(voc.ids, desc=f"evaluate_maps {split}", mininterval=5):
            gt = ground_truth(voc, image_id)
            arrays, attrs = reader.read(image_id)
            maps = arrays["map"].astype(np.float32)
            check_shape(gt, maps.shape[1:], image_id, reader.path)
            for t in thresholds:
                conf[t] = conf[t] + confusion(gt, maps_to_label(maps, attrs["classes"], t), len(names))
    results = {t: scores(conf[t], names) for t in thresholds}
    curve = [{"bg_score": t, "miou": results[t]["miou"]} for t in thresholds]
    best = max(thresholds, key=lambda t: results[t]["miou"])
    write_json(output, {
        "split": split, "images": len(voc.ids), **results[best], "bg_score": best, "curve": curve,
        **{f"miou_{name}": results[t]["miou"] for name, t in FIXED.items()},
    })
