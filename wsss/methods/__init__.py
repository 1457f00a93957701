"""Method registry: config name -> nn.Module class. A new method is one file and one line here.

Every method implements `loss(images, tags) -> {"loss": ..., ...}`,
`maps(images, classes) -> {name: (B, K', h, w)}`, `fuse({name: (K', H, W)}) -> (K', H, W)` and
`param_groups()`; its `config` dict holds its constructor arguments.
"""

import torch

from wsss.errors import WsssError
from wsss.methods.cam import CAM

METHODS = {"cam": CAM}


def build(method, **kwargs):
    if method not in METHODS:
        raise WsssError(f"methods: unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[method](**kwargs)


def save_checkpoint(path, method, model, **extra):
    """A self-describing checkpoint: method name, constructor arguments and weights."""
    state = {"method": method, "config": model.config, "state_dict": model.state_dict(), **extra}
    torch.save(state, path)


def load_checkpoint(path, map_location="cpu"):
    """Rebuild a method's model from its checkpoint alone. Returns (method, model, checkpoint)."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # missing, truncated or foreign file
        raise WsssError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
    model = build(checkpoint["method"], **checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return checkpoint["method"], model, checkpoint
