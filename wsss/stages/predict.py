"""predict: segmentation of a split (or one shard of it) with the trained net (multi-scale +
flip, optional CRF). The net runs in the main process; the CRF of each image runs in one of
`threads` worker processes (wsss.parallel), overlapping with the net's next images."""

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from wsss import checkpoint, shards
from wsss.crf import dense_crf
from wsss.data.transforms import normalize
from wsss.data.voc import VOCDataset
from wsss.device import autocast, pick_device
from wsss.io import StoreWriter
from wsss.parallel import ordered_map, shared
from wsss.models.segmentation import SegmentationNet
from wsss.stages.make_labels import crf_settings


def load_segmentation(path):
    state = checkpoint.read(path)
    net = SegmentationNet(**state["config"])
    net.load_state_dict(state["state_dict"])
    return net


@torch.no_grad()
def predict_probs(net, image, scales, flip, device):
    """image uint8 (H, W, 3) -> class probabilities (C, H, W), averaged over scales and flips."""
    height, width = image.shape[:2]
    x = normalize(image).unsqueeze(0).to(device)  # (1, 3, H, W)
    total = 0
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        batch = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if flip:
            batch = torch.cat([batch, batch.flip(-1)])
        probs = net(batch).softmax(1)  # (B, C, h, w)
        if flip:
            probs = torch.cat([probs[:1], probs[1:].flip(-1)])
        total = total + F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False).sum(0)
    return (total.float() / (len(scales) * (2 if flip else 1))).cpu().numpy()


def run(checkpoint, root, classes, split, output, scales, flip, crf, device="auto", threads=1, shard=None,
        amp=True):
    device = pick_device(device)
    net = load_segmentation(checkpoint).to(device).eval()
    voc = VOCDataset(root, classes, split)
    ids = shards.select(voc.ids, shard)
    crf_params = crf_settings(crf)
    params = {"checkpoint": str(checkpoint), "shard": shard, "scales": scales, "flip": flip, "crf": crf_params}
    shared(crf=crf_params)  # seen by the workers

    def probabilities():  # (image, (C, H, W) probabilities) per id, computed lazily in this process
        for image_id in ids:
            image = voc.image(image_id)
            with autocast(device, amp):
                probs = predict_probs(net, image, scales, flip, device)
            yield image, probs

    with StoreWriter(output, "predict", "segmentation", ["background", *classes], params) as store:
        labels = ordered_map(label_of, probabilities(), max(1, threads) if crf_params else 1)
        for image_id, label in tqdm(zip(ids, labels), total=len(ids), desc=f"predict {split}", mininterval=5):
            store.write(image_id, {"label": label})


def label_of(item):
    """(image, probabilities) -> uint8 label (H, W), after the CRF when one is set."""
    image, probs = item
    if shared()["crf"] is not None:
        probs = dense_crf(image, probs, **shared()["crf"])
    return probs.argmax(0).astype(np.uint8)
