"""evaluate_segmentation: mIoU of the segmentation net's predictions (VOC `val`)."""

from wsss.stages.evaluate import write_json
from wsss.stages.evaluate_labels import score_store


def run(predictions, root, classes, split, output, threads=1):
    write_json(output, {"split": split, **score_store(predictions, root, classes, split, "evaluate_segmentation")})
