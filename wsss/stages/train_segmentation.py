"""train_segmentation: DeepLab-v3 trained on pseudo labels.

`loss` picks the weak supervision: "ce", cross-entropy on the pseudo labels ignoring 255, or
"dsrg", DSRG's seeding + boundary losses with seeds grown at every step (wsss.refine.dsrg; the
pseudo labels are the seeds). Semi-supervised (MDC, FickleNet): the images of `strong_split`
train on their ground-truth masks instead, loss = weak loss + strong_weight * cross-entropy on
those masks (FickleNet's alpha = 2); they need no pseudo label.

Under torchrun (more than one GPU) every process trains a DDP replica on its share of each
batch, and rank 0 writes the checkpoint once the processes agree on the weights.
"""

import torch
import torch.nn.functional as F

from wsss import checkpoint, distributed
from wsss.data.transforms import SegmentationSet, augment
from wsss.data.voc import IGNORE, MASK_FOLDERS, VOCDataset, read_split
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss.io import StoreReader
from wsss.models.segmentation import SegmentationNet
from wsss.refine import dsrg as dsrg_module
from wsss.train import fit, make_loader, make_optimizer, seed_everything

LOSSES = ("ce", "dsrg")
DSRG_DEFAULTS = {"bg_threshold": dsrg_module.BG_THRESHOLD, "fg_threshold": dsrg_module.FG_THRESHOLD,
                 "grow_from": "softmax", "crf": dict(dsrg_module.CRF)}


def run(root, classes, split, labels, model, train, output, device="auto", threads=1, amp=True,
        loss="ce", dsrg=None, strong_split=None, strong_weight=2.0):
    """threads: this process's share of the job's threads; amp: mixed precision on CUDA;
    loss: "ce" or "dsrg"; dsrg: overrides of DSRG_DEFAULTS; strong_split: a split whose images
    train on their ground-truth masks (None: weakly supervised only), weighted by strong_weight."""
    if loss not in LOSSES:
        raise WsssError(f"segmentation.train.loss: {loss!r} is not one of {', '.join(LOSSES)}")
    settings = dsrg_settings(dsrg) if loss == "dsrg" else None
    with distributed.process_group(pick_device(device)) as device:
        seed_everything(train["seed"])
        voc = VOCDataset(root, classes, split)
        strong = strong_ids(voc, strong_split)
        store = StoreReader(labels)
        missing = [i for i in voc.ids if i not in strong and i not in store]
        if missing:
            raise WsssError(f"{store.path}: no pseudo label for image id {missing[0]} of split {split}")
        dataset = TrainingSet(voc, store, train["crop"], train["scale_range"], strong, with_tags=loss == "dsrg")
        loader = make_loader(dataset, train["batch_size"], train["workers"], device, threads, train["seed"])
        net = SegmentationNet(num_classes=len(classes) + 1, **model)
        optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])
        loss_fn = make_loss_fn(loss, settings, strong_weight if strong_split else None)
        history = fit(net, loader, loss_fn, optimizer, train["epochs"], device, desc="train_segmentation", amp=amp)
        distributed.check_same(net, device)
        if distributed.is_main():
            checkpoint.save(output, "segmentation", net.cpu(), history=history, classes=list(classes), train=train,
                            loss=loss, dsrg=settings, strong_split=strong_split,
                            strong_weight=strong_weight if strong_split else None)


