"""evaluate_labels: pseudo-label mIoU (255 counts as a miss) and the fraction left ignored."""

from tqdm import tqdm

from wsss.data.voc import VOCDataset
from wsss.io import StoreReader
from wsss.metrics import confusion, scores
from wsss.stages.evaluate import check_shape, ground_truth, write_json


def run(labels, root, classes, split, output, threads=1):
    write_json(output, {"split": split, **score_store(labels, root, classes, split, "evaluate_labels")})


def score_store(store, root, classes, split, desc):
    """Accumulate one confusion matrix over a split's labels or predictions and score it."""
    voc = VOCDataset(root, classes, split)
    names = ["background", *classes]
    conf = 0
    with StoreReader(store) as reader:
        for image_id in tqdm(voc.ids, desc=f"{desc} {split}", mininterval=5):
            gt = ground_truth(voc, image_id)
            label = reader.read(image_id)[0]["label"]
            check_shape(gt, label.shape, image_id, reader.path)
            conf = conf + confusion(gt, label, len(names))
    return {"images": len(voc.ids), **scores(conf, names)}
