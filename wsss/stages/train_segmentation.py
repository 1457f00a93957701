"""train_segmentation: DeepLab-v3 trained on pseudo labels, cross-entropy ignoring 255.

Under torchrun (more than one GPU) every process trains a DDP replica on its share of each
batch, and rank 0 writes the checkpoint once the processes agree on the weights.
"""

import torch.nn.functional as F

from wsss.data.transforms import SegmentationSet
from wsss.data.voc import IGNORE, VOCDataset
from wsss import distributed
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss import checkpoint
from wsss.io import StoreReader
from wsss.models.segmentation import SegmentationNet
from wsss.train import fit, make_loader, make_optimizer, seed_everything


def run(root, classes, split, labels, model, train, output, device="auto", threads=1, amp=True):
    """threads: this process's share of the job's threads; amp: mixed precision on CUDA."""
    with distributed.process_group(pick_device(device)) as device:
        seed_everything(train["seed"])
        voc = VOCDataset(root, classes, split)
        store = StoreReader(labels)
        missing = [i for i in voc.ids if i not in store]
        if missing:
            raise WsssError(f"{labels}: no pseudo label for image id {missing[0]} of split {split}")
        dataset = SegmentationSet(voc, store, train["crop"], train["scale_range"])
        loader = make_loader(dataset, train["batch_size"], train["workers"], device, threads, train["seed"])
        net = SegmentationNet(num_classes=len(classes) + 1, **model)
        optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])
        history = fit(net, loader, loss_fn, optimizer, train["epochs"], device, desc="train_segmentation", amp=amp)
        distributed.check_same(net, device)
        if distributed.is_main():
            checkpoint.save(output, "segmentation", net.cpu(), history=history, classes=list(classes), train=train)


def loss_fn(net, batch):
    images, target = batch  # (B, 3, crop, crop), (B, crop, crop) with 255 = ignore
    ce = F.cross_entropy(net(images), target, ignore_index=IGNORE)  # float32 under autocast
    return {"loss": ce, "ce": ce}
