"""train_segmentation: DeepLab-v3 trained on pseudo labels, cross-entropy ignoring 255."""

import torch
import torch.nn.functional as F

from wsss.data.transforms import SegmentationSet
from wsss.data.voc import IGNORE, VOCDataset
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss import checkpoint
from wsss.io import StoreReader
from wsss.models.segmentation import SegmentationNet
from wsss.train import fit, make_optimizer, seed_everything


def run(root, classes, split, labels, model, train, output, device="auto", threads=1):
    seed_everything(train["seed"])
    device = pick_device(device)
    voc = VOCDataset(root, classes, split)
    store = StoreReader(labels)
    missing = [i for i in voc.ids if i not in store]
    if missing:
        raise WsssError(f"{labels}: no pseudo label for image id {missing[0]} of split {split}")
    dataset = SegmentationSet(voc, store, train["crop"], train["scale_range"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=train["batch_size"], shuffle=True, num_workers=train["workers"],
        drop_last=len(dataset) > train["batch_size"], pin_memory=device.type == "cuda",
    )
    net = SegmentationNet(num_classes=len(classes) + 1, **model)
    optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])

    def loss_fn(net, batch):
        images, target = batch  # (B, 3, crop, crop), (B, crop, crop) with 255 = ignore
        ce = F.cross_entropy(net(images), target, ignore_index=IGNORE)
        return {"loss": ce, "ce": ce}

    history = fit(net, loader, loss_fn, optimizer, train["epochs"], device, desc="train_segmentation")
    checkpoint.save(output, "segmentation", net.cpu(), history=history, classes=list(classes), train=train)
