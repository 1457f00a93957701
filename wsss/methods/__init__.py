"""Method registry: config name -> nn.Module class. A new method is one file and one line here.

The contract every method follows (tests/test_methods.py checks it for each entry):

    __init__(num_classes, backbone, output_stride, weights, **own)   own: the method's model keys
    config                       dict of the constructor arguments except weights (checkpoints)
    forward(images) -> (B, K)    class scores
    loss(images, tags, index=None) -> {"loss": total, **named terms}
                                 tags (B, K) multi-hot; index (B,) positions in the training set
    maps(images, classes, **options) -> {name: (B, K', h, w)}, non-negative; classes: 0-based
                                 foreground indices (K',); options: the method's extraction
                                 settings beyond scales / flip (FickleNet: draws, draw_chunk,
                                 seed). Called under torch.no_grad(); Grad-CAM style methods
                                 switch gradients on inside.
    fuse(maps, **params) -> (K', H, W)    staticmethod; maps: {name: (K', H, W)} in [0, 1];
                                 params: the method's `fuse` config block
    param_groups() -> [(parameters, lr multiplier)]

Optional:
    pseudo_label(maps, present, saliency, **params) -> uint8 (H, W), 255 = ignore
                                 staticmethod: the paper's own label rule (MDC, FickleNet,
                                 SeeNet); maps (K', H, W) fused in [0, 1], present (K',) 1-based,
                                 saliency (H, W) in [0, 1]; params: the method's `labels` block
    start_round(round, loader, device)   SC-CAM: called before each extra training round with a
                                 loader of un-augmented (image (1, 3, H, W), tags (1, K), index)
"""

from wsss import checkpoint
from wsss.errors import WsssError
from wsss.methods.cam import CAM
from wsss.methods.ficklenet import FickleNet
from wsss.methods.gradcam import GradCAM
from wsss.methods.mdc import MDC
from wsss.methods.sccam import SCCAM
from wsss.methods.seam import SEAM
from wsss.methods.seenet import SeeNet

METHODS = {
    "cam": CAM,
    "gradcam": GradCAM,
    "mdc": MDC,
    "ficklenet": FickleNet,
    "seam": SEAM,
    "seenet": SeeNet,
    "sccam": SCCAM,
}


def build(method, **kwargs):
    if method not in METHODS:
        raise WsssError(f"methods: unknown method {method!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[method](**kwargs)


def save_checkpoint(path, method, model, **extra):
    """A self-describing checkpoint (see wsss.checkpoint), written atomically."""
    checkpoint.save(path, method, model, **extra)


def load_checkpoint(path, map_location="cpu", method=None):
    """Rebuild a method's model from its checkpoint alone. Returns (method, model, checkpoint).

    `method` rebuilds the weights as another method with the same network (Grad-CAM reads
    CAM's classifier); the state dict must then fit exactly."""
    state = checkpoint.read(path, map_location)
    method = method or state["method"]
    model = build(method, **state["config"])
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError:
        raise WsssError(f"{path}: a {state['method']} checkpoint does not fit method {method}") from None
    return method, model, state
