"""train_classifier: train a method's classifier on image-level tags of a split.

Writes a self-describing checkpoint (method, constructor arguments, weights, training history).
"""

import torch

from wsss.data.transforms import ClassificationSet
from wsss.data.voc import VOCDataset
from wsss.device import pick_device
from wsss.errors import WsssError
from wsss.methods import build, save_checkpoint
from wsss.train import fit, make_optimizer, seed_everything


def run(root, classes, split, method, model, train, output, device="auto", threads=1):
    """model: constructor arguments (backbone, output_stride, weights, method-specific);
    train: epochs, batch_size, crop, scale_range, lr, momentum, weight_decay, seed, workers."""
    seed_everything(train["seed"])
    device = pick_device(device)
    voc = VOCDataset(root, classes, split)
    dataset = ClassificationSet(voc, train["crop"], train["scale_range"])
    if not any(tags.any() for tags in dataset.tags):
        raise WsssError(f"split {split}: no image has a foreground tag; nothing to train on")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=train["batch_size"], shuffle=True, num_workers=train["workers"],
        drop_last=len(dataset) > train["batch_size"], pin_memory=device.type == "cuda",
    )
    net = build(method, num_classes=len(classes), **model)
    optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])

    def loss_fn(net, batch):
        images, tags = batch  # (B, 3, crop, crop), (B, K)
        return net.loss(images, tags)

    history = fit(net, loader, loss_fn, optimizer, train["epochs"], device, desc=f"train_classifier {method}")
    save_checkpoint(output, method, net.cpu(), history=history, classes=list(classes), train=train)

