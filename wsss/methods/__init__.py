"""Method registry: config name -> nn.Module class. A new method is one file and one line here.

Every method implements `loss(images, tags) -> {"loss": ..., ...}`,
`maps(images, classes) -> {name: (B, K', h, w)}`, `fuse({name: (K', H, W)}) -> (K', H, W)` and
`param_groups()`; its `config` dict holds its constructor arguments.
"""

from wsss import checkpoint
from wsss.errors import WsssError
from wsss.methods.cam import CAM

METHODS = {"cam": CAM}


def build(method, **kwargs):
    if method not in METHODS:
        raise WsssError(f"methods: unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[method](**kwargs)


def save_checkpoint(path, method, model, **extra):
    """A self-describing checkpoint (see wsss.checkpoint), written atomically."""
    checkpoint.save(path, method, model, **extra)


def load_checkpoint(path, map_location="cpu"):
    """Rebuild a method's model from its checkpoint alone. Returns (method, model, checkpoint)."""
    state = checkpoint.read(path, map_location)
    model = build(state["method"], **state["config"])
    model.load_state_dict(state["state_dict"])
    return state["method"], model, state
