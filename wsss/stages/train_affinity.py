"""train_affinity: train AffinityNet (psa; wsss.refine.affinity) on the confident regions of a
method's fused maps, the first half of the random-walk refinement (random_walk is the second).

Training labels, per image of the split: make_labels' power cue + dense CRF run twice, with the
low and the high alpha of `bg_alphas` (psa `infer_cls.py`: 4 and 32; SEAM: 4 and 24); confident
foreground from the low one, confident background from the high one, the rest ignored
(`affinity_labels`). They are computed once before training, one CRF per core in `threads`
worker processes, and kept in memory as uint8 maps at the image size (VOC train_aug: ~2 GB).

Training: random rescale, flip and crop of image and label together (the classifier's
augmentation), psa's pair loss, SGD with poly decay and the new layers at 10x lr (wsss.train).
psa trains 8 epochs, batch 8, crop 448 (README: 256), lr 0.1 (README: 0.07), weight decay 5e-4,
from ImageNet weights; `classifier` optionally starts the backbone from a trained classifier's
(useful where no ImageNet weights exist, as in the demo; psa does not do this).
"""

import numpy as np
import torch
from tqdm import tqdm

from wsss import checkpoint, distributed
from wsss.data.transforms import augment
from wsss.data.voc import IGNORE, VOCDataset
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss.io import StoreReader
from wsss.parallel import ordered_map, shared
from wsss.refine.affinity import AffinityNet, affinity_labels
from wsss.stages.make_labels import crf_settings, pseudo_label
from wsss.train import fit, make_loader, make_optimizer, seed_everything


def run(fused, root, classes, split, output, model, train, bg_alphas, crf, device="auto", threads=1, amp=True,
        classifier=None):
    """fused: the method's fused maps of `split`; model: AffinityNet's arguments (backbone,
    output_stride, weights, radius); train: epochs, batch_size, crop, scale_range, lr, momentum,
    weight_decay, seed, workers; bg_alphas: [low, high]; crf: a crf block as labels.crf (preset
    none = no CRF); classifier: a classifier checkpoint whose backbone initialises ours (or None)."""
    with distributed.process_group(pick_device(device)) as device:
        seed_everything(train["seed"])
        voc = VOCDataset(root, classes, split)
        labels = training_labels(fused, voc, bg_alphas, crf, threads)
        stats = label_fractions(labels)
        print("train_affinity labels: " + ", ".join(f"{k} {v:.3f}" for k, v in stats.items()), flush=True)
        dataset = AffinitySet(voc, labels, train["crop"], train["scale_range"])
        loader = make_loader(dataset, train["batch_size"], train["workers"], device, threads, train["seed"])
        net = AffinityNet(**model)
        if classifier is not None:
            init_from_classifier(net, classifier)
        optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])

        def loss_fn(net, batch):
            images, labels = batch  # (B, 3, crop, crop), (B, crop, crop)
            return net.loss(images, labels)

        history = fit(net, loader, loss_fn, optimizer, train["epochs"], device, desc="train_affinity", amp=amp)
        distributed.check_same(net, device)
        if distributed.is_main():
            checkpoint.save(output, "affinity", net.cpu(), history=history, classes=list(classes), train=train,
                            bg_alphas=list(bg_alphas), crf=crf_settings(crf) if crf else None, fused=str(fused),
                            classifier=str(classifier) if classifier else None, label_fractions=stats)


def affinity_label(image, maps, present, bg_alphas, crf):
    """image (H, W, 3), maps (K', H, W) in [0, 1], present (K',) 1-based, crf: settings or None
    -> uint8 (H, W): present classes where confident, 0 where confident background, else 255."""
    low, high = (pseudo_label(image, maps, present, {"type": "power", "alpha": alpha}, crf, 0.0)
                 for alpha in bg_alphas)
    return affinity_labels(low, high)


def training_labels(fused, voc, bg_alphas, crf, threads):
    """The affinity label of every image of the split, in split order (list of uint8 (H, W))."""
    if len(bg_alphas) != 2 or not bg_alphas[0] < bg_alphas[1]:
        raise WsssError(f"random_walk.bg_alphas: expected [low, high] with low < high, got {bg_alphas}")
    with StoreReader(fused) as reader:
        missing = [image_id for image_id in voc.ids if image_id not in reader]
        if missing:
            raise WsssError(f"{reader.path}: no fused maps for image id {missing[0]!r} of split {voc.split}")
        shared(voc=voc, reader=reader, bg_alphas=list(bg_alphas), crf=crf_settings(crf) if crf else None)
        labels = ordered_map(label_one, voc.ids, max(1, threads))
        return list(tqdm(labels, total=len(voc.ids), desc="train_affinity labels", mininterval=5))


def label_one(image_id):
    """The affinity label of one image (runs in a worker process)."""
    state = shared()
    arrays, attrs = state["reader"].read(image_id)
    maps = arrays["map"].astype(np.float32)  # (K', H, W)
    return affinity_label(state["voc"].image(image_id), maps, attrs["classes"], state["bg_alphas"], state["crf"])


def label_fractions(labels):
    """Shares of pixels labelled background, foreground and ignored over all images."""
    total = sum(label.size for label in labels)
    bg = sum(int((label == 0).sum()) for label in labels)
    ignored = sum(int((label == IGNORE).sum()) for label in labels)
    return {"background": bg / total, "foreground": (total - bg - ignored) / total, "ignored": ignored / total}


def init_from_classifier(net, path):
    """Copy a classifier checkpoint's backbone weights into the affinity net's backbone."""
    state = checkpoint.read(path)
    theirs, ours = state["config"].get("backbone"), net.config["backbone"]
    if theirs != ours:
        raise WsssError(f"{path}: classifier backbone {theirs} differs from random_walk.model.backbone {ours}")
    prefix = "backbone."
    weights = {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    try:
        net.backbone.load_state_dict(weights)
    except RuntimeError:
        raise WsssError(f"{path}: classifier backbone weights do not fit the affinity net's {ours}") from None


class AffinitySet(torch.utils.data.Dataset):
    """(image (3, crop, crop), affinity label (crop, crop) int64) pairs, augmented together."""

    def __init__(self, voc, labels, crop, scale_range):
        self.voc, self.labels = voc, labels  # labels: uint8 (H, W) per id, in split order
        self.crop, self.scale_range = crop, tuple(scale_range)

    def __len__(self):
        return len(self.voc.ids)

    def __getitem__(self, index):
        image = self.voc.image(self.voc.ids[index])
        return augment(image, self.labels[index], self.crop, self.scale_range)
