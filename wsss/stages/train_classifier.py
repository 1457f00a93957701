"""train_classifier: train a method's classifier on image-level tags of a split.

Writes a self-describing checkpoint (method, constructor arguments, weights, training history).
Methods that train in rounds (SC-CAM) get `train.rounds` extra rounds of `train.round_epochs`
epochs, each preceded by the method's `start_round` (SC-CAM: features -> k-means); their
per-round assignments are saved in the checkpoint under `subcategories`.

Under torchrun (more than one GPU) every process trains a DDP replica on its share of each
batch; each runs `start_round` on the whole set itself (identical weights give identical
clusters), and rank 0 writes the checkpoint once the processes agree on the weights.
"""

import torch

from wsss.data.transforms import ClassificationSet
from wsss.data.voc import VOCDataset
from wsss import distributed
from wsss.device import loader_options, pick_device
from wsss.errors import WsssError
from wsss.methods import build, save_checkpoint
from wsss.train import fit, make_loader, make_optimizer, seed_everything


def run(root, classes, split, method, model, train, output, device="auto", threads=1, amp=True):
    """model: constructor arguments (backbone, output_stride, weights, method-specific);
    train: epochs, batch_size, crop, scale_range, lr, momentum, weight_decay, seed, workers
    (+ rounds, round_epochs for methods with start_round); threads: this process's share of
    the job's threads; amp: mixed precision on CUDA."""
    with distributed.process_group(pick_device(device)) as device:
        seed_everything(train["seed"])
        voc = VOCDataset(root, classes, split)
        dataset = ClassificationSet(voc, train["crop"], train["scale_range"])
        if not any(tags.any() for tags in dataset.tags):
            raise WsssError(f"split {split}: no image has a foreground tag; nothing to train on")
        loader = make_loader(dataset, train["batch_size"], train["workers"], device, threads, train["seed"])
        net = build(method, num_classes=len(classes), **model)
        history = train_round(net, loader, train, train["epochs"], device, f"train_classifier {method}", amp)
        for round in range(1, train.get("rounds", 0) + 1):
            whole = torch.utils.data.DataLoader(ClassificationSet(voc), batch_size=1,
                                                **loader_options(device, train["workers"], threads))
            net.start_round(round, whole, device)
            desc = f"train_classifier {method} round {round}"
            history += train_round(net, loader, train, train["round_epochs"], device, desc, amp)
        distributed.check_same(net, device)
        if distributed.is_main():
            save(output, method, net, history, voc, classes, train)


def save(output, method, net, history, voc, classes, train):
    extra = {"history": history, "classes": list(classes), "train": train}
    if hasattr(net, "assignments"):  # SC-CAM: {round: {image id: {class name: cluster}}}
        extra["subcategories"] = subcategories(net.assignments, voc.ids, classes)
    save_checkpoint(output, method, net.cpu(), **extra)


def train_round(net, loader, train, epochs, device, desc, amp):
    """One schedule of `epochs` with a fresh optimizer and poly lr (SC-CAM restarts it each round)."""
    optimizer = make_optimizer(net.param_groups(), train["lr"], train["momentum"], train["weight_decay"])

    def loss_fn(net, batch):
        images, tags, index = batch  # (B, 3, crop, crop), (B, K), (B,)
        return net.loss(images, tags, index)

    return fit(net, loader, loss_fn, optimizer, epochs, device, desc=desc, amp=amp)


def subcategories(assignments, ids, classes):
    """(N, K) cluster arrays per round, -1 = absent -> readable nested dicts of plain ints."""
    return {
        round: {image_id: {classes[c]: int(k) for c, k in enumerate(row) if k >= 0} for image_id, row in zip(ids, rounds)}
        for round, rounds in enumerate(assignments, start=1)
    }
