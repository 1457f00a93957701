"""The training loop shared by the classifier and the segmentation stage.

SGD with momentum, poly learning-rate decay lr * (1 - it / max_it) ** 0.9 (DeepLab, psa, IRN),
and per-group lr multipliers (new layers 10x). Progress goes to stderr through tqdm, which the
Snakemake shim sends to the rule's log.
"""

import math
import random

import numpy as np
import torch
from tqdm import tqdm

from wsss.errors import WsssError


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(param_groups, lr, momentum, weight_decay):
    groups = [{"params": params, "lr": lr * mult, "base_lr": lr * mult} for params, mult in param_groups]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)


def poly_lr(optimizer, iteration, max_iterations, power=0.9):
    factor = (1 - iteration / max_iterations) ** power
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def fit(model, loader, loss_fn, optimizer, epochs, device, desc="train"):
    """Train for `epochs`; loss_fn(model, batch) -> dict of named terms with `loss`.

    Returns the mean of each term per epoch: [{"epoch": 1, "loss": ..., ...}, ...].
    """
    model.to(device).train()
    max_iterations = epochs * len(loader)
    iteration, history = 0, []
    for epoch in range(1, epochs + 1):
        sums, count = {}, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch}/{epochs}", mininterval=5, leave=True)
        for batch in bar:
            poly_lr(optimizer, iteration, max_iterations)
            batch = [b.to(device, non_blocking=True) for b in batch]
            terms = loss_fn(model, batch)
            if not math.isfinite(terms["loss"].item()):
                raise WsssError(f"{desc}: loss became {terms['loss'].item()} at epoch {epoch}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            iteration += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            count += 1
            bar.set_postfix(loss=f"{terms['loss'].item():.4f}", refresh=False)
        history.append({"epoch": epoch, **{k: v / count for k, v in sums.items()}})
        print(f"{desc} epoch {epoch}: " + ", ".join(f"{k} {v / count:.4f}" for k, v in sums.items()), flush=True)
    return history
