"""The training loop shared by the classifier and the segmentation stage.

SGD with momentum, poly learning-rate decay lr * (1 - it / max_it) ** 0.9 (DeepLab, psa, IRN),
and per-group lr multipliers (new layers 10x). Progress goes to stderr through tqdm, which the
Snakemake shim sends to the rule's log. On CUDA the loss runs under float16 autocast with a
GradScaler (`amp`); under torchrun the model trains as DistributedDataParallel replicas, each on
its share of every batch (wsss.distributed), and only rank 0 reports.
"""

import math
import random

import numpy as np
import torch
from tqdm import tqdm

from wsss import distributed
from wsss.device import autocast, grad_scaler, loader_options
from wsss.errors import WsssError


def seed_everything(seed):
    """Seed random, numpy and torch. Under torchrun each process takes seed + rank, so processes
    draw different augmentations; DDP then gives every process rank 0's initial weights."""
    seed += distributed.rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset, batch_size, workers, device, threads, seed):
    """Shuffled training batches of `batch_size` images; under torchrun each process loads its
    1 / world_size share of every batch. The last incomplete batch is dropped (BatchNorm)."""
    share = distributed.per_process_batch(batch_size)
    sampler = distributed.sampler(dataset, seed)
    size = len(sampler) if sampler is not None else len(dataset)
    return torch.utils.data.DataLoader(
        dataset, batch_size=share, shuffle=sampler is None, sampler=sampler, drop_last=size > share,
        **loader_options(device, workers, threads),
    )


def make_optimizer(param_groups, lr, momentum, weight_decay):
    groups = [{"params": params, "lr": lr * mult, "base_lr": lr * mult} for params, mult in param_groups]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def poly_lr(optimizer, iteration, max_iterations, power=0.9):
    factor = (1 - iteration / max_iterations) ** power
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


class LossModule(torch.nn.Module):
    """model + loss_fn as one module whose forward is the loss: DDP synchronises gradients of
    what runs through its forward, and methods compute their loss in `loss`, not `forward`."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def fit(model, loader, loss_fn, optimizer, epochs, device, desc="train", amp=False):
    """Train for `epochs`; loss_fn(model, batch) -> dict of named terms with `loss`.

    Returns the mean of each term per epoch (over all processes under torchrun):
    [{"epoch": 1, "loss": ..., ...}, ...].
    """
    model.to(device).train()
    step = distributed.wrap(LossModule(model, loss_fn), device)
    scaler = grad_scaler(device, amp)
    max_iterations = epochs * len(loader)
    iteration, history = 0, []
    for epoch in range(1, epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):  # DistributedSampler: a new shuffle per epoch
            loader.sampler.set_epoch(loader.sampler.epoch + 1)
        sums, count = {}, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{epochs}", mininterval=5, leave=True,
                   disable=not distributed.is_main())
        for batch in bar:
            poly_lr(optimizer, iteration, max_iterations)
            batch = [b.to(device, non_blocking=True) for b in batch]
            with autocast(device, amp):
                terms = step(batch)
            if not math.isfinite(terms["loss"].item()):
                raise WsssError(f"{desc}: loss became {terms['loss'].item()} at epoch {epoch}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            count += 1
            bar.set_postfix(loss=f"{terms['loss'].item():.4f}", refresh=False)
        means = distributed.mean_over_processes({k: v / count for k, v in sums.items()}, device)
        history.append({"epoch": epoch, **means})
        if distributed.is_main():
            print(f"{desc} epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()), flush=True)
    distributed.broadcast_buffers(model)
    return history
