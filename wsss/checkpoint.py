"""Self-describing checkpoints: a name (method or "segmentation"), the model's constructor
arguments (`model.config`), its state dict and any extra plain values (history, settings).
Loaded with `weights_only=True`, so a checkpoint can never run code."""

import torch

from wsss.errors import WsssError
from wsss.files import atomic_output


def save(path, name, model, **extra):
    state = {"method": name, "config": model.config, "state_dict": model.state_dict(), **extra}
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def read(path, map_location="cpu"):
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # missing, truncated or foreign file
        raise WsssError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