def dsrg_settings(dsrg):
    """DSRG_DEFAULTS with the user's values (the crf block merged key by key)."""
    dsrg = dict(dsrg or {})
    unknown = sorted(set(dsrg) - set(DSRG_DEFAULTS))
    if unknown:
        raise WsssError(f"segmentation.dsrg.{unknown[0]}: unknown setting; expected one of {', '.join(DSRG_DEFAULTS)}")
    crf = {k: v for k, v in (dsrg.pop("crf", None) or {}).items() if v is not None}
    unknown = sorted(set(crf) - set(DSRG_DEFAULTS["crf"]) - {"gt_prob"})
    if unknown:
        raise WsssError(f"segmentation.dsrg.crf.{unknown[0]}: unknown setting; expected one of "
                        f"{', '.join(DSRG_DEFAULTS['crf'])}")
    settings = {**DSRG_DEFAULTS, **dsrg, "crf": {**DSRG_DEFAULTS["crf"], **crf}}
    if settings["grow_from"] not in dsrg_module.GROW_FROM:
        raise WsssError(f"segmentation.dsrg.grow_from: {settings['grow_from']!r} is not one of "
                        f"{', '.join(dsrg_module.GROW_FROM)}")
    return settings


def strong_ids(voc, strong_split):
    """The ids of `strong_split` (a set, empty for None); each must be in the training split
    and have a ground-truth mask."""
    if strong_split is None:
        return set()
    ids = read_split(voc.root, strong_split)
    known = set(voc.ids)
    for image_id in ids:
        if image_id not in known:
            raise WsssError(f"segmentation.semi: image id {image_id} of split {strong_split} is not in "
                            f"training split {voc.split}")
        if voc.mask_path(image_id) is None:
            raise WsssError(f"segmentation.semi: image id {image_id} of split {strong_split} has no ground-truth "
                            f"mask in {voc.root}/{'|'.join(MASK_FOLDERS)}")
    return set(ids)


class TrainingSet(SegmentationSet):
    """(image (3, crop, crop), label (crop, crop), strong (), [tags (K,)]) per image: the
    ground-truth mask where the image is strong, else its pseudo label; tags for DSRG."""

    def __init__(self, voc, labels, crop, scale_range, strong=(), with_tags=False):
        super().__init__(voc, labels, crop, scale_range)
        self.strong = set(strong)
        self.tags = [voc.tags(i) for i in voc.ids] if with_tags else None  # read once, before workers fork

    def __getitem__(self, index):
        image_id = self.voc.ids[index]
        strong = image_id in self.strong
        label = self.voc.mask(image_id) if strong else self.labels.read(image_id)[0]["label"]
        image, label = augment(self.voc.image(image_id), label, self.crop, self.scale_range)
        item = (image, label, torch.tensor(strong))
        return item if self.tags is None else item + (torch.from_numpy(self.tags[index]),)


def make_loss_fn(loss="ce", dsrg=None, strong_weight=None):
    """loss_fn(net, batch) for wsss.train.fit. The weak loss sees the weak images of the batch;
    with strong_weight, strong_weight * cross-entropy on the strong images' masks is added."""

    def loss_fn(net, batch):
        images, target, strong = batch[:3]  # (B, 3, H, W), (B, H, W) 255 = ignore, (B,) bool
        if loss == "dsrg":
            small = net.head(net.backbone(images))  # (B, C, h, w) at the output stride
            logits = F.interpolate(small, size=images.shape[2:], mode="bilinear", align_corners=False)
            weak = ~strong
            terms = dsrg_module.dsrg_loss(small[weak], images[weak], target[weak], batch[3][weak], **dsrg)
        else:
            logits = net(images)  # (B, C, H, W)
            ce = cross_entropy(logits, target.masked_fill(strong[:, None, None], IGNORE))
            terms = {"loss": ce, "ce": ce}
        if strong_weight is not None:
            terms["strong"] = cross_entropy(logits, target.masked_fill(~strong[:, None, None], IGNORE))
            terms["loss"] = terms["loss"] + strong_weight * terms["strong"]
        return terms

    return loss_fn


def cross_entropy(logits, target):
    """Mean cross-entropy over the pixels not 255 (float32 under autocast); 0 when there are none,
    e.g. a batch without strong images."""
    if not (target != IGNORE).any():
        return logits.float().sum() * 0
    return F.cross_entropy(logits, target, ignore_index=IGNORE)
