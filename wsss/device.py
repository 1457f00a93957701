"""Device choice: CUDA when available (or asked for), CPU otherwise."""

import torch

from wsss.errors import WsssError


def pick_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WsssError(f"device: {name!r} requested but CUDA is not available")
    return torch.device(name)
